"""Differentiable augmentation of the discriminator's inputs (DiffAugment; Zhao et al. 2020).

With few training images the discriminator memorises them: its real logits keep rising while the
generator's samples stop improving. DiffAugment applies the *same family* of random transforms to
real and generated images every time the discriminator sees them, in its own update and in the
generator's; the transforms are differentiable, so the generator's gradient flows through them,
and since the generator is judged only through augmented views it is not pushed to produce the
augmentations themselves (unlike augmenting only the real data).

Policies, comma-separated, applied in order, each with fresh random parameters per image:

* ``translation`` — shift by up to 1/8 of the side in x and y, zeros (mid-grey in [-1, 1]) filling
  the uncovered border;
* ``cutout`` — zero a square of half the side at a random centre (it may hang over the edge);
* ``color`` — random brightness (±0.5), saturation (×0..2, colour images only) and contrast
  (×0.5..1.5), the paper's colour transform for images in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("translation", "cutout", "color")


def parse_policy(text: str | None) -> tuple[str, ...]:
    """``"translation,cutout"`` → ``("translation", "cutout")``; empty or None → no augmentation."""
    names = tuple(p.strip() for p in (text or "").split(",") if p.strip())
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {', '.join(unknown)}; choose from {', '.join(POLICIES)}")
    return names


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), device=x.device)
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + dy + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + dx + 1).clamp(0, w + 1)
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # one ring of zeros, read by clamped indices
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device) - ch // 2  # centre anywhere
    left = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device) - cw // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1) - top
    cols = torch.arange(w, device=x.device).view(1, 1, w) - left
    inside = (rows >= 0) & (rows < ch) & (cols >= 0) & (cols < cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def color(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[0]
    x = x + (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)
    if x.shape[1] == 3:
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


_TRANSFORMS = {"translation": translation, "cutout": cutout, "color": color}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    """``x`` (N, C, H, W) through each transform of ``policy`` (see the module docstring)."""
    for name in policy:
        x = _TRANSFORMS[name](x)
    return x
