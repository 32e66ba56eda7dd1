"""Factorized prior for the hyper-latent z (Ballé et al. 2018, appendix 6.1).

Each channel has its own learned, non-parametric cumulative density. For training it gives
the likelihood of noisy z; for coding, :meth:`FactorizedPrior.pmf_table` evaluates it once on
the integer grid and the resulting table is frozen into the weights file, so encoder and
decoder never recompute it from floats.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..layers import lower_bound
from ..precision import fp32


class FactorizedPrior(nn.Module):
    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        self.channels = channels
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = float(np.log(np.expm1(1 / scale / dims[i + 1])))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def _logits_cdf(self, x: torch.Tensor) -> torch.Tensor:
        # x: (channels, 1, n) -> logits of the cumulative, same shape
        logits = x
        for i, matrix in enumerate(self.matrices):
            logits = torch.matmul(F.softplus(matrix), logits) + self.biases[i]
            if i < len(self.factors):
                logits = logits + torch.tanh(self.factors[i]) * torch.tanh(logits)
        return logits

    @fp32  # the rate term: computed in float32 even inside a bf16 training step
    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """Probability mass of the unit bin around each (noisy) value of ``z`` (B, C, H, W)."""
        b, c, h, w = z.shape
        flat = z.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self._logits_cdf(flat - 0.5)
        upper = self._logits_cdf(flat + 0.5)
        # Evaluate in the tail where the sigmoid is accurate (sign trick from Ballé's code).
        sign = -torch.sign(lower + upper).detach()
        lik = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        lik = lower_bound(lik, 1e-9)
        return lik.reshape(c, b, h, w).permute(1, 0, 2, 3)

    def forward(self, z: torch.Tensor, training: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (z with uniform noise in training / rounded otherwise, likelihoods)."""
        training = self.training if training is None else training
        if training:
            z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        else:
            z_noisy = torch.round(z)
        return z_noisy, self.likelihood(z_noisy)

    @torch.no_grad()
    def pmf_table(self, radius: int) -> np.ndarray:
        """Per-channel probability of each integer in [-radius, radius]: shape (C, 2*radius+1)."""
        grid = torch.arange(-radius, radius + 1, dtype=torch.float32)
        flat = grid.view(1, 1, -1).expand(self.channels, 1, -1)
        lower = self._logits_cdf(flat - 0.5)
        upper = self._logits_cdf(flat + 0.5)
        sign = -torch.sign(lower + upper)
        pmf = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).squeeze(1)
        return pmf.double().numpy()
