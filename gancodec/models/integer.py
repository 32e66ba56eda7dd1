"""Exact integer evaluation of the hyper-synthesis, so every machine picks the same tables.

Learned codecs break when the decoder's hyperprior computes a scale that differs by one float
ulp from the encoder's and lands on a different probability table (CompressAI #279, #309).
Following Ballé et al., "Integer Networks for Data Compression with Latent-Variable Models"
(ICLR 2019), the hyper-synthesis here runs on integers only:

* weights are fixed point with ``WEIGHT_BITS`` fractional bits, stored as int32;
* the input ẑ is integer; after each ReLU, activations are re-quantised to
  ``ACT_BITS`` fractional bits with round-half-up implemented as ``floor(x / 2^k + 1/2)``;
* convolutions run in float64 on integer-valued tensors. Every product and partial sum stays
  far below 2^53, so the result is the exact integer whatever the summation order, thread
  count, SIMD width or BLAS library.

The outputs are the Gaussian means as exact dyadic rationals and the scale *indices*, found by
comparing the integer scale accumulator against precomputed integer-domain thresholds.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

WEIGHT_BITS = 14
ACT_BITS = 10
EXACT_LIMIT = 2.0**52


def quantize_hyper_synthesis(h_s: nn.Sequential) -> dict[str, torch.Tensor]:
    """Fixed-point weights and biases of a Conv/ConvTranspose/ReLU stack, as int32 tensors."""
    layers = [m for m in h_s if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    out: dict[str, torch.Tensor] = {}
    act_bits = 0  # ẑ is an integer
    for i, layer in enumerate(layers):
        w = torch.round(layer.weight.detach().double() * 2**WEIGHT_BITS)
        b = torch.round(layer.bias.detach().double() * 2 ** (WEIGHT_BITS + act_bits))
        out[f"h_s_int.{i}.weight"] = w.to(torch.int32)
        out[f"h_s_int.{i}.bias"] = b.to(torch.int64)
        act_bits = ACT_BITS
    return out


class IntegerHyperSynthesis:
    """Runs the quantised hyper-synthesis. Mirrors the float layout of
    :func:`gancodec.models.codec.hyper_synthesis`: deconv, ReLU, deconv, ReLU, conv."""

    LAYOUT = (("deconv", 5, 2), ("deconv", 5, 2), ("conv", 3, 1))

    def __init__(self, tensors: dict[str, torch.Tensor], thresholds: np.ndarray):
        self.weights = [tensors[f"h_s_int.{i}.weight"].double() for i in range(len(self.LAYOUT))]
        self.biases = [tensors[f"h_s_int.{i}.bias"].double() for i in range(len(self.LAYOUT))]
        # The last layer's accumulator carries WEIGHT_BITS + ACT_BITS fractional bits.
        self.out_scale = 2.0 ** (WEIGHT_BITS + ACT_BITS)
        self.thresholds = torch.from_numpy(np.asarray(thresholds, dtype=np.float64) * self.out_scale)

    @torch.no_grad()
    def __call__(self, z_int: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_int: (1, C, h, w) integer-valued. Returns (means float64, scale indices int64)."""
        x = z_int.double()
        act_bits = 0
        for i, (kind, k, stride) in enumerate(self.LAYOUT):
            w, b = self.weights[i], self.biases[i]
            if kind == "deconv":
                x = F.conv_transpose2d(x, w, b, stride=stride, padding=k // 2, output_padding=stride - 1)
            else:
                x = F.conv2d(x, w, b, stride=stride, padding=k // 2)
            if i < len(self.LAYOUT) - 1:
                shift = 2.0 ** (WEIGHT_BITS + act_bits - ACT_BITS)
                x = torch.floor(torch.relu(x) / shift + 0.5)
                act_bits = ACT_BITS
        if x.abs().max() >= EXACT_LIMIT:  # cannot happen with trained weights; guard anyway
            raise ArithmeticError("integer hyper-synthesis overflowed the exact float64 range")
        means_acc, scale_acc = x.chunk(2, dim=1)
        means = means_acc / self.out_scale  # exact: division by a power of two
        indices = torch.bucketize(scale_acc.contiguous(), self.thresholds, right=True)
        return means, indices
