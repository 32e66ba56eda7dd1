"""Large JPEGs, TIFFs and 16-bit PNGs read top to bottom in bands of rows, never whole, through libvips (pyvips).

Pillow decodes a JPEG or TIFF whole (4 bytes a pixel for RGB) before a single row can be copied
out, and has no scanline interface. libvips' loaders in sequential mode decode rows as they are
asked for and keep only a few bands, never the image (Pillow's 4 bytes a pixel). The
pixels are libjpeg-turbo's / libtiff's with the same settings as Pillow's (tests compare them for
4:4:4, 4:2:0, greyscale and progressive JPEGs, and raw, LZW, deflate and JPEG-compressed TIFFs),
and a truncated file is refused as Pillow refuses it.

16-bit RGB TIFFs and PNGs (a raw converter's or a scanner's export) come out as Pillow reads them,
the high byte of each sample; 16-bit greyscale ones, which Pillow keeps in 16 bits, are scaled
to 8 bits from their full range (:data:`SIXTEEN_BIT_TO_8`), as :mod:`gancodec.imageio` scales
Pillow's. (8-bit PNGs have a reader of our own, :mod:`gancodec.pngstream`.)

A photo stored turned (EXIF orientation) is turned upright as it is read, through a temporary
file (:meth:`VipsRows.upright_bands`, :mod:`gancodec.orientation`).

Only images above :data:`STREAM_PIXELS` are read this way (below it Pillow's copy is small and
loading libvips is not worth it), only RGB or greyscale ones, and only when pyvips and its
library load: otherwise :func:`open_rows` gives None and the caller decodes with Pillow, as before.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from types import ModuleType

import numpy as np
from PIL import Image

from .orientation import upright_bands
from .pngstream import PngError, image_layout

STREAM_PIXELS = 8_000_000
_FORMATS = ("JPEG", "MPO", "TIFF", "PNG")  # MPO: a phone's JPEG with extra pictures; its first is the photo
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L")  # Pillow's modes of 16-bit greyscale
_BANDS = {"RGB": 3, "L": 1, **dict.fromkeys(SIXTEEN_BIT_MODES, 1)}
# 16-bit greyscale to 8 bits, rounded: v / 65535 · 255 (a table: the float64 form of a 108 MP
# image alone would be 860 MB)
SIXTEEN_BIT_TO_8 = np.clip(np.arange(65536) / 65535.0 * 255 + 0.5, 0, 255).astype(np.uint8)
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
    """Whether ``img`` is an undecoded large JPEG, TIFF or 16-bit PNG that :func:`open_rows` can
    read in rows (the caller reads how it is turned). Reads nothing but Pillow's
    header, and a PNG's chunk headers."""
    w, h = img.size
    return (img.format in _FORMATS and img.mode in _BANDS and w * h > STREAM_PIXELS
            and bool(getattr(img, "tile", None)) and bool(getattr(img, "filename", ""))
            and (img.format != "PNG" or _sixteen_bit_png(img))
            and _pyvips() is not None)


def _sixteen_bit_png(img: Image.Image) -> bool:
    """A non-interlaced 16-bit RGB or greyscale PNG: libvips (libspng) decodes it row by row.
    An interlaced one it would decode whole; 8-bit ones :mod:`gancodec.pngstream` reads."""
    try:
        layout = image_layout(img)
    except (OSError, PngError):
        return False  # the whole-image reader says what is wrong with it
    return layout is not None and layout.bit_depth == 16 and layout.interlace == 0 and layout.colour_type in (0, 2)


def stored_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) of the pixels as the file stores them. Pillow gives a TIFF whose EXIF
    orientation swaps its sides the upright size before decoding it (and turns it as it loads
    it); libvips, and every other format in Pillow, give the stored one."""
    if img.format == "TIFF":
        tags = getattr(img, "tag_v2", {})
        try:
            return int(tags[256]), int(tags[257])  # ImageWidth, ImageLength
        except (KeyError, TypeError, ValueError):
            pass
    return img.size


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
        self._sample = np.uint16 if image.format == "ushort" else np.uint8

    def bands(self, band_bytes: int) -> Iterator[np.ndarray]:
        """The image as uint8 (rows, W, 1 | 3) arrays of about ``band_bytes`` each, top to bottom."""
        h, w, c = self.shape
        align = self._align  # bands start on the file's strips (see _alignment)
        size = np.dtype(self._sample).itemsize
        rows = max(align, band_bytes // (w * c * size) // align * align)
        pyvips = _pyvips()
        for r0 in range(0, h, rows):
            n = min(rows, h - r0)
            try:
                data = self._image.crop(0, r0, w, n).write_to_memory()
            except pyvips.Error as exc:
                detail = (exc.detail or exc.message or "").strip().splitlines()
                raise StreamError(detail[0] if detail else "damaged or truncated image data") from None
            if len(data) != n * w * c * size:
                raise StreamError(f"{r0} of {h} rows")
            band = np.frombuffer(data, dtype=self._sample).reshape(n, w, c)
            if size == 1:
                yield band
            elif c == 1:
                yield SIXTEEN_BIT_TO_8[band]
            else:
                yield (band >> 8).astype(np.uint8)  # Pillow's RGB of a 16-bit file

    def upright_bands(self, orientation: int, band_bytes: int) -> Iterator[np.ndarray]:
        """:meth:`bands` turned upright as EXIF ``orientation`` says (1..8), through a temporary
        file when it is not 1 (:func:`gancodec.orientation.upright_bands`)."""
        return upright_bands(self.bands(band_bytes), self.shape, orientation, band_bytes)

    def pillow_bands(self, band_bytes: int, orientation: int = 1) -> Iterator[Image.Image]:
        """:meth:`upright_bands` as Pillow images (mode L or RGB)."""
        for band in self.upright_bands(orientation, band_bytes):
            yield Image.fromarray(band[..., 0] if band.shape[2] == 1 else band)

    def rgb_bands(self, band_bytes: int, orientation: int = 1) -> Iterator[np.ndarray]:
        """:meth:`upright_bands` as read-only (rows, W, 3) arrays (greyscale repeated)."""
        for band in self.upright_bands(orientation, band_bytes):
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
    if img.mode in SIXTEEN_BIT_MODES or img.format == "PNG":
        sample = ("ushort",)
    else:  # Pillow opens a 16-bit RGB TIFF as RGB too
        sample = ("uchar", "ushort") if img.format == "TIFF" and img.mode == "RGB" else ("uchar",)
    if (image.width, image.height) != stored_size(img) or image.format not in sample or image.bands != _BANDS[img.mode]:
        return None
    return VipsRows(image, str(img.filename), _alignment(img))
