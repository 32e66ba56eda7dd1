"""Large JPEGs and TIFFs read top to bottom in bands of rows, never whole, through libvips (pyvips).

Pillow decodes a JPEG or TIFF whole (4 bytes a pixel for RGB) before a single row can be copied
out, and has no scanline interface. libvips' loaders in sequential mode decode rows as they are
asked for and keep only a few bands, never the image (Pillow's 4 bytes a pixel). The
pixels are libjpeg-turbo's / libtiff's with the same settings as Pillow's (tests compare them for
4:4:4, 4:2:0, greyscale and progressive JPEGs, and raw, LZW, deflate and JPEG-compressed TIFFs),
and a truncated file is refused as Pillow refuses it.

Only images above :data:`STREAM_PIXELS` are read this way (below it Pillow's copy is small and
loading libvips is not worth it), only upright 8-bit RGB or greyscale ones (the caller applies
EXIF orientation, which would need the whole image), and only when pyvips and its library load:
otherwise :func:`open_rows` gives None and the caller decodes with Pillow, as before.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from types import ModuleType

import numpy as np
from PIL import Image

STREAM_PIXELS = 8_000_000
_FORMATS = ("JPEG", "MPO", "TIFF")  # MPO: a phone's JPEG with extra pictures; its first is the photo
_BANDS = {"RGB": 3, "L": 1}
_JPEG_ALIGN = 64  # rows; a multiple of every JPEG strip height (8 · vertical sampling, at most 32)
_TIFF_ROWS_PER_STRIP, _TIFF_TILE_LENGTH = 278, 323


class StreamError(Exception):
    """The file could not be decoded (truncated, damaged) as its rows were read."""


@functools.cache
def _pyvips() -> ModuleType | None:
    """pyvips with its library loaded, or None where either is missing or broken."""
    try:
        import pyvips

        pyvips.version(0)
    except Exception:  # noqa: BLE001 - ImportError, OSError (no libvips), cffi's errors: use Pillow
        return None
    return pyvips


def streamable(img: Image.Image) -> bool:
    """Whether ``img`` is an undecoded large JPEG or TIFF that :func:`open_rows` can read in rows (the
    caller has checked that it needs no rotation). Reads nothing but Pillow's header."""
    w, h = img.size
    return (img.format in _FORMATS and img.mode in _BANDS and w * h > STREAM_PIXELS
            and bool(getattr(img, "tile", None)) and bool(getattr(img, "filename", ""))
            and _pyvips() is not None)


def _alignment(img: Image.Image) -> int:
    """Rows a band must start on a multiple of: libvips' sequential readers refuse a request that
    starts inside a strip they have passed ("out of order read"). A JPEG's strips are 8 or 16
    rows; a TIFF's are its strips (RowsPerStrip) or its tiles' height."""
    if img.format != "TIFF":
        return _JPEG_ALIGN
    tags = getattr(img, "tag_v2", {})
    rows = tags.get(_TIFF_TILE_LENGTH) or tags.get(_TIFF_ROWS_PER_STRIP) or img.size[1]
    try:
        return max(1, min(int(rows), img.size[1]))
    except (TypeError, ValueError):
        return img.size[1]


class VipsRows:
    """An opened image whose rows are decoded band by band, top to bottom, once each."""

    def __init__(self, image, filename: str, align: int = _JPEG_ALIGN) -> None:
        self._image = image
        self.filename = filename
        self.shape = (image.height, image.width, image.bands)
        self._align = align

    def bands(self, band_bytes: int) -> Iterator[np.ndarray]:
        """The image as uint8 (rows, W, 1 | 3) arrays of about ``band_bytes`` each, top to bottom."""
        h, w, c = self.shape
        align = self._align  # bands start on the file's strips (see _alignment)
        rows = max(align, band_bytes // (w * c) // align * align)
        pyvips = _pyvips()
        for r0 in range(0, h, rows):
            n = min(rows, h - r0)
            try:
                data = self._image.crop(0, r0, w, n).write_to_memory()
            except pyvips.Error as exc:
                detail = (exc.detail or exc.message or "").strip().splitlines()
                raise StreamError(detail[0] if detail else "damaged or truncated image data") from None
            if len(data) != n * w * c:
                raise StreamError(f"{r0} of {h} rows")
            yield np.frombuffer(data, dtype=np.uint8).reshape(n, w, c)

    def pillow_bands(self, band_bytes: int) -> Iterator[Image.Image]:
        """:meth:`bands` as Pillow images (mode L or RGB)."""
        for band in self.bands(band_bytes):
            yield Image.fromarray(band[..., 0] if band.shape[2] == 1 else band)

    def rgb_bands(self, band_bytes: int) -> Iterator[np.ndarray]:
        """:meth:`bands` as read-only (rows, W, 3) arrays (greyscale repeated)."""
        for band in self.bands(band_bytes):
            rgb = np.repeat(band, 3, axis=2) if band.shape[2] == 1 else band
            rgb.flags.writeable = False
            yield rgb


def open_rows(img: Image.Image) -> VipsRows | None:
    """``img``'s file opened for reading in rows when :func:`streamable`, else None (also when
    libvips cannot open it or sees it otherwise than Pillow does: Pillow then decodes it and
    says what is wrong)."""
    if not streamable(img):
        return None
    pyvips = _pyvips()
    try:
        image = pyvips.Image.new_from_file(str(img.filename), access="sequential", fail_on="truncated")
    except pyvips.Error:
        return None
    if (image.width, image.height) != img.size or image.format != "uchar" or image.bands != _BANDS[img.mode]:
        return None
    return VipsRows(image, str(img.filename), _alignment(img))
