"""The y stream in horizontal bands (``.gcz`` version 3): layout and the decoder's band store.

Version 1 and 2 files code the latent's symbols grouped by probability table across the whole
image, so both sides hold every symbol of the image at once. Large images are written in bands
of ``band_rows`` latent rows instead, each band its own ANS stream (its anchors, then the rest,
exactly as a one-band file codes the whole latent), so the coder and the decoder hold a few
bands, not the image. Bands are not independent: a band's non-anchors read the anchors up to
the context model's reach into the bands above and below it, which are decoded first.

Layout (docs/FORMAT.md): the y stream is ``band_rows`` (u16), then for each band the byte
length of its ANS words (u32), then of its escape values (u32), then the bands' words one after
another; the y-escapes stream is the bands' escapes one after another.
"""

from __future__ import annotations

import struct

import numpy as np

from ..errors import CorruptFileError
from ..tiling import spans

MIN_BAND_ROWS = 4  # at least the context model's reach (2 rows) into the next band
MAX_BAND_ROWS = 65535


def band_spans(height: int, band_rows: int) -> list[tuple[int, int]]:
    """(first row, end row) of each band of a latent ``height`` rows high."""
    return spans(height, band_rows)


def pack_bands(band_rows: int, bands: list[tuple[bytes, bytes]]) -> tuple[bytes, bytes]:
    """The (y, y-escapes) streams of bands given as (ANS words, escapes) each."""
    if not MIN_BAND_ROWS <= band_rows <= MAX_BAND_ROWS:
        raise ValueError(f"band_rows must be {MIN_BAND_ROWS}..{MAX_BAND_ROWS}")
    lengths = [n for words, escapes in bands for n in (len(words), len(escapes))]
    index = struct.pack(f"<H{len(lengths)}I", band_rows, *lengths)
    return index + b"".join(w for w, _ in bands), b"".join(e for _, e in bands)


def unpack_bands(y: bytes, y_escapes: bytes, latent_height: int) -> tuple[int, list[tuple[bytes, bytes]]]:
    """(band_rows, [(ANS words, escapes) per band]) of a version-3 file whose latent is
    ``latent_height`` rows high. Every length is checked against the streams before use."""
    if len(y) < 2:
        raise CorruptFileError("file's banded latent stream is truncated")
    (band_rows,) = struct.unpack_from("<H", y)
    if band_rows < MIN_BAND_ROWS:
        raise CorruptFileError(f"file's banded latent stream is damaged (bands of {band_rows} rows)")
    n = len(band_spans(latent_height, band_rows))
    start = 2 + 8 * n
    if len(y) < start:
        raise CorruptFileError("file's banded latent stream is truncated (band index)")
    lengths = np.frombuffer(y, dtype="<u4", count=2 * n, offset=2).astype(np.int64).reshape(n, 2)
    if start + int(lengths[:, 0].sum()) != len(y) or int(lengths[:, 1].sum()) != len(y_escapes):
        raise CorruptFileError("file's banded latent stream is damaged (band lengths disagree)")
    bands, pos, esc = [], start, 0
    for words_len, escapes_len in lengths.tolist():
        bands.append((y[pos : pos + words_len], y_escapes[esc : esc + escapes_len]))
        pos += words_len
        esc += escapes_len
    return band_rows, bands


class BandStore:
    """Decoded rows of a latent, band by band, as the decoder moves down the image: bands are
    added as they are decoded and dropped once no later window can reach them."""

    def __init__(self, spans: list[tuple[int, int]]):
        self.spans = spans
        self.arrays: dict[int, np.ndarray] = {}  # band -> (1, C, rows, W) array

    def covering(self, r0: int, r1: int) -> range:
        """Indices of the bands holding rows r0:r1."""
        first = next(b for b, (s, e) in enumerate(self.spans) if e > r0)
        last = next(b for b, (s, e) in enumerate(self.spans) if e >= r1)
        return range(first, last + 1)

    def rows(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Rows r0:r1, columns c0:c1 (a view when one band holds them, else a copy)."""
        parts = []
        for b in self.covering(r0, r1):
            if b not in self.arrays:
                raise RuntimeError(f"latent band {b} is not decoded (windows asked out of order)")  # a bug
            s, e = self.spans[b]
            parts.append(self.arrays[b][..., max(r0, s) - s : min(r1, e) - s, c0:c1])
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-2)

    def drop_above(self, row: int) -> bool:
        """Forget the bands that end at or above ``row``; returns whether there were any."""
        passed = [b for b in self.arrays if self.spans[b][1] <= row]
        for b in passed:
            del self.arrays[b]
        return bool(passed)
