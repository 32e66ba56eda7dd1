"""Pretrained models shipped inside the package (``zoo/weights/NAME/``), loaded offline.

Each folder holds ``model.safetensors`` (weights and frozen entropy tables), ``config.json`` and
``MODEL_CARD.md`` (training data, steps, time and measured results). ``GANCODEC_WEIGHTS`` may
name an extra folder of model folders, searched first.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from ..errors import UserError

PACKAGE_WEIGHTS = Path(__file__).parent / "weights"
DEFAULT_CODEC = "hific-lite"


def _search_path() -> list[Path]:
    extra = os.environ.get("GANCODEC_WEIGHTS")
    return ([Path(extra)] if extra else []) + [PACKAGE_WEIGHTS]


WEIGHT_FILES = ("model.safetensors", "fidelity.safetensors")  # codec, restoration / SR


def _is_model(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any((folder / f).is_file() for f in WEIGHT_FILES)


def model_folder(name: str) -> Path:
    """The folder of a model: a name from the zoo, or a path to an exported model folder."""
    direct = Path(name)
    if _is_model(direct):
        return direct
    for root in _search_path():
        if _is_model(root / name):
            return root / name
    raise UserError(f"unknown model {name!r}; available: {', '.join(available_models()) or 'none'}")


def available_models() -> list[str]:
    names: set[str] = set()
    for root in _search_path():
        if root.is_dir():
            names.update(p.name for p in root.iterdir() if _is_model(p))
    return sorted(names)


@functools.lru_cache(maxsize=8)
def _load_codec(folder: str):
    from ..codec import Codec

    path = Path(folder)
    return Codec(path.name, path)


def load_model(name: str | None = DEFAULT_CODEC):
    """Load (once per process) a codec from the zoo or from a folder (None: the default)."""
    name = name or DEFAULT_CODEC
    folder = model_folder(name)
    if not (folder / "model.safetensors").is_file():
        raise UserError(f"{name} is not a codec model")
    return _load_codec(str(folder.resolve()))


@functools.lru_cache(maxsize=8)
def _load_enhancer(folder: str):
    from ..enhance import Enhancer

    return Enhancer(Path(folder))


def load_enhancer(name: str, kind: str | None = None, scale: int | None = None):
    """Load a restoration or super-resolution model from the zoo or from a folder; ``kind``
    (``"restore"`` / ``"sr"``) and ``scale`` refuse a model of another sort with a clear error."""
    folder = model_folder(name)
    if not (folder / "fidelity.safetensors").is_file():
        raise UserError(f"{name} is not a restoration or super-resolution model")
    model = _load_enhancer(str(folder.resolve()))
    if kind == "restore" and model.kind != "restore":
        raise UserError(f"model {model.name} is not a restoration model")
    if kind == "sr" and (model.kind != "sr" or (scale is not None and model.config.scale != scale)):
        raise UserError(f"model {model.name} is not a ×{scale or model.config.scale} super-resolution model")
    return model
