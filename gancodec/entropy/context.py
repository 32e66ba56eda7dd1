"""Checkerboard context model for the latent y (He et al., "Checkerboard Context Model for
Efficient Learned Image Compression", CVPR 2021).

The latent's positions are split like a checkerboard. *Anchors* ((row + column) even) are coded
first with the hyperprior's mean and scale alone, exactly as without a context model. The other
half is then coded with parameters refined from the already decoded anchors around each position:

    ctx = conv5×5(ŷ_g on the anchors, zero elsewhere)
    (μ', σ') = (μ, σ) + EP(concat(ctx, μ, σ))        # EP: three 1×1 convolutions with ReLU

Two passes, each fully parallel, instead of the serial raster scan of Minnen et al. (2018).
The refinement is residual with a zero-initialised last layer, so an untrained context model
is the plain hyperprior. Only convolutions and ReLU: the decoder runs it in the same exact
integer arithmetic as the hyper-synthesis (:class:`gancodec.models.integer.IntegerContext`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

CONTEXT_KERNEL = 5
CONTEXT_MODELS = ("none", "checkerboard")


def anchor_mask(height: int, width: int, row0: int = 0, col0: int = 0) -> np.ndarray:
    """(height, width) bool: True at the anchors of the window starting at (row0, col0)."""
    rows = np.arange(row0, row0 + height)[:, None]
    cols = np.arange(col0, col0 + width)[None, :]
    return (rows + cols) % 2 == 0


def anchor_mask_like(x: torch.Tensor) -> torch.Tensor:
    """Anchor mask broadcastable to (N, C, H, W) ``x``, as x's dtype (1 at anchors)."""
    return torch.from_numpy(anchor_mask(*x.shape[-2:])).to(x.device, x.dtype)


class CheckerboardContext(nn.Module):
    def __init__(self, latent_channels: int, hidden: int | None = None):
        super().__init__()
        m = latent_channels
        hidden = hidden or 2 * m
        self.ctx = nn.Conv2d(m, m, CONTEXT_KERNEL, padding=CONTEXT_KERNEL // 2)
        self.ep = nn.Sequential(
            nn.Conv2d(3 * m, hidden, 1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
            nn.Conv2d(hidden, 2 * m, 1),
        )
        nn.init.zeros_(self.ep[-1].weight)
        nn.init.zeros_(self.ep[-1].bias)

    def forward(self, y_hat_anchors: torch.Tensor, means: torch.Tensor,
                scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Refined (means, scales) for every position; only the non-anchors' are used.
        ``y_hat_anchors`` is the quantised latent with the non-anchors zeroed."""
        ctx = self.ctx(y_hat_anchors)
        delta = self.ep(torch.cat([ctx, means, scales], dim=1))
        d_means, d_scales = delta.chunk(2, dim=1)
        return means + d_means, scales + d_scales
