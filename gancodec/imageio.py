"""The one image I/O layer every command uses: reading, mode handling and atomic writes.

Reading normalises any Pillow-readable file to an 8-bit array and remembers whether it was
greyscale. Writing always goes to a temporary file in the destination folder followed by a
rename, so an interrupted or failed command never leaves a half-written output behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
Image.MAX_IMAGE_PIXELS = 400_000_000  # large photos are fine; decompression bombs are not


def open_image(path: str | Path) -> Image.Image:
    path = Path(path)
    if not path.exists():
        raise UserError(f"input file not found: {path}")
    if path.is_dir():
        raise UserError(f"input is a folder, not an image: {path}")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"cannot read image {path}: {exc}") from None
    except Image.DecompressionBombError as exc:
        raise UserError(f"image {path} is too large: {exc}") from None
    return img


def has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)


def is_greyscale(img: Image.Image) -> bool:
    return img.mode in ("1", "L", "LA", "I", "I;16", "F")


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8. 16-bit and float greyscale are scaled down to 8 bits."""
    if img.mode in ("I", "I;16", "F"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / peak * 255 + 0.5, 0, 255).astype(np.uint8))
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def load_rgb_array(path: str | Path) -> np.ndarray:
    return to_rgb_array(open_image(path))


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path next to ``path``, renamed onto it only if the block succeeds."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"output folder does not exist: {parent}")
    if path.is_dir():
        raise UserError(f"output path is a folder: {path}")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=parent)
    except OSError as exc:
        raise UserError(f"cannot write to {parent}: {exc.strerror}") from None
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes 0600 (and some writers recreate the file): set the usual mode last.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_output(path: str | Path, mode: str = "wb") -> Iterator:
    """Open a temp file next to ``path``; rename it into place only if the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode) as fh:
        yield fh


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_output(path) as fh:
        fh.write(data)


def save_image(path: str | Path, array: np.ndarray, format: str | None = None, **params) -> None:
    """Save a uint8 (H, W), (H, W, 3) or (H, W, 4) array; format inferred from the suffix."""
    path = Path(path)
    fmt = format or Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"unknown image format for output {path} (use .png, .jpg, .webp, ...)")
    img = Image.fromarray(array)
    if fmt == "JPEG" and img.mode == "RGBA":
        raise UserError("JPEG cannot store transparency: write a .png instead")
    with atomic_output(path) as fh:
        img.save(fh, format=fmt, **params)
