"""Tile-by-tile inference for fully-convolutional networks, with no seams and bounded memory.

Each tile is computed with ``margin`` pixels of real context on every side and only its core
is kept. When the margin covers the network's receptive field the result equals the untiled
one (up to float summation order); the tile plan depends only on the input size, so repeated
runs give identical output.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def _spans(length: int, tile: int) -> list[tuple[int, int]]:
    return [(s, min(s + tile, length)) for s in range(0, length, tile)]


def run_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: float, tile: int, margin: int
) -> torch.Tensor:
    """Apply ``fn`` (output size = ``scale`` × input size) to ``x`` (N, C, H, W) in tiles.

    ``tile`` and ``margin`` are in input pixels; ``tile * scale`` and ``margin * scale`` must be
    whole numbers (e.g. multiples of 16 for a stride-16 encoder).
    """
    h, w = x.shape[-2:]
    if h <= tile and w <= tile:
        return fn(x)

    def out(v: int) -> int:
        r = v * scale
        if abs(r - round(r)) > 1e-9:
            raise ValueError(f"tile boundary {v} does not map to a whole output pixel at scale {scale}")
        return int(round(r))

    rows = []
    for r0, r1 in _spans(h, tile):
        cols = []
        for c0, c1 in _spans(w, tile):
            a0, a1 = max(0, r0 - margin), min(h, r1 + margin)
            b0, b1 = max(0, c0 - margin), min(w, c1 + margin)
            y = fn(x[..., a0:a1, b0:b1])
            cols.append(y[..., out(r0 - a0) : out(r1 - a0), out(c0 - b0) : out(c1 - b0)])
        rows.append(torch.cat(cols, dim=-1))
    return torch.cat(rows, dim=-2)


def run_tiled_two_stage(
    head: Callable[[torch.Tensor], torch.Tensor], tail: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor, scale: int, tile: int, head_margin: int, tail_tile: int, tail_margin: int,
) -> torch.Tensor:
    """``tail(head(x))`` in tiles, where ``head`` keeps the resolution and ``tail`` multiplies it
    by ``scale``. A decoder's upsampling tail holds most of the memory but sees little context,
    so it is tiled finely (``tail_tile``, ``tail_margin``) inside coarse head tiles; each head tile
    covers its core plus the tail's margin, with ``head_margin`` of context beyond that."""
    h, w = x.shape[-2:]
    rows = []
    for r0, r1 in _spans(h, tile):
        cols = []
        for c0, c1 in _spans(w, tile):
            g0, g1 = max(0, r0 - tail_margin), min(h, r1 + tail_margin)
            k0, k1 = max(0, c0 - tail_margin), min(w, c1 + tail_margin)
            a0, a1 = max(0, g0 - head_margin), min(h, g1 + head_margin)
            b0, b1 = max(0, k0 - head_margin), min(w, k1 + head_margin)
            feat = head(x[..., a0:a1, b0:b1])[..., g0 - a0 : g1 - a0, k0 - b0 : k1 - b0]
            out = run_tiled(tail, feat, scale, tail_tile, tail_margin)
            cols.append(out[..., scale * (r0 - g0) : scale * (r1 - g0), scale * (c0 - k0) : scale * (c1 - k0)])
        rows.append(torch.cat(cols, dim=-1))
    return torch.cat(rows, dim=-2)
