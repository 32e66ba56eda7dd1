"""Pretrained models shipped inside the package (``zoo/weights/NAME/``), loaded offline.

Each folder holds ``model.safetensors`` (weights and frozen entropy tables), ``config.json`` and
``MODEL_CARD.md`` (training data, steps, time and measured results). ``GANCODEC_WEIGHTS`` may
name an extra folder of model folders, searched first.

Codec releases: ``hific-lite/`` is the newest release, the one new files are written with; each
earlier release stays installed as ``hific-lite-vX.Y/`` (config ``"name"`` still ``hific-lite``,
the name its files carry). A file is decoded by the installed codec whose config name and
weights hash match its header (:func:`find_codec`), so no released model's files are orphaned.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelMismatchError, UserError

PACKAGE_WEIGHTS = Path(__file__).parent / "weights"
DEFAULT_CODEC = "hific-lite"


def _search_path() -> list[Path]:
    extra = os.environ.get("GANCODEC_WEIGHTS")
    return ([Path(extra)] if extra else []) + [PACKAGE_WEIGHTS]


# codec, restoration / SR, generator, MNIST judge
WEIGHT_FILES = ("model.safetensors", "fidelity.safetensors", "generator.safetensors", "judge.safetensors")


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


CODEC_WEIGHTS = "model.safetensors"
HASH_BYTES = 8  # as stored in a .gcz header (gancodec.bitstream.HASH_BYTES)


def weights_hash(path: Path) -> bytes:
    """A codec's identity in the files it writes: the first 8 bytes of SHA-256 of its weights."""
    return hashlib.sha256(Path(path).read_bytes()).digest()[:HASH_BYTES]


@functools.lru_cache(maxsize=64)
def _hash_of(path: str, size: int, mtime_ns: int) -> bytes:
    # Keyed on size and mtime too, so a folder whose weights are replaced is hashed again.
    return weights_hash(Path(path))


#: What a codec's ``--realism`` interpolates (config "realism_blend"): its two decoders' weights
#: (ESRGAN's network interpolation; every release up to v0.8, and the meaning of no key) or their
#: 8-bit images (v0.9 on). Fixed per model, so a file decodes at a realism as it always did.
REALISM_BLENDS = ("weights", "pixels")


@dataclass(frozen=True)
class CodecEntry:
    """An installed codec folder as a file's header identifies it, read without loading it."""

    folder: Path
    name: str  # the name its files carry (config "name")
    version: str | None  # the release ("0.5"); None for a model exported without one
    weights_hash: bytes
    realism_blend: str = "weights"  # one of REALISM_BLENDS
    gan_anchor: str | None = None  # what an anchored GAN decoder is anchored to (config "gan_anchor")

    def matches(self, model: str, digest: bytes) -> bool:
        # The folder's own name is accepted too: before the config name was written into
        # headers, a codec wrote its folder's name, and those files must keep decoding.
        return digest == self.weights_hash and model in (self.name, self.folder.name)

    def describe(self) -> str:
        return f"{self.name} {self.version or '(no version)'} [{self.folder.name}] @{self.weights_hash.hex()}"


def codec_entry(folder: Path) -> CodecEntry | None:
    """The identity of a codec folder, or None if it is not one. The hash is read from
    ``config.json`` (``"weights_hash"``, written at export) so that looking a file's model up
    never reads every installed weights file; without it the file is hashed (once per process).
    Loading the codec checks the stored hash against the weights (:class:`gancodec.codec.Codec`)."""
    weights = folder / CODEC_WEIGHTS
    try:
        meta = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if not weights.is_file() or not isinstance(meta, dict) or "codec_config" not in meta:
        return None
    try:
        digest = bytes.fromhex(meta["weights_hash"]) if "weights_hash" in meta else None
    except (TypeError, ValueError):
        digest = None
    if digest is None or len(digest) != HASH_BYTES:
        stat = weights.stat()
        digest = _hash_of(str(weights.resolve()), stat.st_size, stat.st_mtime_ns)
    version = meta.get("version")
    return CodecEntry(folder, str(meta.get("name", folder.name)), str(version) if version else None, digest,
                      str(meta.get("realism_blend", "weights")),
                      str(meta["gan_anchor"]) if meta.get("gan_anchor") else None)


def installed_codecs() -> list[CodecEntry]:
    """Every installed codec, in search order: ``GANCODEC_WEIGHTS`` first, then the package."""
    out: list[CodecEntry] = []
    for root in _search_path():
        if root.is_dir():
            for folder in sorted(root.iterdir()):
                entry = codec_entry(folder) if folder.is_dir() else None
                if entry is not None:
                    out.append(entry)
    return out


def find_codec(model: str, digest: bytes) -> CodecEntry:
    """The installed codec that wrote a file whose header names ``model`` with weights hash
    ``digest``; the first in search order when several match. Raises :class:`ModelMismatchError`
    naming the model and what is installed when none matches."""
    entries = installed_codecs()
    for entry in entries:
        if entry.matches(model, digest):
            return entry
    listed = "; ".join(e.describe() for e in entries) or "none"
    raise ModelMismatchError(
        f"file was made by model {model}@{digest.hex()}, which is not installed "
        f"(installed codecs: {listed}); pass --model FOLDER if you have its weights"
    )


def load_model_for_file(data: bytes):
    """The codec that decodes ``.gcz`` bytes, found from the file's header (model name +
    weights hash) among installed codecs. A name read from a file is never used as a path."""
    from ..bitstream import Container

    header = Container.from_bytes(data).header
    return _load_codec(str(find_codec(header.model, header.weights_hash).folder.resolve()))


@functools.lru_cache(maxsize=8)
def _load_enhancer(folder: str):
    from ..enhance import Enhancer

    return Enhancer(Path(folder))


def load_enhancer(name: str, kind: str | None = None, scale: int | None = None):
    """Load a restoration or super-resolution model from the zoo or from a folder; ``kind``
    (``"restore"`` / ``"sr"``) and ``scale`` refuse a model of another sort with a clear error."""
    folder = model_folder(name)
    if not (folder / "fidelity.safetensors").is_file() or _folder_kind(folder) == "inpaint":
        raise UserError(f"{name} is not a restoration or super-resolution model")
    model = _load_enhancer(str(folder.resolve()))
    if kind == "restore" and model.kind != "restore":
        raise UserError(f"model {model.name} is not a restoration model")
    if kind == "sr" and (model.kind != "sr" or (scale is not None and model.config.scale != scale)):
        raise UserError(f"model {model.name} is not a ×{scale or model.config.scale} super-resolution model")
    return model


@functools.lru_cache(maxsize=8)
def _load_gan(folder: str):
    from ..generator import GANModel

    return GANModel(Path(folder))


def load_generator(name: str | None = None, conditional: bool = False):
    """Load an image generator (``gancodec train gan``, exported) from the zoo or from a folder;
    None: the shipped MNIST model, the class-conditional one if ``conditional``."""
    from ..generator import DEFAULT_CONDITIONAL_GAN, DEFAULT_GAN, WEIGHTS_FILE

    if name is None:
        name = DEFAULT_CONDITIONAL_GAN if conditional else DEFAULT_GAN
        if name not in available_models():
            raise UserError(f"no {name} weights in this installation: train one with `gancodec train gan`, "
                            "export it with `gancodec train export` and pass --model FOLDER")
    folder = model_folder(name)
    if not (folder / WEIGHTS_FILE).is_file():
        raise UserError(f"{name} is not a generator model")
    return _load_gan(str(folder.resolve()))


def _folder_kind(folder: Path) -> str | None:
    import json

    try:
        return json.loads((folder / "config.json").read_text()).get("kind")
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=4)
def _load_inpainter(folder: str):
    from ..inpainting import Inpainter

    return Inpainter(Path(folder))


def load_inpainter(name: str | None = None):
    """Load an inpainting model from the zoo or from a folder (None: the default,
    ``inpaint-lite``); a model of another sort is refused with a clear error."""
    from ..inpainting import DEFAULT_MODEL

    name = name or DEFAULT_MODEL
    if name == DEFAULT_MODEL and name not in available_models() and not Path(name).is_dir():
        raise UserError(f"no {name} weights in this installation: train a model with "
                        "`gancodec train inpaint`, export it and pass --model FOLDER")
    folder = model_folder(name)
    if not (folder / "fidelity.safetensors").is_file() or _folder_kind(folder) != "inpaint":
        raise UserError(f"{name} is not an inpainting model")
    return _load_inpainter(str(folder.resolve()))
