"""A streaming PNG writer: bands of rows in, a PNG file out, never the whole image in memory.

Pillow writes a PNG from a whole image (and holds RGB at 4 bytes a pixel besides the caller's
array), so a decoder that hands its output to Pillow needs about 7 bytes a pixel at the end
whatever its tiling did: 750 MB for a 108 MP photo. :class:`PngWriter` takes the decoded rows
band by band as the synthesis finishes them and deflates them at once.

Every row uses the Paeth filter. Choosing a filter per row (libpng's and Pillow's heuristic)
saves a few per cent on some images; Paeth alone is what that heuristic picks on most rows of
a photo, and unlike the choice it vectorises over a whole band (the encoder's predictor reads
only raw bytes, all known).
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np

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
