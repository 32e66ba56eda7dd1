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


def model_folder(name: str) -> Path:
    """The folder of a model: a name from the zoo, or a path to a folder with model.safetensors."""
    direct = Path(name)
    if (direct / "model.safetensors").is_file():
        return direct
    for root in _search_path():
        if (root / name / "model.safetensors").is_file():
            return root / name
    raise UserError(f"unknown model {name!r}; available: {', '.join(available_models()) or 'none'}")


def available_models() -> list[str]:
    names: set[str] = set()
    for root in _search_path():
        if root.is_dir():
            names.update(p.parent.name for p in root.glob("*/model.safetensors"))
    return sorted(names)


@functools.lru_cache(maxsize=8)
def _load_codec(folder: str):
    from ..codec import Codec

    path = Path(folder)
    return Codec(path.name, path)


def load_model(name: str = DEFAULT_CODEC):
    """Load (once per process) a codec from the zoo or from a folder."""
    return _load_codec(str(model_folder(name).resolve()))
