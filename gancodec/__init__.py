"""gancodec: generative adversarial networks for images — a learned codec first.

Python API::

    import gancodec
    data = gancodec.compress("photo.png", quality=3)      # bytes of a .gcz file
    rgb = gancodec.decompress(data, decoder="gan")        # uint8 array
    model = gancodec.load_model("hific-lite")             # the shipped codec
    clean = gancodec.restore("photo.jpg", task="jpeg")    # artefact / noise removal
    big = gancodec.upscale("small.png", scale=4, realism=0.5)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import CorruptFileError, ModelMismatchError, UserError
from .zoo import available_models, load_enhancer, load_model

__version__ = "0.1.0"
__all__ = [
    "compress", "decompress", "restore", "upscale", "load_model", "load_enhancer", "available_models",
    "UserError", "CorruptFileError", "ModelMismatchError", "__version__",
]


def _model(model):
    return load_model(model) if model is None or isinstance(model, str) else model


def compress(
    image: str | Path | np.ndarray,
    quality: float | None = None,
    *,
    target_bpp: float | None = None,
    model=None,
) -> bytes:
    """Compress an image (path, PIL image or uint8 array) to ``.gcz`` bytes.

    ``quality`` is continuous in [1, model.levels] (default 3); ``target_bpp`` instead searches
    the quality that gives that many bits per pixel. ``model`` is a name, a folder or a loaded
    model (default: the shipped ``hific-lite``).
    """
    return _model(model).compress(image, quality=quality, target_bpp=target_bpp)


def decompress(data: bytes, *, decoder: str = "mse", model=None, exact: bool = True) -> np.ndarray:
    """Decode ``.gcz`` bytes to a uint8 array; ``decoder`` is ``"mse"`` (fidelity) or ``"gan"``.
    ``exact=False`` uses the float32 synthesis: faster, but pixels may differ in the last bit
    between machines and thread counts (the fixed-point default is identical everywhere)."""
    return _model(model).decompress(data, decoder=decoder, exact=exact)


def _enhancer(model, default: str, kind: str, scale: int | None = None):
    return load_enhancer(model or default, kind, scale) if model is None or isinstance(model, str) else model


def restore(image, task: str = "auto", *, strength: float = 1.0, realism: float = 0.0, model=None) -> np.ndarray:
    """Remove JPEG artefacts (``task="jpeg"``), noise (``"denoise"``) or an unknown mix
    (``"auto"``) from an image (path, PIL image or uint8 array); returns uint8 RGB.
    ``realism`` blends the fidelity (0) and GAN (1) weights; ``strength`` scales the correction."""
    from .codec import prepare_image

    enhancer = _enhancer(model, "restore-lite", "restore")
    return enhancer.run(prepare_image(image).rgb, realism=realism, task=task, strength=strength)


def upscale(image, scale: int = 4, *, realism: float = 0.0, model=None) -> np.ndarray:
    """Super-resolve an image ×2 or ×4; returns uint8 RGB. ``realism`` as in :func:`restore`."""
    from .codec import prepare_image

    if scale not in (2, 4):
        raise UserError(f"scale {scale} is not supported (use 2 or 4)")
    enhancer = _enhancer(model, f"sr-x{scale}-lite", "sr", scale)
    return enhancer.run(prepare_image(image).rgb, realism=realism)
