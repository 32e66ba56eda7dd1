"""Gaussian conditional entropy model for the latent y (mean–scale hyperprior).

Training sees a continuous scale. Coding sees only an *index* into a fixed, log-spaced table of
scales (as in CompressAI), and each index owns a probability table computed once, in float64,
when the weights are exported. Because the index is computed by the integer hyper-synthesis
(:mod:`gancodec.models.integer`), the encoder and every decoder pick the same table.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..layers import lower_bound
from ..precision import fp32

SCALE_MIN = 0.11
SCALE_MAX = 64.0
SCALE_LEVELS = 64
LIKELIHOOD_BOUND = 1e-9


def scale_table(levels: int = SCALE_LEVELS, lo: float = SCALE_MIN, hi: float = SCALE_MAX) -> np.ndarray:
    return np.exp(np.linspace(math.log(lo), math.log(hi), levels))


def scale_thresholds(table: np.ndarray) -> np.ndarray:
    """Geometric midpoints between table entries: index = number of thresholds below a scale."""
    return np.sqrt(table[:-1] * table[1:])


def std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x * (2**-0.5))


def bin_probability(distance: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """P(|N(0, scales)| binned to the unit interval around ``distance`` ≥ 0): the mass a
    Gaussian puts on one integer bin, ``distance`` from its mean (unbounded below)."""
    return std_normal_cdf((0.5 - distance) / scales) - std_normal_cdf((-0.5 - distance) / scales)


class GaussianConditional(nn.Module):
    @fp32  # the rate is -log2 of a difference of CDFs: in bf16 small probabilities round to 0
    def forward(
        self, y: torch.Tensor, scales: torch.Tensor, means: torch.Tensor, noise: bool
    ) -> torch.Tensor:
        """Likelihood of ``y`` (noisy if ``noise``, else rounded around the mean)."""
        if noise:
            values = y + torch.empty_like(y).uniform_(-0.5, 0.5) - means
        else:
            values = torch.round(y - means)
        scales = lower_bound(scales, SCALE_MIN)
        return lower_bound(bin_probability(torch.abs(values), scales), LIKELIHOOD_BOUND)


def gaussian_pmf_tables(table: np.ndarray, tail_sigmas: float = 10.0, min_radius: int = 2) -> list[np.ndarray]:
    """For each scale, the pmf of round(N(0, s)) on [-r, r], r = ceil(tail_sigmas * s).

    Values outside the range are sent through an escape symbol (see ``gancodec.entropy.coder``).
    """
    from scipy.special import ndtr

    pmfs = []
    for s in table:
        r = max(min_radius, int(math.ceil(tail_sigmas * s)))
        k = np.arange(-r, r + 1, dtype=np.float64)
        pmfs.append(ndtr((k + 0.5) / s) - ndtr((k - 0.5) / s))
    return pmfs
