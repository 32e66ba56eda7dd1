"""Entropy coding of integer symbols with ``constriction``'s ANS coder and fixed tables.

Every symbol comes with the index of the probability table it is coded with (a scale index
for y, a channel index for z). Symbols are grouped by table so that each table builds one
``Categorical`` model, which makes coding ~linear in the number of symbols with no
per-symbol model parameters. Each table covers [-r, r] plus one *escape* entry; a value
outside the range is coded as the escape and its exact value is stored in a small side stream
(int32), so the latent is always coded losslessly however unusual it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import constriction
import numpy as np

from ..errors import CorruptFileError

ESCAPE_PROBABILITY = 2.0**-20


@dataclass(frozen=True)
class TableSet:
    """A list of pmfs, table k over the integers [-radius[k], radius[k]]."""

    pmfs: tuple[np.ndarray, ...]

    @classmethod
    def from_padded(cls, padded: np.ndarray, radii: np.ndarray) -> TableSet:
        """Tables as stored in a weights file: rows padded to a common width, centred."""
        width = padded.shape[1]
        centre = width // 2
        return cls(tuple(
            np.ascontiguousarray(padded[k, centre - r : centre + r + 1], dtype=np.float64)
            for k, r in enumerate(radii.astype(int))
        ))

    def to_padded(self) -> tuple[np.ndarray, np.ndarray]:
        radii = np.array([(len(p) - 1) // 2 for p in self.pmfs], dtype=np.int32)
        width = 2 * int(radii.max()) + 1
        padded = np.zeros((len(self.pmfs), width), dtype=np.float64)
        centre = width // 2
        for k, p in enumerate(self.pmfs):
            r = radii[k]
            padded[k, centre - r : centre + r + 1] = p
        return padded, radii

    def __len__(self) -> int:
        return len(self.pmfs)

    def radius(self, k: int) -> int:
        return (len(self.pmfs[k]) - 1) // 2

    def models(self) -> list:
        # Categorical normalises and quantises the floats itself, deterministically (no
        # transcendental functions), so the same stored float64 table gives the same model
        # on every machine.
        return [
            constriction.stream.model.Categorical(np.append(p, ESCAPE_PROBABILITY), perfect=False)
            for p in self.pmfs
        ]


# Symbols are grouped by table (the stream holds table 0's symbols in raster order, then table
# 1's, ...). Each group is coded a chunk of the raster at a time, so that the only arrays of the
# latent's size are the caller's: no sorted or gathered copy, no int64 index array (eight bytes
# per symbol: hundreds of MB for a large photo).
CHUNK = 1 << 22


def _chunks(n: int) -> range:
    return range(0, n, CHUNK)


def _counts(indices: np.ndarray, n_tables: int) -> np.ndarray:
    counts = np.zeros(n_tables, dtype=np.int64)
    for s in _chunks(indices.size):
        part = indices[s : s + CHUNK]
        if part.size and (part.min() < 0 or part.max() >= n_tables):
            raise ValueError("table index out of range")
        counts += np.bincount(part, minlength=n_tables)
    return counts


def encode(symbols: np.ndarray, indices: np.ndarray, tables: TableSet) -> tuple[bytes, bytes]:
    """Code ``symbols`` (ints) with table ``indices[i]`` each. Returns (ans stream, escapes)."""
    return encode_passes([(symbols, indices)], tables)


def encode_passes(passes: list[tuple[np.ndarray, np.ndarray]], tables: TableSet) -> tuple[bytes, bytes]:
    """Code several (symbols, indices) passes into one stream that :class:`StreamDecoder`
    reads back pass by pass, so a later pass's tables may depend on an earlier pass's symbols
    (the checkerboard context model). One pass gives exactly :func:`encode`'s bytes."""
    models = tables.models()
    escapes: list[np.ndarray] = []  # in push order; reversed at the end into decoding order
    coder = constriction.stream.stack.AnsCoder()
    # A stack coder decodes in the opposite order of encoding: push the last pass first, within a
    # pass the last table's symbols first, and within a table the last chunk first
    # (encode_reverse reverses within a chunk), which gives the same stream as pushing each whole
    # group at once.
    for symbols, indices in reversed(passes):
        symbols = symbols.reshape(-1)
        indices = indices.reshape(-1)
        if symbols.size != indices.size:
            raise ValueError("one table index per symbol is needed")
        if indices.dtype.kind not in "iu":
            raise ValueError("table indices must be integers")
        counts = _counts(indices, len(tables))
        for k in reversed(range(len(tables))):
            if counts[k] == 0:
                continue
            r = tables.radius(k)
            for s in reversed(_chunks(indices.size)):
                values = symbols[s : s + CHUNK][indices[s : s + CHUNK] == k]
                if not values.size:
                    continue
                escaped = np.abs(values) > r
                if escaped.any():
                    escapes.append(values[escaped])
                coder.encode_reverse(np.where(escaped, 2 * r + 1, values + r).astype(np.int32), models[k])
    words = coder.get_compressed()
    escape_bytes = np.concatenate(escapes[::-1]).astype("<i4").tobytes() if escapes else b""
    return words.astype("<u4").tobytes(), escape_bytes


def decode(stream: bytes, escapes: bytes, indices: np.ndarray, tables: TableSet) -> np.ndarray:
    """Inverse of :func:`encode`, given the same ``indices``. Returns int32 symbols (every value
    a file can hold: the escape side stream is int32)."""
    reader = StreamDecoder(stream, escapes, tables)
    out = reader.decode(indices)
    reader.finish()
    return out


class StreamDecoder:
    """Reads the passes of :func:`encode_passes` one after another: :meth:`decode` each pass
    with its indices, then :meth:`finish`, which checks that every escape value was used."""

    def __init__(self, stream: bytes, escapes: bytes, tables: TableSet):
        if len(stream) % 4 or len(escapes) % 4:
            raise CorruptFileError("entropy-coded stream has a broken length")
        words = np.frombuffer(stream, dtype="<u4").astype(np.uint32)
        self.escape_values = np.frombuffer(escapes, dtype="<i4").astype(np.int32)
        self.used_escapes = 0
        self.tables = tables
        self.models = tables.models()
        try:
            self.coder = constriction.stream.stack.AnsCoder(words)
        except ValueError as exc:  # e.g. "ANS compressed data never ends in a zero word" (found by fuzzing)
            raise CorruptFileError(f"entropy-coded data is damaged ({exc})") from None

    def decode(self, indices: np.ndarray) -> np.ndarray:
        """The next pass's symbols (int32, shaped like ``indices``)."""
        shape = indices.shape
        indices = indices.reshape(-1)
        counts = _counts(indices, len(self.tables))
        out = np.empty(indices.size, dtype=np.int32)
        for k, n in enumerate(counts):
            if n == 0:
                continue
            r = self.tables.radius(k)
            for s in _chunks(indices.size):  # straight into raster order, a chunk at a time
                mask = indices[s : s + CHUNK] == k
                here = int(np.count_nonzero(mask))
                if here == 0:
                    continue
                try:
                    codes = self.coder.decode(self.models[k], here)
                except Exception as exc:  # constriction raises on exhausted / invalid data
                    raise CorruptFileError(f"entropy-coded data is damaged ({exc})") from None
                values = np.asarray(codes, dtype=np.int32) - r
                escaped = values == r + 1
                n_esc = int(np.count_nonzero(escaped))
                if self.used_escapes + n_esc > self.escape_values.size:
                    raise CorruptFileError("entropy-coded data refers to missing escape values")
                values[escaped] = self.escape_values[self.used_escapes : self.used_escapes + n_esc]
                self.used_escapes += n_esc
                out[s : s + CHUNK][mask] = values
        return out.reshape(shape)

    def finish(self) -> None:
        if self.used_escapes != self.escape_values.size:
            raise CorruptFileError("entropy-coded data has unused escape values")
