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


def _group(indices: np.ndarray, n_tables: int) -> tuple[np.ndarray, np.ndarray]:
    """Stable order of symbols grouped by table, and the number of symbols per table."""
    order = np.argsort(indices, kind="stable")
    counts = np.bincount(indices, minlength=n_tables)
    return order, counts


def encode(symbols: np.ndarray, indices: np.ndarray, tables: TableSet) -> tuple[bytes, bytes]:
    """Code ``symbols`` (ints) with table ``indices[i]`` each. Returns (ans stream, escapes)."""
    symbols = symbols.reshape(-1).astype(np.int64)
    indices = indices.reshape(-1).astype(np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= len(tables)):
        raise ValueError("table index out of range")
    order, counts = _group(indices, len(tables))
    sorted_symbols = symbols[order]
    models = tables.models()
    groups = []
    escapes = []
    start = 0
    for k, n in enumerate(counts):
        values = sorted_symbols[start : start + n]
        start += n
        r = tables.radius(k)
        escaped = np.abs(values) > r
        codes = np.where(escaped, 2 * r + 1, values + r).astype(np.int32)
        escapes.append(values[escaped])
        groups.append(codes)
    coder = constriction.stream.stack.AnsCoder()
    # A stack coder decodes in the opposite order of encoding: push the last group first.
    for k in reversed(range(len(tables))):
        if groups[k].size:
            coder.encode_reverse(groups[k], models[k])
    words = coder.get_compressed()
    escape_bytes = np.concatenate(escapes).astype("<i4").tobytes() if escapes else b""
    return words.astype("<u4").tobytes(), escape_bytes


def decode(stream: bytes, escapes: bytes, indices: np.ndarray, tables: TableSet) -> np.ndarray:
    """Inverse of :func:`encode`, given the same ``indices``. Returns int64 symbols."""
    shape = indices.shape
    indices = indices.reshape(-1).astype(np.int64)
    if len(stream) % 4 or len(escapes) % 4:
        raise CorruptFileError("entropy-coded stream has a broken length")
    words = np.frombuffer(stream, dtype="<u4").astype(np.uint32)
    escape_values = np.frombuffer(escapes, dtype="<i4").astype(np.int64)
    order, counts = _group(indices, len(tables))
    models = tables.models()
    try:
        coder = constriction.stream.stack.AnsCoder(words)
    except ValueError as exc:  # e.g. "ANS compressed data never ends in a zero word" (found by fuzzing)
        raise CorruptFileError(f"entropy-coded data is damaged ({exc})") from None
    out_sorted = np.empty(indices.size, dtype=np.int64)
    start = 0
    used_escapes = 0
    for k, n in enumerate(counts):
        if n == 0:
            continue
        try:
            codes = coder.decode(models[k], int(n)).astype(np.int64)
        except Exception as exc:  # constriction raises on exhausted / invalid data
            raise CorruptFileError(f"entropy-coded data is damaged ({exc})") from None
        r = tables.radius(k)
        values = codes - r
        escaped = codes == 2 * r + 1
        n_esc = int(escaped.sum())
        if used_escapes + n_esc > escape_values.size:
            raise CorruptFileError("entropy-coded data refers to missing escape values")
        values[escaped] = escape_values[used_escapes : used_escapes + n_esc]
        used_escapes += n_esc
        out_sorted[start : start + n] = values
        start += n
    if used_escapes != escape_values.size:
        raise CorruptFileError("entropy-coded data has unused escape values")
    out = np.empty_like(out_sorted)
    out[order] = out_sorted
    return out.reshape(shape)
