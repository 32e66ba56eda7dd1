"""Tile-by-tile inference for fully-convolutional networks, with no seams and bounded memory.

Each tile is computed with ``margin`` pixels of real context on every side and only its core
is kept. When the margin covers the network's receptive field the result equals the untiled
one (up to float summation order; exactly, for the fixed-point networks); the tile plan
depends only on the input size, so repeated runs give identical output.

Memory is bounded by the tile, not the image, when the caller also keeps the image out of
float: the input may be a *source* — a function returning any window of it as a tensor, e.g.
read from a uint8 array and converted one tile at a time — and the output may go to a *sink*
that stores each finished tile (into a uint8 array, say) instead of a full-size tensor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from .allocator import release_between_tiles
from .diskarray import DiskArray

# rows a0:a1, columns b0:b1 of the input, as an (N, C, a1 - a0, b1 - b0) tensor
Source = Callable[[int, int, int, int], torch.Tensor]
# output rows r0:r1, columns c0:c1 and the tensor of that window
Sink = Callable[[int, int, int, int, torch.Tensor], None]


@runtime_checkable
class RowReader(Protocol):
    """An (H, W, C) uint8 image read in rows, top to bottom (:class:`gancodec.imageio.StreamedRGB`)."""

    shape: tuple[int, int, int]

    def rows(self, a0: int, a1: int) -> np.ndarray: ...


def spans(length: int, tile: int) -> list[tuple[int, int]]:
    """(start, end) of consecutive pieces of ``tile`` (the last may be shorter) covering ``length``."""
    return [(s, min(s + tile, length)) for s in range(0, length, tile)]


def tile_grid(h: int, w: int, tile: int) -> list[tuple[int, int, int, int]]:
    """The tiles (r0, r1, c0, c1) of an h × w plane, row by row."""
    return [(r0, r1, c0, c1) for r0, r1 in spans(h, tile) for c0, c1 in spans(w, tile)]


def _as_source(x: torch.Tensor | Source, size: tuple[int, int] | None) -> tuple[Source, int, int]:
    if isinstance(x, torch.Tensor):
        return (lambda a0, a1, b0, b1: x[..., a0:a1, b0:b1]), x.shape[-2], x.shape[-1]
    if size is None:
        raise ValueError("a source function needs size=(h, w)")
    return x, size[0], size[1]


def uint8_source(rgb: np.ndarray | RowReader) -> Source:
    """Windows of a uint8 (H, W, C) image as float (1, C, h, w) tensors in [0, 1], converted one
    window at a time. A window reaching past the image is edge-padded (replicated border). The
    image is an array, or a :class:`RowReader` read top to bottom (then so must the windows be)."""
    h, w = rgb.shape[:2]
    rows_of = rgb.rows if isinstance(rgb, RowReader) else (lambda a0, a1: rgb[a0:a1])

    def window(a0: int, a1: int, b0: int, b1: int) -> torch.Tensor:
        top = min(a0, h - 1)
        block = rows_of(top, min(a1, h))
        if a1 <= h and b1 <= w:
            part = np.array(block[:, b0:b1])  # a copy: the image may be read-only
        else:
            part = block[np.ix_(np.minimum(np.arange(a0, a1), h - 1) - top, np.minimum(np.arange(b0, b1), w - 1))]
        return torch.from_numpy(part).permute(2, 0, 1).unsqueeze(0).float().div_(255)

    return window


class BandSink:
    """A :data:`Sink` that converts each tile (``to_uint8``: tensor → (rows, cols, C) uint8) into
    a band of ``band_rows`` whole output rows and hands every band, once all its pixels have
    arrived, to ``write(first_row, rows)``, top to bottom. With a streaming writer
    (:class:`gancodec.pngstream.PngWriter`) the output image never exists whole. The tile grids
    here are row-major, so the band of one row of tiles fills before the next one starts;
    ``rows`` is reused once ``write`` returns."""

    def __init__(self, h: int, w: int, channels: int, band_rows: int,
                 write: Callable[[int, np.ndarray], None], to_uint8: Callable[[torch.Tensor], np.ndarray]):
        self.h, self.w, self.band_rows = h, w, band_rows
        self._band = np.empty((min(band_rows, h), w, channels), dtype=np.uint8)
        self._write, self._to_uint8 = write, to_uint8
        self._start = 0  # first output row of the band being filled
        self._filled = 0  # pixels of it stored so far

    def __call__(self, r0: int, r1: int, c0: int, c1: int, t: torch.Tensor) -> None:
        end = min(self._start + self.band_rows, self.h)
        if not self._start <= r0 < r1 <= end:
            raise RuntimeError(f"tile rows {r0}:{r1} arrived outside the band {self._start}:{end}")  # a bug
        self._band[r0 - self._start : r1 - self._start, c0:c1] = self._to_uint8(t)
        self._filled += (r1 - r0) * (c1 - c0)
        if self._filled == (end - self._start) * self.w:
            self._write(self._start, self._band[: end - self._start])
            self._start, self._filled = end, 0

    def close(self) -> None:
        """Check that every row was written (a bug otherwise, never a user's error)."""
        if self._start != self.h:
            raise RuntimeError(f"{self._start} of {self.h} output rows were written")


class _Collect:
    """The default sink: one output tensor, allocated when the first tile shows its channels and dtype."""

    def __init__(self, h: int, w: int):
        self.h, self.w, self.out = h, w, None

    def __call__(self, r0: int, r1: int, c0: int, c1: int, t: torch.Tensor) -> None:
        if self.out is None:
            self.out = t.new_empty((*t.shape[:-2], self.h, self.w))
        self.out[..., r0:r1, c0:c1] = t


def progress_bar(total: int, progress: bool, desc: str, unit: str = "tile"):
    """A tqdm bar on stderr for ``total`` steps, shown only if ``progress`` and the work takes more than 2 s."""
    from tqdm import tqdm

    # delay: the bar appears only once the work has taken a few seconds (large images)
    return tqdm(total=total, desc=desc, unit=unit, delay=2.0, disable=not progress or total < 2,
                leave=False, dynamic_ncols=True)


def _scaled(v: int, scale: float) -> int:
    r = v * scale
    if abs(r - round(r)) > 1e-9:
        raise ValueError(f"tile boundary {v} does not map to a whole output pixel at scale {scale}")
    return int(round(r))


def run_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor | Source, scale: float, tile: int, margin: int,
    *, size: tuple[int, int] | None = None, sink: Sink | None = None, progress: bool = False, desc: str = "",
    release: bool = True,
) -> torch.Tensor | None:
    """Apply ``fn`` (output size = ``scale`` × input size) to ``x`` (N, C, H, W) in tiles.

    ``x`` is a tensor, or a :data:`Source` with ``size=(H, W)``. The result is returned as one
    tensor, or handed tile by tile to ``sink`` (then None is returned). ``tile`` and ``margin``
    are in input pixels; ``tile * scale`` and ``margin * scale`` must be whole numbers (e.g.
    multiples of 16 for a stride-16 encoder). ``release``: return the heap's free pages after
    each tile of a large image (:func:`~gancodec.allocator.release_between_tiles`).
    """
    source, h, w = _as_source(x, size)
    collect = _Collect(_scaled(h, scale), _scaled(w, scale)) if sink is None else None
    put = sink or collect
    grid = tile_grid(h, w, tile)
    with progress_bar(len(grid), progress, desc) as bar:
        for r0, r1, c0, c1 in grid:
            a0, a1 = max(0, r0 - margin), min(h, r1 + margin)
            b0, b1 = max(0, c0 - margin), min(w, c1 + margin)
            y = fn(source(a0, a1, b0, b1))
            rows = slice(_scaled(r0 - a0, scale), _scaled(r1 - a0, scale))
            cols = slice(_scaled(c0 - b0, scale), _scaled(c1 - b0, scale))
            put(_scaled(r0, scale), _scaled(r1, scale), _scaled(c0, scale), _scaled(c1, scale), y[..., rows, cols])
            del y  # the tile's output is stored: its memory is among what goes back
            if release:
                release_between_tiles()
            bar.update()
    return None if collect is None else collect.out


def run_tiled_two_stage(
    head: Callable[[torch.Tensor], torch.Tensor], tail: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor | Source, scale: int, tile: int, head_margin: int, tail_tile: int, tail_margin: int,
    *, size: tuple[int, int] | None = None, sink: Sink | None = None, progress: bool = False, desc: str = "",
) -> torch.Tensor | None:
    """``tail(head(x))`` in tiles, where ``head`` keeps the resolution and ``tail`` multiplies it
    by ``scale``. A decoder's upsampling tail holds most of the memory but sees little context,
    so it is tiled finely (``tail_tile``, ``tail_margin``) inside coarse head tiles; each head tile
    covers its core plus the tail's margin, with ``head_margin`` of context beyond that.
    ``x``, ``size``, ``sink``: as for :func:`run_tiled`."""
    source, h, w = _as_source(x, size)
    collect = _Collect(scale * h, scale * w) if sink is None else None
    put = sink or collect
    grid = tile_grid(h, w, tile)
    with progress_bar(len(grid), progress, desc) as bar:
        for r0, r1, c0, c1 in grid:
            g0, g1 = max(0, r0 - tail_margin), min(h, r1 + tail_margin)
            k0, k1 = max(0, c0 - tail_margin), min(w, c1 + tail_margin)
            a0, a1 = max(0, g0 - head_margin), min(h, g1 + head_margin)
            b0, b1 = max(0, k0 - head_margin), min(w, k1 + head_margin)
            feat = head(source(a0, a1, b0, b1))[..., g0 - a0 : g1 - a0, k0 - b0 : k1 - b0]

            def put_tail(t0: int, t1: int, u0: int, u1: int, t: torch.Tensor,
                         g0: int = g0, k0: int = k0, r0: int = r0, r1: int = r1, c0: int = c0, c1: int = c1) -> None:
                # tail tile in the head tile's output coordinates -> keep the part inside the core
                o0, o1 = max(t0, scale * (r0 - g0)), min(t1, scale * (r1 - g0))
                p0, p1 = max(u0, scale * (c0 - k0)), min(u1, scale * (c1 - k0))
                if o0 < o1 and p0 < p1:
                    put(scale * g0 + o0, scale * g0 + o1, scale * k0 + p0, scale * k0 + p1,
                        t[..., o0 - t0 : o1 - t0, p0 - u0 : p1 - u0])

            run_tiled(tail, feat, scale, tail_tile, tail_margin, sink=put_tail, release=False)
            del feat
            release_between_tiles()
            bar.update()
    return None if collect is None else collect.out


class DiskTensor:
    """A (1, C, H, W) float32 tensor kept in a temporary file instead of memory
    (:class:`~gancodec.diskarray.DiskArray`, stored (H, W, C)): written tile by tile as a
    :data:`Sink`, read back window by window as a :data:`Source`.

    The codec's encoder needs the whole latent of an image before it writes a symbol (the
    hyper-latent of the whole image comes first in the file), and at 2.5 bytes a pixel that
    latent was the largest thing a large compress held.
    """

    def __init__(self, channels: int, h: int, w: int, directory: str | None = None):
        self.shape = (1, channels, h, w)
        self._store = DiskArray((h, w, channels), np.float32, directory)

    def __call__(self, r0: int, r1: int, c0: int, c1: int, t: torch.Tensor) -> None:
        """Store rows r0:r1, columns c0:c1 (a Sink)."""
        self._store.write(r0, c0, t.detach()[0].to(torch.float32).permute(1, 2, 0).numpy())

    def window(self, a0: int, a1: int, b0: int, b1: int) -> torch.Tensor:
        """Rows a0:a1, columns b0:b1 as a (1, C, a1 - a0, b1 - b0) float32 tensor (a Source)."""
        return torch.from_numpy(self._store.read(a0, a1, b0, b1)).permute(2, 0, 1).unsqueeze(0)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> DiskTensor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
