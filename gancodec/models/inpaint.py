"""Inpainting generator: LaMa's FFC-ResNet (Suvorov et al. 2022), sized for a CPU.

The network sees the image with the hole zeroed plus the mask (4 channels): a 7×7 stem,
``downs`` stride-2 convolutions, ``blocks`` residual blocks of *fast Fourier convolutions* and
as many ×2 transposed 3×3 convolutions back up (LaMa's), a 7×7 head and a sigmoid. An FFC splits its channels
into a local part (ordinary 3×3 convolutions) and a global part (``ratio`` of the channels) that
is transformed with a 1×1 convolution in the 2-D Fourier domain: every output pixel of the first
block already sees the whole image, which is what lets a small network fill a large hole with
coherent structure (a wall's bricks, a horizon) instead of a blur grown in from the edges.

Everything the head sees has passed through the stride-``2**downs`` bottleneck, so the coarse
prediction is blurred even next to known pixels: a 2-px scratch was filled worse than OpenCV's
diffusion fills, which copy its neighbours. With ``refine`` > 0 a small full-resolution branch
(three 3×3 convolutions, receptive field 9×9) sees the coarse prediction composited into the
known pixels, plus the mask, and adds a correction to the head's logits. Its last convolution
starts at zero, so a network that gains the branch starts from exactly its old output.

The FFT and the spectral 1×1 convolution run in float32 even under bf16 autocast: bf16's 8-bit
mantissa cannot carry the DC coefficient (a sum over the whole map) next to fine frequencies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class InpaintConfig:
    width: int = 32  # channels after the stem; doubled at each downsampling
    downs: int = 3  # stride-2 stages: the network's stride is 2**downs
    blocks: int = 4  # FFC residual blocks at the bottleneck
    ratio: float = 0.75  # share of the bottleneck channels on the global (spectral) branch
    refine: int = 0  # channels of the full-resolution refinement branch; 0 = none (v0.1, v0.2)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> InpaintConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    @property
    def stride(self) -> int:
        return 2**self.downs

    def build(self) -> FFCInpainter:
        return FFCInpainter(self)


def _conv_bn_relu(cin: int, cout: int, k: int, stride: int = 1, pad_mode: str = "zeros") -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=False, padding_mode=pad_mode),
        nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class FourierUnit(nn.Module):
    """1×1 convolution over (real, imaginary) of the 2-D real FFT, back with the inverse FFT."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(2 * cin, 2 * cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(2 * cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        # fp32 island: see the module docstring
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            b, _, h, w = x.shape
            spec = torch.fft.rfft2(x, norm="ortho")  # (b, c, h, w//2 + 1) complex
            spec = torch.cat([spec.real, spec.imag], dim=1)
            spec = F.relu(self.bn(self.conv(spec)))
            real, imag = spec.chunk(2, dim=1)
            out = torch.fft.irfft2(torch.complex(real.contiguous(), imag.contiguous()), s=(h, w), norm="ortho")
        return out.to(dtype)  # back to the dtype autocast gave the surrounding layers


class SpectralTransform(nn.Module):
    """LaMa's global branch: halve the channels, add a Fourier unit's output, project back."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        hidden = max(cout // 2, 1)
        self.reduce = _conv_bn_relu(cin, hidden, 1)
        self.fu = FourierUnit(hidden, hidden)
        self.expand = nn.Conv2d(hidden, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)
        return self.expand(x + self.fu(x))


class FFC(nn.Module):
    """Fast Fourier convolution on a tensor whose first ``local`` channels are the local part.

    local→local, global→local and local→global are 3×3 convolutions; global→global is the
    spectral transform. Each output part gets batch norm and ReLU.
    """

    def __init__(self, channels: int, ratio: float):
        super().__init__()
        self.glob = int(round(channels * ratio))
        self.local = channels - self.glob
        cl, cg = self.local, self.glob
        conv = dict(kernel_size=3, padding=1, bias=False, padding_mode="reflect")
        self.l2l = nn.Conv2d(cl, cl, **conv)
        self.g2l = nn.Conv2d(cg, cl, **conv)
        self.l2g = nn.Conv2d(cl, cg, **conv)
        self.g2g = SpectralTransform(cg, cg)
        self.bn_l, self.bn_g = nn.BatchNorm2d(cl), nn.BatchNorm2d(cg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xl, xg = x[:, : self.local], x[:, self.local :]
        yl = self.l2l(xl) + self.g2l(xg)
        yg = self.l2g(xl) + self.g2g(xg)
        return torch.cat([F.relu(self.bn_l(yl)), F.relu(self.bn_g(yg))], dim=1)


class FFCResBlock(nn.Module):
    def __init__(self, channels: int, ratio: float):
        super().__init__()
        self.ffc1, self.ffc2 = FFC(channels, ratio), FFC(channels, ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ffc2(self.ffc1(x))


class Refinement(nn.Module):
    """Full-resolution correction of the coarse prediction's logits (see the module docstring)."""

    def __init__(self, channels: int):
        super().__init__()
        conv = dict(kernel_size=3, padding_mode="reflect")
        self.body = nn.Sequential(
            nn.Conv2d(4, channels, padding=1, **conv), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(channels, channels, padding=2, dilation=2, **conv), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(channels, 3, padding=1, **conv),
        )
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, image: torch.Tensor, mask: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        coarse = torch.sigmoid(logits).to(image.dtype)
        composite = mask * coarse + (1 - mask) * image
        return logits + self.body(torch.cat([composite, mask], dim=1))


class FFCInpainter(nn.Module):
    """(image with hole, mask) → filled image in [0, 1]; see the module docstring."""

    def __init__(self, config: InpaintConfig | None = None):
        super().__init__()
        self.config = config = config or InpaintConfig()
        chans = [config.width * 2**i for i in range(config.downs + 1)]
        self.stem = _conv_bn_relu(4, chans[0], 7, pad_mode="reflect")
        self.down = nn.Sequential(*(_conv_bn_relu(chans[i], chans[i + 1], 3, 2) for i in range(config.downs)))
        self.blocks = nn.Sequential(*(FFCResBlock(chans[-1], config.ratio) for _ in range(config.blocks)))
        self.up = nn.Sequential(*(
            nn.Sequential(nn.ConvTranspose2d(chans[i + 1], chans[i], 3, 2, 1, output_padding=1, bias=False),
                          nn.BatchNorm2d(chans[i]), nn.ReLU(inplace=True))
            for i in reversed(range(config.downs))
        ))
        self.head = nn.Conv2d(chans[0], 3, 7, padding=3, padding_mode="reflect")
        self.refine = Refinement(config.refine) if config.refine else None

    @property
    def stride(self) -> int:
        return self.config.stride

    def forward(self, image: torch.Tensor, mask: torch.Tensor, composite: bool = True) -> torch.Tensor:
        """``image`` (N, 3, H, W) in [0, 1], ``mask`` (N, 1, H, W), 1 = hole; H and W multiples of
        :attr:`stride`. ``composite``: known pixels are the input's (the raw prediction otherwise,
        which training needs for its loss on the known pixels)."""
        mask = mask.to(image.dtype)
        x = torch.cat([image * (1 - mask), mask], dim=1)
        logits = self.head(self.up(self.blocks(self.down(self.stem(x)))))
        if self.refine is not None:
            logits = self.refine(image, mask, logits)
        pred = torch.sigmoid(logits)
        if not composite:
            return pred
        pred = pred.to(image.dtype)
        return mask * pred + (1 - mask) * image
