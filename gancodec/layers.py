"""Neural building blocks shared by the codec and the restoration models.

GDN (Ballé et al. 2016) is the normalisation that makes small learned codecs competitive;
residual blocks give the synthesis transform the capacity a GAN generator needs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .precision import fp32


class LowerBound(torch.autograd.Function):
    """max(x, bound) whose gradient still flows when it pushes x upward (Ballé's trick)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bound: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        pass_through = (x >= ctx.bound) | (grad < 0)
        return grad * pass_through.to(grad.dtype), None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    return LowerBound.apply(x, bound)


class GDN(nn.Module):
    """Generalized divisive normalisation; ``inverse=True`` gives IGDN for the synthesis side.

    Parameters are stored reparametrised (squared, offset) so that they stay positive and
    the optimiser sees well-conditioned values, as in Ballé's reference implementation.
    """

    _pedestal = 2.0**-18

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1):
        super().__init__()
        self.inverse = inverse
        self._beta_bound = (beta_min + self._pedestal) ** 0.5
        self._gamma_bound = self._pedestal**0.5
        self.beta = nn.Parameter(torch.sqrt(torch.ones(channels) + self._pedestal))
        self.gamma = nn.Parameter(torch.sqrt(gamma_init * torch.eye(channels) + self._pedestal))

    @fp32  # a sum of squares under a square root: bf16's 8-bit mantissa is not enough
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        beta = lower_bound(self.beta, self._beta_bound) ** 2 - self._pedestal
        gamma = lower_bound(self.gamma, self._gamma_bound) ** 2 - self._pedestal
        norm = F.conv2d(x * x, gamma.view(channels, channels, 1, 1), beta)
        if torch.is_grad_enabled():
            return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)
        # inference: in place, the same values; a large tile's activation is tens of MB, and two
        # more of them were the largest buffers of a large image's analysis (BENCHMARKS.md §8)
        return (norm.sqrt_() if self.inverse else norm.rsqrt_()).mul_(x)


def conv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2)


def deconv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(
        in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1
    )


class ResidualBlock(nn.Module):
    """Two 3×3 convolutions with a skip; the generator's workhorse (HiFiC, ESRGAN)."""

    def __init__(self, channels: int, slope: float = 0.2):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.LeakyReLU(slope, inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(self.act(x))))
