"""Exact integer evaluation of the decoder: every machine picks the same tables and pixels.

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

:class:`ExactSynthesis` applies the same idea to the synthesis transform (the image itself), so
decoded pixels, not only the latent, are identical under any thread count or CPU. Besides
convolutions it needs LeakyReLU and inverse GDN; both become element-wise IEEE operations
(multiply, square root) followed by re-quantisation, and IEEE guarantees those correctly rounded
everywhere. Activations are clamped before every convolution to a bound derived from the layer's
weights, so no accumulator can leave the exact float64 range whatever the input.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..layers import GDN, ResidualBlock

WEIGHT_BITS = 14
ACT_BITS = 10
EXACT_LIMIT = 2.0**52


def conv2d_exact(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=padding)`` (stride 1) of integer-valued float64
    tensors, as one matrix product per kernel offset summed in place.

    PyTorch's float64 convolution unfolds its input first (im2col): C_in·k² values per output
    position, 150 MB for one window of the 5×5 context convolution, the largest temporary of
    coding or decoding a large photo. Here the only temporaries are of the output's size. Every
    term is an exact integer below 2^53, so the sum is the same in any order: the result is
    exactly F.conv2d's."""
    n, _, h, w = x.shape
    out_ch, _, kh, kw = weight.shape
    if padding:
        x = F.pad(x, (padding, padding, padding, padding))
    ho, wo = h + 2 * padding - kh + 1, w + 2 * padding - kw + 1
    out = x.new_zeros(n, out_ch, ho, wo) if bias is None else bias.view(1, -1, 1, 1).expand(n, out_ch, ho, wo).clone()
    for i in range(kh):
        for j in range(kw):
            out += torch.einsum("oc,nchw->nohw", weight[:, :, i, j], x[..., i : i + ho, j : j + wo])
    return out


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
        return self.params(self.accumulators(z_int))

    def params(self, acc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(means, scale indices) from the last layer's accumulators (means ‖ scales)."""
        means_acc, scale_acc = acc.chunk(2, dim=1)
        means = means_acc / self.out_scale  # exact: division by a power of two
        indices = torch.bucketize(scale_acc.contiguous(), self.thresholds, right=True)
        return means, indices

    @torch.no_grad()
    def accumulators(self, z_int: torch.Tensor) -> torch.Tensor:
        """The last layer's integer accumulators (means ‖ scales, WEIGHT_BITS + ACT_BITS
        fractional bits), what :meth:`params` and the context model start from."""
        x = z_int.double()
        act_bits = 0
        for i, (kind, k, stride) in enumerate(self.LAYOUT):
            w, b = self.weights[i], self.biases[i]
            if kind == "deconv":
                x = F.conv_transpose2d(x, w, b, stride=stride, padding=k // 2, output_padding=stride - 1)
            elif stride == 1:
                x = conv2d_exact(x, w, b, padding=k // 2)
            else:
                x = F.conv2d(x, w, b, stride=stride, padding=k // 2)
            if i < len(self.LAYOUT) - 1:
                shift = 2.0 ** (WEIGHT_BITS + act_bits - ACT_BITS)
                x = torch.floor(torch.relu(x) / shift + 0.5)
                act_bits = ACT_BITS
        if x.numel() and x.abs().max() >= EXACT_LIMIT:  # cannot happen with trained weights; guard anyway
            raise ArithmeticError("integer hyper-synthesis overflowed the exact float64 range")
        return x


def quantize_context(context: nn.Module) -> dict[str, torch.Tensor]:
    """Fixed-point weights of a :class:`~gancodec.entropy.context.CheckerboardContext`: its
    context convolution, then the three 1×1 layers of its parameter network."""
    layers = [context.ctx] + [m for m in context.ep if isinstance(m, nn.Conv2d)]
    out: dict[str, torch.Tensor] = {}
    for i, layer in enumerate(layers):
        out[f"ctx_int.{i}.weight"] = torch.round(layer.weight.detach().double() * 2**WEIGHT_BITS).to(torch.int32)
        out[f"ctx_int.{i}.bias"] = torch.round(layer.bias.detach().double() * 2 ** (WEIGHT_BITS + ACT_BITS)).to(
            torch.int64)
    return out


class IntegerContext:
    """The checkerboard context model in exact integer arithmetic, on the integer
    hyper-synthesis's accumulators. Inputs are re-quantised to ``ACT_BITS`` fractional bits
    (the anchors' ŷ_g, the hyper-synthesis's means and scales); each layer's input is clamped
    to a bound derived from its weights, so no sum can leave the exact float64 range whatever a
    file holds (a valid file never comes near it)."""

    LAYERS = 4  # the 5×5 context convolution, then three 1×1 layers with ReLU between them

    def __init__(self, tensors: dict[str, torch.Tensor], hyper: IntegerHyperSynthesis):
        self.weights = [tensors[f"ctx_int.{i}.weight"].double() for i in range(self.LAYERS)]
        self.biases = [tensors[f"ctx_int.{i}.bias"].double() for i in range(self.LAYERS)]
        self.hyper = hyper
        # largest |input| of each layer for which every sum is provably below 2^52
        self.limits = []
        for w, b in zip(self.weights, self.biases):
            l1 = max(1.0, w.abs().sum(dim=(1, 2, 3)).max().item())
            self.limits.append(max(1.0, (EXACT_LIMIT - b.abs().max().item()) // l1))
        self.shift = 2.0**WEIGHT_BITS  # accumulator (WEIGHT_BITS + ACT_BITS) -> ACT_BITS

    def _requantize(self, acc: torch.Tensor) -> torch.Tensor:
        return torch.floor(acc / self.shift + 0.5)

    def _layer(self, i: int, x: torch.Tensor) -> torch.Tensor:
        padding = self.weights[i].shape[-1] // 2
        return conv2d_exact(_bounded(x, self.limits[i]), self.weights[i], self.biases[i], padding)

    @torch.no_grad()
    def accumulators(self, symbols: torch.Tensor, hyper_acc: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """Refined accumulators (means ‖ scales) of every position of a window, from the
        integer ``symbols`` (only those at ``anchors`` are read) and the hyper-synthesis's
        accumulators of the same window. The context convolution pads with zeros, so a window
        with 2 latent units of context beyond the positions wanted gives them exactly as the
        whole latent would."""
        m = hyper_acc.shape[1] // 2
        hyper_fixed = self._requantize(hyper_acc)
        # ŷ_g = symbol + mean at ACT_BITS: symbol·2^ACT_BITS + round(mean), exact in integers
        y_fixed = (symbols.double() * 2.0**ACT_BITS + hyper_fixed[:, :m]) * anchors
        ctx = self._requantize(self._layer(0, y_fixed))
        x = torch.cat([ctx, hyper_fixed], dim=1)
        for i in (1, 2):
            x = torch.floor(torch.relu(self._layer(i, x)) / self.shift + 0.5)
        return self._layer(3, x) + hyper_acc


SYNTH_WEIGHT_BITS = 16  # fractional bits of the synthesis weights
SYNTH_ACT_BITS = 12  # fractional bits of the synthesis activations (grid 1/4096, far below 1/255)


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _bounded(a: torch.Tensor, limit: float) -> torch.Tensor:
    """``a`` clamped to [-limit, limit]; one reduction instead of a copy in the usual case
    where nothing is out of range."""
    lo, hi = torch.aminmax(a)
    return a.clamp(-limit, limit) if lo.item() < -limit or hi.item() > limit else a


def _mix(a: torch.Tensor, b: torch.Tensor, milli: int) -> torch.Tensor:
    """round(((1000 - milli)·a + milli·b) / 1000) of integer-valued tensors: the sum is an exact
    integer, one IEEE division and a floor give the same result on every machine."""
    return torch.floor((a * (1000 - milli) + b * milli) / 1000 + 0.5)


def _fixed(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Round-half-up to a grid of 2^-bits, returned as an integer-valued float64 tensor."""
    return torch.floor(x.double() * 2.0**bits + 0.5)


class _FixedConv:
    """A convolution (or stride-2 transposed convolution) on integer activations with
    SYNTH_ACT_BITS fractional bits."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, stride=1, padding=0, output_padding=0,
                 transposed: bool = False):
        self.transposed, self.stride, self.padding, self.output_padding = transposed, stride, padding, output_padding
        self.weight = _fixed(weight.detach(), SYNTH_WEIGHT_BITS)
        self.bias = _fixed(bias.detach(), SYNTH_WEIGHT_BITS + SYNTH_ACT_BITS)
        # With half an output step added to the bias, re-quantising the accumulator needs no
        # separate pass to add 1/2: floor((acc + 2^15) / 2^16) == floor(acc / 2^16 + 1/2), exactly.
        self._derive()

    def _derive(self) -> None:
        """The values that follow from the weight and bias."""
        self.rounding_bias = self.bias + 2.0 ** (SYNTH_WEIGHT_BITS - 1)
        # Largest |input| for which every output sum is provably below 2^52.
        l1 = self.weight.abs().sum(dim=(0, 2, 3) if self.transposed else (1, 2, 3)).max().item()
        self.limit = float(max(1.0, (EXACT_LIMIT - self.rounding_bias.abs().max().item()) // max(l1, 1.0)))

    def blended(self, other: _FixedConv, milli: int) -> _FixedConv:
        out = copy.copy(self)
        out.weight, out.bias = _mix(self.weight, other.weight, milli), _mix(self.bias, other.bias, milli)
        out._derive()
        return out

    @classmethod
    def of(cls, layer: nn.Conv2d | nn.ConvTranspose2d) -> _FixedConv:
        bias = layer.bias if layer.bias is not None else torch.zeros(layer.out_channels)
        transposed = isinstance(layer, nn.ConvTranspose2d)
        return cls(layer.weight, bias, layer.stride, layer.padding,
                   layer.output_padding if transposed else 0, transposed)

    def accumulate(self, a: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The integer accumulator, with SYNTH_WEIGHT_BITS + SYNTH_ACT_BITS fractional bits."""
        a, bias = _bounded(a, self.limit), self.bias if bias is None else bias
        if self.transposed:
            return self._transposed(a, bias)
        return F.conv2d(a, self.weight, bias, self.stride, self.padding)

    # Input positions per band of the transposed convolution; see _transposed.
    BAND_POSITIONS = 512

    def _transposed(self, a: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Transposed convolution as an overlap-add of thin bands of input rows.

        PyTorch's float64 transposed convolution (GEMM + col2im) builds a column buffer of
        C_out·k² values per input position; for a whole image that is hundreds of MB and runs
        at a third of the speed of small bands that stay in cache. The bands' contributions
        overlap by a few output rows and are summed; the sums are exact integers, so the result
        is identical to the one-shot convolution.
        """
        n, _, h, w = a.shape
        (sh, sw), (kh, kw) = _pair(self.stride), self.weight.shape[-2:]
        (ph, pw), (oh, ow) = _pair(self.padding), _pair(self.output_padding)
        # Unpadded output, then the crop that padding / output_padding define.
        full = a.new_zeros(n, self.weight.shape[1], (h - 1) * sh + kh + oh, (w - 1) * sw + kw + ow)
        rows = max(1, self.BAND_POSITIONS // max(1, w))
        for r0 in range(0, h, rows):
            part = F.conv_transpose2d(a[:, :, r0 : r0 + rows], self.weight, None, self.stride)
            full[:, :, r0 * sh : r0 * sh + part.shape[2], : part.shape[3]] += part
        out = full[:, :, ph : full.shape[2] - ph, pw : full.shape[3] - pw]
        return out.add_(bias.view(1, -1, 1, 1))

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        return self.accumulate(a, self.rounding_bias).div_(2.0**SYNTH_WEIGHT_BITS).floor_()


class _FixedIGDN:
    """Inverse GDN, y = x · sqrt(β + Γ x²), on fixed-point activations."""

    def __init__(self, gdn: GDN):
        if not gdn.inverse:
            raise ValueError("only the synthesis side's inverse GDN is supported")
        ped = gdn._pedestal
        beta = gdn.beta.detach().double().clamp_min(gdn._beta_bound) ** 2 - ped
        gamma = gdn.gamma.detach().double().clamp_min(gdn._gamma_bound) ** 2 - ped
        self.norm = _FixedConv(gamma.view(len(beta), len(beta), 1, 1), beta)

    # Positions per band: the element-wise chain runs on bands small enough to stay in cache.
    BAND_POSITIONS = 4096

    def blended(self, other: _FixedIGDN, milli: int) -> _FixedIGDN:
        out = copy.copy(self)
        out.norm = self.norm.blended(other.norm, milli)
        return out

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        a = _bounded(a, 2.0**26)  # a² stays exact
        out = torch.empty_like(a)
        rows = max(1, self.BAND_POSITIONS // max(1, a.shape[-1]))
        for r0 in range(0, a.shape[-2], rows):
            band = a[:, :, r0 : r0 + rows]
            squares = torch.square(band).add_(2.0 ** (SYNTH_ACT_BITS - 1)).div_(2.0**SYNTH_ACT_BITS).floor_()
            norm = self.norm.accumulate(squares).div_(2.0 ** (SYNTH_WEIGHT_BITS + SYNTH_ACT_BITS))
            out[:, :, r0 : r0 + rows] = norm.sqrt_().mul_(band).add_(0.5).floor_()
        return out


class _FixedLeakyReLU:
    def __init__(self, slope: float):
        self.slope = float(slope)

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        return torch.where(a >= 0, a, torch.floor(a * self.slope + 0.5))

    def blended(self, other: _FixedLeakyReLU, milli: int) -> _FixedLeakyReLU:
        if other.slope != self.slope:
            raise ValueError("the two networks' activations differ")
        return self


class _FixedResidual:
    def __init__(self, block: ResidualBlock):
        self.act = _FixedLeakyReLU(block.act.negative_slope)
        self.conv1, self.conv2 = _FixedConv.of(block.conv1), _FixedConv.of(block.conv2)

    def blended(self, other: _FixedResidual, milli: int) -> _FixedResidual:
        out = copy.copy(self)
        out.conv1, out.conv2 = self.conv1.blended(other.conv1, milli), self.conv2.blended(other.conv2, milli)
        return out

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        return a + self.conv2(self.act(self.conv1(self.act(a))))


class ExactSynthesis:
    """Bit-exact fixed-point twin of a float synthesis transform (Conv / ConvTranspose /
    residual blocks / inverse GDN). Built from the float weights at load time; its output
    differs from the float network's by far less than one 8-bit step (see tests).

    ``head`` (the layers at latent resolution) and ``tail`` (the upsampling stages) can run
    separately, so the decoder can tile the expensive tail finely with a small margin."""

    def __init__(self, net: nn.Module):
        layers = net.net if hasattr(net, "net") else net
        self.ops = []
        for m in layers:
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                self.ops.append(_FixedConv.of(m))
            elif isinstance(m, GDN):
                self.ops.append(_FixedIGDN(m))
            elif isinstance(m, ResidualBlock):
                self.ops.append(_FixedResidual(m))
            elif isinstance(m, nn.LeakyReLU):
                self.ops.append(_FixedLeakyReLU(m.negative_slope))
            else:
                raise TypeError(f"no exact version of {type(m).__name__}")
        self.split = upsampling_start(layers)

    def blended(self, other: ExactSynthesis, realism_milli: int) -> ExactSynthesis:
        """The network whose fixed-point parameters are ``(1 - r)·self + r·other``, r =
        ``realism_milli`` / 1000, each rounded to its grid: ESRGAN's network interpolation, done
        in integers so that every machine decodes the same pixels at the same realism."""
        if not 0 <= realism_milli <= 1000 or len(other.ops) != len(self.ops):
            raise ValueError("blend of two synthesis networks of one layout, by 0..1000 thousandths")
        out = copy.copy(self)
        out.ops = [a.blended(b, realism_milli) for a, b in zip(self.ops, other.ops)]
        return out

    @torch.no_grad()
    def head(self, y_hat: torch.Tensor) -> torch.Tensor:
        """Dequantised latent (float) -> integer activations at latent resolution."""
        a = _fixed(y_hat, SYNTH_ACT_BITS)
        for op in self.ops[: self.split]:
            a = op(a)
        return a

    @torch.no_grad()
    def tail(self, a: torch.Tensor) -> torch.Tensor:
        """Integer activations -> pixels as float64 values on the 2^-12 grid."""
        for op in self.ops[self.split :]:
            a = op(a)
        return a / 2.0**SYNTH_ACT_BITS

    def __call__(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.tail(self.head(y_hat))


def upsampling_start(layers: nn.Sequential) -> int:
    """Index of the first transposed convolution: where the synthesis leaves latent resolution."""
    return next(i for i, m in enumerate(layers) if isinstance(m, nn.ConvTranspose2d))
