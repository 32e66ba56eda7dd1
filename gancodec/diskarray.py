"""An (H, W, C) array kept in an unnamed temporary file instead of memory, written and read in
rectangular blocks: what a large image's commands hold on disk when they need more of an image
than a band of rows at a time.

Two users: the codec's encoder keeps the whole latent of a large image there
(:class:`gancodec.tiling.DiskTensor`), because the hyper-latent of the whole image comes first
in the file; and a photo stored turned (EXIF orientation) is turned upright through one
(:func:`gancodec.orientation.upright_bands`), because its first upright row may be the file's
last column.

The file is stored row-major, so a block is one read or write per row (one in all for blocks
of whole rows). It goes through the page cache, which no process's resident memory counts and
which the kernel may drop; it is never mapped, for the same reason. It is unlinked from the
moment it is created, so nothing is left behind however the process ends.
"""

from __future__ import annotations

import tempfile

import numpy as np


class DiskArray:
    """A ``shape`` (H, W, C) array of ``dtype`` in a temporary file in ``directory`` (default:
    ``TMPDIR``). Unwritten parts read as zeros. A full disk raises ``OSError`` from
    :meth:`write`, as the file system reports it."""

    def __init__(self, shape: tuple[int, int, int], dtype: np.dtype | type = np.uint8,
                 directory: str | None = None) -> None:
        self.shape = tuple(int(v) for v in shape)
        self.dtype = np.dtype(dtype)
        _, w, c = self.shape
        self._pixel_bytes = c * self.dtype.itemsize
        self._row_bytes = w * self._pixel_bytes
        self._file = tempfile.TemporaryFile(prefix="gancodec-", dir=directory, buffering=0)

    def write(self, r0: int, c0: int, block: np.ndarray) -> None:
        """Store ``block`` (n, m, C) at rows r0:r0 + n, columns c0:c0 + m."""
        n, m = block.shape[:2]
        self._check(r0, r0 + n, c0, c0 + m)
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if m == self.shape[1]:  # whole rows: one contiguous run of the file
            self._write_at(r0 * self._row_bytes, _bytes_of(block))
            return
        for i in range(n):
            self._write_at((r0 + i) * self._row_bytes + c0 * self._pixel_bytes, _bytes_of(block[i]))

    def read(self, a0: int, a1: int, b0: int, b1: int) -> np.ndarray:
        """Rows a0:a1, columns b0:b1 as a new (a1 - a0, b1 - b0, C) array."""
        self._check(a0, a1, b0, b1)
        out = np.empty((a1 - a0, b1 - b0, self.shape[2]), dtype=self.dtype)
        if b1 - b0 == self.shape[1]:
            self._read_at(a0 * self._row_bytes, _bytes_of(out))
            return out
        for i in range(a1 - a0):
            self._read_at((a0 + i) * self._row_bytes + b0 * self._pixel_bytes, _bytes_of(out[i]))
        return out

    def _check(self, a0: int, a1: int, b0: int, b1: int) -> None:
        h, w = self.shape[:2]
        if not (0 <= a0 <= a1 <= h and 0 <= b0 <= b1 <= w):
            raise ValueError(f"block rows {a0}:{a1}, columns {b0}:{b1} outside a {h}×{w} array")

    def _write_at(self, offset: int, data: memoryview) -> None:
        self._file.seek(offset)
        while data:  # an unbuffered write may take part of the data
            done = self._file.write(data)
            data = data[done:]

    def _read_at(self, offset: int, into: memoryview) -> None:
        self._file.seek(offset)
        got = 0
        while got < len(into):
            n = self._file.readinto(into[got:])
            if not n:  # never written that far: zeros, as a sparse file reads
                into[got:] = bytes(len(into) - got)
                return
            got += n

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> DiskArray:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bytes_of(arr: np.ndarray) -> memoryview:
    """The bytes of a C-contiguous array, writable where it is (empty ones too)."""
    return memoryview(arr.reshape(-1).view(np.uint8))
