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
# 1's, ...). Each group is coded a segment of the raster at a time, so that the only arrays of
# the latent's size are the caller's: no sorted or gathered copy, no int64 index array (eight
# bytes per symbol: hundreds of MB for a large photo).
CHUNK = 1 << 22


def _segments(shape: tuple[int, ...], select: np.ndarray | None) -> list[tuple[int, int, np.ndarray | None]]:
    """(start, end, mask) pieces of the flattened array of ``shape``, each at most about CHUNK
    long. ``select`` (a bool array of the trailing dimensions, e.g. the checkerboard's anchors)
    picks the positions that take part, the same in every leading plane (channel): each
    piece's mask is then a view of one mask, never an array of the latent's size."""
    n = int(np.prod(shape))
    if select is None:
        return [(s, min(n, s + CHUNK), None) for s in range(0, n, CHUNK)]
    plane = select.reshape(-1)
    if n % max(1, plane.size):
        raise ValueError("the selection must cover the trailing dimensions of the symbols")
    if plane.size == 0:
        return []
    planes = n // plane.size
    if plane.size <= CHUNK:  # several whole planes per piece, one tiled mask for all of them
        per = CHUNK // plane.size
        tiled = np.tile(plane, min(per, planes))
        return [(p * plane.size, min(planes, p + per) * plane.size, tiled[: (min(planes, p + per) - p) * plane.size])
                for p in range(0, planes, per)]
    return [(p * plane.size + j, p * plane.size + min(plane.size, j + CHUNK), plane[j : j + CHUNK])
            for p in range(planes) for j in range(0, plane.size, CHUNK)]


def _picked(a: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    return a if mask is None else a[mask]


def _counts(indices: np.ndarray, segments: list, n_tables: int) -> np.ndarray:
    counts = np.zeros(n_tables, dtype=np.int64)
    for s, e, mask in segments:
        part = _picked(indices[s:e], mask)
        if part.size and (part.min() < 0 or part.max() >= n_tables):
            raise ValueError("table index out of range")
        counts += np.bincount(part, minlength=n_tables)
    return counts


def encode(symbols: np.ndarray, indices: np.ndarray, tables: TableSet) -> tuple[bytes, bytes]:
    """Code ``symbols`` (ints) with table ``indices[i]`` each. Returns (ans stream, escapes)."""
    return encode_passes([(symbols, indices)], tables)


def encode_passes(passes: list[tuple], tables: TableSet) -> tuple[bytes, bytes]:
    """Code several passes into one stream that :class:`StreamDecoder` reads back pass by
    pass, so a later pass's tables may depend on an earlier pass's symbols (the checkerboard
    context model). A pass is ``(symbols, indices)`` or ``(symbols, indices, select)``: with a
    bool ``select`` over the trailing dimensions only the selected positions are coded, exactly
    as ``(symbols[..., select], indices[..., select])`` would be, without that copy. One pass
    gives exactly :func:`encode`'s bytes."""
    models = tables.models()
    escapes: list[np.ndarray] = []  # in push order; reversed at the end into decoding order
    coder = constriction.stream.stack.AnsCoder()
    # A stack coder decodes in the opposite order of encoding: push the last pass first, within a
    # pass the last table's symbols first, and within a table the last piece first
    # (encode_reverse reverses within a piece), which gives the same stream as pushing each
    # whole group at once.
    for symbols, indices, *rest in reversed(passes):
        select = rest[0] if rest else None
        if symbols.shape != indices.shape:
            raise ValueError("one table index per symbol is needed")
        if indices.dtype.kind not in "iu":
            raise ValueError("table indices must be integers")
        segments = _segments(symbols.shape, select)
        symbols = symbols.reshape(-1)
        indices = indices.reshape(-1)
        counts = _counts(indices, segments, len(tables))
        for k in reversed(range(len(tables))):
            if counts[k] == 0:
                continue
            r = tables.radius(k)
            for s, e, mask in reversed(segments):
                here = indices[s:e] == k
                if mask is not None:
                    here &= mask
                values = symbols[s:e][here]
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
        out = np.empty(indices.shape, dtype=np.int32)
        return self.decode_into(out, indices)

    def decode_into(self, out: np.ndarray, indices: np.ndarray, select: np.ndarray | None = None) -> np.ndarray:
        """Decode the next pass into ``out`` (shaped like ``indices``): every position, or with a
        bool ``select`` over the trailing dimensions the selected ones, as
        ``out[..., select] = decode(indices[..., select])`` would, without those copies. ``out``
        may be int16; it is widened to int32 first if a value needs it. Returns ``out``."""
        if out.shape != indices.shape or not out.flags.c_contiguous:
            raise ValueError("out must be a contiguous array shaped like the indices")
        segments = _segments(indices.shape, select)
        flat_indices = indices.reshape(-1)
        flat = out.reshape(-1)
        counts = _counts(flat_indices, segments, len(self.tables))
        for k, n in enumerate(counts):
            if n == 0:
                continue
            r = self.tables.radius(k)
            for s, e, mask in segments:  # straight into raster order, a piece at a time
                here = flat_indices[s:e] == k
                if mask is not None:
                    here &= mask
                count = int(np.count_nonzero(here))
                if count == 0:
                    continue
                try:
                    codes = self.coder.decode(self.models[k], count)
                except Exception as exc:  # constriction raises on exhausted / invalid data
                    raise CorruptFileError(f"entropy-coded data is damaged ({exc})") from None
                values = np.asarray(codes, dtype=np.int32) - r
                escaped = values == r + 1
                n_esc = int(np.count_nonzero(escaped))
                if self.used_escapes + n_esc > self.escape_values.size:
                    raise CorruptFileError("entropy-coded data refers to missing escape values")
                values[escaped] = self.escape_values[self.used_escapes : self.used_escapes + n_esc]
                self.used_escapes += n_esc
                if n_esc:  # only an escape can lie beyond int16
                    wider = widened(out, values)
                    if wider is not out:
                        out, flat = wider, wider.reshape(-1)
                flat[s:e][here] = values
        return out

    def finish(self) -> None:
        if self.used_escapes != self.escape_values.size:
            raise CorruptFileError("entropy-coded data has unused escape values")


def widened(symbols: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``symbols``, or an int32 copy of it if ``values`` do not fit its dtype: the codec holds a
    latent's symbols in int16 while they fit, and widens the moment one does not."""
    if symbols.dtype == np.int32 or not values.size:
        return symbols
    info = np.iinfo(symbols.dtype)
    if int(values.min()) >= info.min and int(values.max()) <= info.max:
        return symbols
    return symbols.astype(np.int32)
