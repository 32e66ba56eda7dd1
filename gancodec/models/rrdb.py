"""ESRGAN's generator (Wang et al. 2018), sized for a CPU: residual-in-residual dense blocks.

Differences from the paper, both for a small training budget: fewer and narrower blocks, and a
bilinear skip from input to output so the network learns only the missing detail.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualDenseBlock(nn.Module):
    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(nf + i * gc, gc if i < 4 else nf, 3, padding=1) for i in range(5))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i, conv in enumerate(self.convs):
            out = conv(torch.cat(feats, dim=1))
            if i < 4:
                feats.append(self.act(out))
        return x + 0.2 * out  # residual scaling keeps deep stacks stable without batch norm


class RRDB(nn.Module):
    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.blocks = nn.Sequential(*(ResidualDenseBlock(nf, gc) for _ in range(3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.blocks(x)


class RRDBNet(nn.Module):
    def __init__(self, scale: int = 4, nf: int = 32, blocks: int = 4, gc: int = 16):
        super().__init__()
        if scale not in (2, 4):
            raise ValueError("scale must be 2 or 4")
        self.scale = scale
        self.conv_first = nn.Conv2d(3, nf, 3, padding=1)
        self.body = nn.Sequential(*(RRDB(nf, gc) for _ in range(blocks)))
        self.conv_body = nn.Conv2d(nf, nf, 3, padding=1)
        self.ups = nn.ModuleList(nn.Conv2d(nf, nf, 3, padding=1) for _ in range(scale // 2))
        self.conv_hr = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_last = nn.Conv2d(nf, 3, 3, padding=1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.trunk(x))

    # The two halves, for tiled inference (gancodec.tiling.run_tiled_two_stage): the trunk needs
    # wide context at low resolution, the upsampling tail holds the memory (full-resolution
    # activations) but sees about one input pixel around it, so it is tiled finely.
    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Low-resolution features, with the input itself appended (the tail's bilinear skip)."""
        feat = self.conv_first(x)
        return torch.cat([feat + self.conv_body(self.body(feat)), x], dim=1)

    def upsample(self, trunk: torch.Tensor) -> torch.Tensor:
        feat, x = trunk[:, :-3], trunk[:, -3:]
        for up in self.ups:  # nearest + conv upsampling avoids checkerboard artefacts
            feat = self.act(up(F.interpolate(feat, scale_factor=2, mode="nearest")))
        out = self.conv_last(self.act(self.conv_hr(feat)))
        return out + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
