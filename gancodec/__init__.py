"""gancodec: generative adversarial networks for images — a learned codec first.

Python API::

    import gancodec
    data = gancodec.compress("photo.png", quality=3)      # bytes of a .gcz file
    rgb = gancodec.decompress(data, decoder="gan")        # uint8 array
    model = gancodec.load_model("hific-lite")             # the shipped codec
    clean = gancodec.restore("photo.jpg", task="jpeg")    # artefact / noise removal
    big = gancodec.upscale("small.png", scale=4, realism=0.5)
    filled = gancodec.inpaint("photo.png", "mask.png")   # holes filled, the rest untouched
    gancodec.upscale_to_file("huge.png", "huger.png")     # file to file, in rows: any size
    digits = gancodec.generate(16, seed=0)                # uint8 (16, 28, 28) MNIST digits
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import CorruptFileError, ModelMismatchError, UserError
from .limits import DEFAULT_MAX_PIXELS
from .zoo import available_models, load_enhancer, load_generator, load_inpainter, load_model, load_model_for_file

__version__ = "0.1.0"
__all__ = [
    "compress", "decompress", "decompress_to_file", "restore", "upscale", "generate", "load_model",
    "load_enhancer", "load_generator", "available_models", "inpaint", "load_inpainter",
    "restore_to_file", "upscale_to_file", "inpaint_to_file",
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
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    keep_metadata: bool = False,
    progress: bool = False,
    refine: int = 0,
) -> bytes:
    """Compress an image (path, PIL image or uint8 array) to ``.gcz`` bytes.

    ``quality`` is continuous in [1, model.levels] (default 3); ``target_bpp`` instead searches
    the quality that gives that many bits per pixel. ``model`` is a name, a folder or a loaded
    model (default: the shipped ``hific-lite``). Images are made upright (EXIF orientation) and
    their ICC profile is kept; ``keep_metadata`` keeps EXIF too. Images above ``max_pixels``
    (default ≈179 MP, Pillow's limit; None: none) are refused from their header. ``progress``
    shows a bar on stderr once the call has taken 2 s. ``refine`` > 0 spends that many gradient
    steps on the image's latent (:mod:`gancodec.refine`; images up to 8 MP): a slower encode,
    fewer bytes for the same or better pixels, a file like any other.
    """
    return _model(model).compress(image, quality=quality, target_bpp=target_bpp, max_pixels=max_pixels,
                                  keep_metadata=keep_metadata, progress=progress, refine=refine)


def decompress(
    data: bytes, *, decoder: str = "mse", model=None, exact: bool = True, max_pixels: int | None = DEFAULT_MAX_PIXELS,
    progress: bool = False, realism: float | None = None,
) -> np.ndarray:
    """Decode ``.gcz`` bytes to a uint8 array; ``decoder`` is ``"mse"`` (fidelity) or ``"gan"``,
    or ``realism`` in 0..1 blends the two (ESRGAN-style network interpolation, bit-exact).
    ``exact=False`` uses the float32 synthesis: faster, but pixels may differ in the last bit
    between machines and thread counts (the fixed-point default is identical everywhere).
    A file declaring more than ``max_pixels`` is refused before anything is decoded; its ICC
    profile / EXIF are read with :func:`gancodec.codec.read_metadata`. Without ``model`` the
    installed codec that wrote the file is used (any released version, found from its header).
    ``progress`` shows a bar on stderr once the call has taken 2 s."""
    codec = load_model_for_file(data) if model is None else _model(model)
    return codec.decompress(data, decoder=decoder, exact=exact, max_pixels=max_pixels, progress=progress,
                            realism=realism)


def decompress_to_file(
    data: bytes, path, *, decoder: str = "mse", model=None, exact: bool = True,
    max_pixels: int | None = DEFAULT_MAX_PIXELS, progress: bool = False, realism: float | None = None,
) -> None:
    """:func:`decompress` straight into an image file (format from the suffix, ICC profile and
    EXIF attached, written atomically). A ``.png`` is written band by band as it is decoded, so
    the decoded image is never whole in memory: the way to decode very large files."""
    codec = load_model_for_file(data) if model is None else _model(model)
    codec.decompress_to_file(data, path, decoder=decoder, exact=exact, max_pixels=max_pixels, progress=progress,
                             realism=realism)


def _enhancer(model, default: str, kind: str, scale: int | None = None):
    return load_enhancer(model or default, kind, scale) if model is None or isinstance(model, str) else model


def restore(image, task: str = "auto", *, strength: float = 1.0, realism: float = 0.0, model=None,
            self_ensemble: bool = False) -> np.ndarray:
    """Remove JPEG artefacts (``task="jpeg"``), noise (``"denoise"``) or an unknown mix
    (``"auto"``) from an image (path, PIL image or uint8 array); returns uint8 RGB.
    ``realism`` blends the fidelity (0) and GAN (1) weights; ``strength`` scales the correction;
    ``self_ensemble`` averages the 8 flips/rotations (8× the time, a little more fidelity)."""
    from .codec import prepare_image

    enhancer = _enhancer(model, "restore-lite", "restore")
    return enhancer.run(prepare_image(image).rgb, realism=realism, task=task, strength=strength,
                        self_ensemble=self_ensemble)


def upscale(image, scale: int = 4, *, realism: float = 0.0, model=None, self_ensemble: bool = False) -> np.ndarray:
    """Super-resolve an image ×2 or ×4; returns uint8 RGB. ``realism`` and ``self_ensemble`` as
    in :func:`restore`."""
    from .codec import prepare_image

    if scale not in (2, 4):
        raise UserError(f"scale {scale} is not supported (use 2 or 4)")
    enhancer = _enhancer(model, f"sr-x{scale}-lite", "sr", scale)
    return enhancer.run(prepare_image(image).rgb, realism=realism, self_ensemble=self_ensemble)


def restore_to_file(src, dst, task: str = "auto", *, strength: float = 1.0, realism: float = 0.0, model=None,
                    self_ensemble: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                    progress: bool = False) -> None:
    """:func:`restore` from an image file to an image file (format from the suffix, ICC profile
    kept, written atomically): a large PNG, JPEG or TIFF is read in rows and a ``.png`` written
    in rows, so neither image is whole in memory (what ``gancodec restore`` does)."""
    enhancer = _enhancer(model, "restore-lite", "restore")
    enhancer.run_file(src, dst, max_pixels=max_pixels, task=task, strength=strength, realism=realism,
                      self_ensemble=self_ensemble, progress=progress)


def upscale_to_file(src, dst, scale: int = 4, *, realism: float = 0.0, model=None, self_ensemble: bool = False,
                    max_pixels: int | None = DEFAULT_MAX_PIXELS, progress: bool = False) -> None:
    """:func:`upscale` from an image file to an image file, in rows as :func:`restore_to_file`."""
    if scale not in (2, 4):
        raise UserError(f"scale {scale} is not supported (use 2 or 4)")
    enhancer = _enhancer(model, f"sr-x{scale}-lite", "sr", scale)
    enhancer.run_file(src, dst, max_pixels=max_pixels, realism=realism, self_ensemble=self_ensemble,
                      progress=progress)


def generate(n: int, digit: int | None = None, seed: int | None = None, model=None,
             truncation: float | None = None) -> np.ndarray:
    """``n`` generated images as uint8 (n, H, W) — (n, H, W, 3) for a colour model. ``digit``
    asks a class-conditional model for that digit (default model: ``mnist-dcgan-cond`` when a
    digit is given, else ``mnist-dcgan``); the same ``seed`` and model give the same pixels;
    ``truncation`` T redraws noise entries beyond ±T (cleaner, less varied samples)."""
    gen = load_generator(model, conditional=digit is not None) if model is None or isinstance(model, str) else model
    return gen.generate(n, digit=digit, seed=seed, truncation=truncation)


def _inpainter(model):
    return load_inpainter(model) if model is None or isinstance(model, str) else model


def inpaint(image, mask, *, realism: float = 0.0, dilate: int = 0, model=None,
            allow_empty: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Fill the holes of an image (path, PIL image or uint8 array) where ``mask`` (a path, PIL
    image or array of the image's size: non-zero / white = fill, or alpha when present) says;
    every pixel outside the (``dilate``-grown) mask is returned unchanged. Greyscale in gives
    greyscale out, alpha is carried over. ``realism`` blends the fidelity (0) and GAN (1)
    weights. An empty mask is an error unless ``allow_empty``; an image above ``max_pixels``
    (None: no limit) is refused before it is decoded."""
    from .inpainting import inpaint_image

    inpainter = _inpainter(model)
    return inpaint_image(inpainter, image, mask, realism=realism, dilate_px=dilate, allow_empty=allow_empty,
                         max_pixels=max_pixels)


def inpaint_to_file(src, mask, dst, *, realism: float = 0.0, dilate: int = 0, model=None,
                    allow_empty: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
    """:func:`inpaint` from an image file to an image file (format from the suffix, ICC profile
    kept, written atomically): a large PNG, JPEG or TIFF without alpha is read in rows and a
    ``.png`` written in rows, so only the mask is held whole (what ``gancodec inpaint`` does)."""
    from .inpainting import inpaint_file

    inpainter = _inpainter(model)
    inpaint_file(inpainter, src, mask, dst, realism=realism, dilate_px=dilate, allow_empty=allow_empty,
                 max_pixels=max_pixels)
