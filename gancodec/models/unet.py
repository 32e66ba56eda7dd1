"""Restoration generator: a residual U-Net (pix2pix family) conditioned on the task.

The task (``jpeg``, ``denoise``, ``auto``) enters as one-hot constant channels, so one network
serves all three; the output is ``input + strength × predicted correction``, which makes the
``strength`` knob a direct dial on how much is changed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ResidualBlock

TASKS = ("jpeg", "denoise", "auto")


class RestorationUNet(nn.Module):
    def __init__(self, width: int = 32, levels: int = 3, blocks: int = 1):
        super().__init__()
        self.levels = levels
        chans = [width * 2**i for i in range(levels)]
        self.head = nn.Conv2d(3 + len(TASKS), chans[0], 3, padding=1)
        self.enc = nn.ModuleList(
            nn.Sequential(*(ResidualBlock(c) for _ in range(blocks))) for c in chans
        )
        self.down = nn.ModuleList(nn.Conv2d(chans[i], chans[i + 1], 3, 2, 1) for i in range(levels - 1))
        self.up = nn.ModuleList(nn.Conv2d(chans[i + 1], chans[i], 3, padding=1) for i in range(levels - 1))
        self.dec = nn.ModuleList(
            nn.Sequential(*(ResidualBlock(c) for _ in range(blocks))) for c in chans[:-1]
        )
        self.tail = nn.Conv2d(chans[0], 3, 3, padding=1)

    @staticmethod
    def task_channels(task: str, like: torch.Tensor) -> torch.Tensor:
        onehot = torch.zeros(like.shape[0], len(TASKS), *like.shape[-2:], dtype=like.dtype, device=like.device)
        onehot[:, TASKS.index(task)] = 1
        return onehot

    def correction(self, x: torch.Tensor, task: str | torch.Tensor) -> torch.Tensor:
        cond = self.task_channels(task, x) if isinstance(task, str) else task
        pad_h, pad_w = -x.shape[-2] % 2 ** (self.levels - 1), -x.shape[-1] % 2 ** (self.levels - 1)
        h = self.head(F.pad(torch.cat([x, cond], 1), (0, pad_w, 0, pad_h), mode="replicate"))
        skips = []
        for i in range(self.levels):
            h = self.enc[i](h)
            if i < self.levels - 1:
                skips.append(h)
                h = self.down[i](h)
        for i in reversed(range(self.levels - 1)):
            h = self.dec[i](skips[i] + self.up[i](F.interpolate(h, scale_factor=2, mode="nearest")))
        return self.tail(h)[..., : x.shape[-2], : x.shape[-1]]

    def forward(self, x: torch.Tensor, task: str | torch.Tensor = "auto", strength: float = 1.0) -> torch.Tensor:
        return x + strength * self.correction(x, task)
