"""Streaming PNG: a writer (bands of rows in, a file out) and a reader (a file in, bands of
rows out), never the whole image in memory.

Pillow writes a PNG from a whole image (and holds RGB at 4 bytes a pixel besides the caller's
array), so a decoder that hands its output to Pillow needs about 7 bytes a pixel at the end
whatever its tiling did: 750 MB for a 108 MP photo. :class:`PngWriter` takes the decoded rows
band by band as the synthesis finishes them and deflates them at once.

Every row uses the Paeth filter. Choosing a filter per row (libpng's and Pillow's heuristic)
saves a few per cent on some images; Paeth alone is what that heuristic picks on most rows of
a photo, and unlike the choice it vectorises over a whole band (the encoder's predictor reads
only raw bytes, all known).

Pillow also *decodes* a PNG whole (4 bytes a pixel for RGB) before a caller can copy a single
row out, so reading a 108 MP photo held ~7 bytes a pixel at its peak. :func:`read_bands` walks
the file's chunks itself, inflates the IDAT stream incrementally, and hands each band of
filtered scanlines to Pillow as a small PNG of its own: the band's first scanline may be
filtered against the row above it, so the band's PNG starts with that row, raw (filter type 0),
and the caller drops it. Pillow's own decoder unfilters every row, so the pixels are Pillow's to
the bit. Plain 8-bit non-interlaced PNGs (grey, grey+alpha, RGB, RGBA, 8-bit palette) stream;
anything else (16-bit, 1/2/4-bit, Adam7) is left to Pillow (:func:`read_layout` says which).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels → PNG colour type (grey, grey+alpha, RGB, RGBA)
_IDAT_BYTES = 1 << 18  # compressed bytes per IDAT chunk
_FILTER_ROWS = 16  # rows filtered at once


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def paeth_filter(rows: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """Paeth-filtered scanlines (each prefixed with filter type 4) of uint8 ``rows`` (n, W, C),
    given the raw row above the first (None at the top of the image)."""
    n, w, c = rows.shape
    x = rows.reshape(n, w * c).astype(np.int16)
    up = np.empty_like(x)
    up[0] = 0 if previous is None else previous.reshape(w * c)
    up[1:] = x[:-1]
    left = np.zeros_like(x)
    left[:, c:] = x[:, :-c]
    up_left = np.zeros_like(x)
    up_left[:, c:] = up[:, :-c]
    p = left + up - up_left
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - up_left)
    predictor = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
    out = np.empty((n, 1 + w * c), dtype=np.uint8)
    out[:, 0] = 4
    out[:, 1:] = (x - predictor).astype(np.uint8)  # modulo 256
    return out


class PngWriter:
    """Write an 8-bit PNG of ``width`` × ``height`` with 1–4 channels to an open binary file:
    :meth:`write` bands of whole rows top to bottom, then :meth:`close`. An ICC profile and an
    EXIF block (TIFF structure, with or without JPEG's ``Exif\\0\\0`` prefix) are written as
    ``iCCP`` and ``eXIf`` chunks."""

    def __init__(self, fh: BinaryIO, width: int, height: int, channels: int, *, icc_profile: bytes | None = None,
                 exif: bytes | None = None, level: int = 6):
        if channels not in _COLOUR_TYPE:
            raise ValueError(f"a PNG has 1 to 4 channels, not {channels}")
        if not (0 < width < 2**31 and 0 < height < 2**31):
            raise ValueError(f"bad PNG size {width}×{height}")
        self.fh, self.width, self.height, self.channels = fh, width, height, channels
        self.rows_written = 0
        self._previous: np.ndarray | None = None
        self._deflate = zlib.compressobj(level)
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        fh.write(_SIGNATURE)
        fh.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPE[channels], 0, 0, 0)))
        if icc_profile:
            fh.write(_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)))
        if exif:
            fh.write(_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))

    def write(self, rows: np.ndarray) -> None:
        """The next rows: uint8 (n, width) or (n, width, channels)."""
        rows = np.asarray(rows)
        if rows.ndim == 2:
            rows = rows[..., None]
        if rows.dtype != np.uint8 or rows.shape[1:] != (self.width, self.channels):
            raise ValueError(f"rows must be uint8 (n, {self.width}, {self.channels}), got {rows.dtype} {rows.shape}")
        if self.rows_written + rows.shape[0] > self.height:
            raise ValueError("more rows than the image has")
        # a few rows at a time: the filter's int16 temporaries are ~20 bytes a pixel
        for r in range(0, rows.shape[0], _FILTER_ROWS):
            part = rows[r : r + _FILTER_ROWS]
            self._emit(self._deflate.compress(paeth_filter(part, self._previous).tobytes()))
            self._previous = part[-1].copy()
        self.rows_written += rows.shape[0]

    def close(self) -> None:
        """Finish the file (every row must have been written)."""
        if self.rows_written != self.height:
            raise ValueError(f"{self.rows_written} of {self.height} rows written")
        self._emit(self._deflate.flush(), final=True)
        self.fh.write(_chunk(b"IEND", b""))

    def _emit(self, data: bytes, final: bool = False) -> None:
        if data:
            self._pending.append(data)
            self._pending_bytes += len(data)
        if self._pending_bytes >= _IDAT_BYTES or (final and self._pending_bytes):
            self.fh.write(_chunk(b"IDAT", b"".join(self._pending)))
            self._pending, self._pending_bytes = [], 0


# -- reading ---------------------------------------------------------------------------------------
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type → bytes a pixel at bit depth 8
_KEPT = (b"PLTE", b"tRNS")  # chunks a band's PNG needs to decode like the whole file
_READ_BYTES = 1 << 20  # IDAT bytes read from the file at a time
_BAND_BYTES = 1 << 24  # raw bytes a band holds: ~16 MB


class PngError(ValueError):
    """The file is not a well-formed PNG (bad signature, chunk, CRC or image data)."""


@dataclass
class PngLayout:
    """What :func:`read_bands` needs from a PNG's chunks: its header, the chunks that change how
    pixels decode, the EXIF block (wherever it is) and where the image data lies."""

    width: int
    height: int
    bit_depth: int
    colour_type: int
    interlace: int
    kept: list[tuple[bytes, bytes]] = field(default_factory=list)
    exif: bytes | None = None
    idat: list[tuple[int, int]] = field(default_factory=list)  # (offset, length) of each IDAT's data

    @property
    def streamable(self) -> bool:
        return self.bit_depth == 8 and self.interlace == 0 and self.colour_type in _CHANNELS and bool(self.idat)

    @property
    def stride(self) -> int:
        """Bytes of one filtered scanline: the filter type, then the raw row."""
        return 1 + self.width * _CHANNELS[self.colour_type]


def read_layout(path: str | Path) -> PngLayout | None:
    """The layout of a PNG file from its chunk headers (the image data is skipped, not read), or
    None when it is not a PNG. A damaged chunk structure raises :class:`PngError`."""
    with open(path, "rb") as fh:
        if fh.read(8) != _SIGNATURE:
            return None
        size = fh.seek(0, io.SEEK_END)
        fh.seek(8)
        layout: PngLayout | None = None
        while True:
            head = fh.read(8)
            if len(head) < 8:
                raise PngError("the file ends before its IEND chunk")
            length, kind = struct.unpack(">I4s", head)
            start = fh.tell()
            if length > 2**31 - 1 or start + length + 4 > size:
                raise PngError(f"chunk {kind!r} runs past the end of the file")
            if kind == b"IDAT":
                if layout is None:
                    raise PngError("image data before the header")
                layout.idat.append((start, length))
                fh.seek(length + 4, io.SEEK_CUR)
                continue
            data = None
            if kind in (b"IHDR", b"eXIf", *_KEPT):
                data = fh.read(length)
                if struct.unpack(">I", fh.read(4))[0] != zlib.crc32(kind + data):
                    raise PngError(f"chunk {kind.decode('latin-1')} fails its CRC")
            else:
                fh.seek(length + 4, io.SEEK_CUR)
            if kind == b"IHDR":
                if length != 13:
                    raise PngError("bad IHDR chunk")
                w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data)
                if not (w and h):
                    raise PngError("the header declares an empty image")
                layout = PngLayout(w, h, depth, colour, interlace)
            elif layout is None:
                raise PngError("the first chunk is not IHDR")
            elif kind in _KEPT:
                layout.kept.append((kind, data))
            elif kind == b"eXIf":
                layout.exif = data
            elif kind == b"IEND":
                return layout


def image_layout(img: Image.Image) -> PngLayout | None:
    """:func:`read_layout` of the file an undecoded Pillow PNG was opened from, walked once per
    image and kept on it: deciding how to read an image asks for it several times (the streaming
    reader, libvips' 16-bit reader, the EXIF orientation), and a file of small IDAT chunks takes
    a seek per chunk. A damaged file raises :class:`PngError` each time it is asked."""
    cached = getattr(img, "_gancodec_png_layout", None)
    if cached is None:
        cached = img._gancodec_png_layout = (read_layout(img.filename),)
    return cached[0]


def read_bands(path: str | Path, layout: PngLayout, band_bytes: int = _BAND_BYTES) -> Iterator[Image.Image]:
    """The image of a :attr:`~PngLayout.streamable` PNG as Pillow images of whole rows, top to
    bottom, each about ``band_bytes`` of raw pixels; see the module docstring. Damaged image
    data (CRC, zlib stream, too few or too many bytes) raises :class:`PngError`."""
    if not layout.streamable:
        raise ValueError("read_bands takes a plain 8-bit non-interlaced PNG")
    stride = layout.stride
    total = stride * layout.height
    rows_per_band = max(1, band_bytes // stride)
    inflate = zlib.decompressobj()
    pending = bytearray()
    produced = 0
    previous: bytes | None = None  # raw bytes of the row above the next band
    emitted = 0

    def band(count: int) -> Image.Image:
        nonlocal previous, emitted
        data = bytes(pending[: count * stride])
        del pending[: count * stride]
        prefix = b"" if previous is None else b"\x00" + previous
        rows = count + (previous is not None)
        ihdr = struct.pack(">IIBBBBB", layout.width, rows, 8, layout.colour_type, 0, 0, 0)
        png = b"".join([_SIGNATURE, _chunk(b"IHDR", ihdr), *(_chunk(k, d) for k, d in layout.kept),
                        _chunk(b"IDAT", zlib.compress(prefix + data, 0)), _chunk(b"IEND", b"")])
        try:
            img = Image.open(io.BytesIO(png))
            img.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise PngError(f"bad image data: {exc}") from None
        previous = np.asarray(img)[-1].tobytes()
        emitted += count
        return img.crop((0, 1, layout.width, rows)) if rows > count else img

    with open(path, "rb") as fh:
        for offset, length in layout.idat:
            fh.seek(offset - 4)
            crc = zlib.crc32(fh.read(4))  # the chunk type
            left = length
            while left:
                piece = fh.read(min(left, _READ_BYTES))
                if not piece:
                    raise PngError("the file ends inside its image data")
                left -= len(piece)
                crc = zlib.crc32(piece, crc)
                while piece:
                    try:
                        out = inflate.decompress(piece, max(1, total - produced))
                    except zlib.error as exc:
                        raise PngError(f"bad image data: {exc}") from None
                    piece = inflate.unconsumed_tail
                    produced += len(out)
                    pending += out
                    if produced >= total and piece:
                        raise PngError("more image data than the header declares")
                    while len(pending) >= rows_per_band * stride:
                        yield band(rows_per_band)
            if struct.unpack(">I", fh.read(4))[0] != crc:
                raise PngError("an IDAT chunk fails its CRC")
    if produced != total or not inflate.eof:
        raise PngError(f"image data holds {produced} of the {total} bytes its header declares")
    if pending:
        yield band(len(pending) // stride)
    if emitted != layout.height:
        raise PngError("image data ends inside a row")
