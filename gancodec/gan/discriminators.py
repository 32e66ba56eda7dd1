"""Discriminators: a spectral-norm PatchGAN, optionally conditioned on a side input.

The codec's discriminator is HiFiC's: it sees the image together with the quantised latent
(reduced by a 1×1 conv and upsampled to the image size), so it judges "is this a plausible
image *for this latent*". Restoration uses the same class conditioned on the degraded input
(pix2pix). ``forward`` returns logits per patch and the intermediate features, which feed the
feature-matching loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    def __init__(
        self,
        in_channels: int = 3,
        cond_channels: int = 0,
        width: int = 64,
        layers: int = 3,
        cond_embed: int = 12,
        use_spectral_norm: bool = True,
        last_stride: int = 1,
        normalize_head: bool = False,
    ):
        """``layers`` 4×4 convolutions, stride 2 except the last (``last_stride``: 1 gives the
        pix2pix 70×70 PatchGAN; 2 is 4× cheaper, for CPU budgets), then a 1-channel head.

        Spectral norm constrains the hidden convolutions; the head stays free by default (as in
        Real-ESRGAN's discriminator). With every layer normalised the network is 1-Lipschitz, so
        its logits can differ between a real image and a good reconstruction by no more than
        their distance: the codec's discriminator sat at the chance loss ln 4 (1.3863) for
        hundreds of steps and gave the generator almost no signal."""
        super().__init__()
        sn = spectral_norm if use_spectral_norm else (lambda m: m)
        self.cond = None
        if cond_channels:
            self.cond = nn.Sequential(sn(nn.Conv2d(cond_channels, cond_embed, 1)), nn.LeakyReLU(0.2))
        ch = in_channels + (cond_embed if cond_channels else 0)
        blocks = []
        for i in range(layers):
            out = width * 2 ** min(i, 3)
            stride = 2 if i < layers - 1 else last_stride
            blocks.append(nn.Sequential(sn(nn.Conv2d(ch, out, 4, stride, 1)), nn.LeakyReLU(0.2)))
            ch = out
        self.blocks = nn.ModuleList(blocks)
        head = nn.Conv2d(ch, 1, 4, 1, 1)
        self.head = sn(head) if normalize_head else head

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if self.cond is not None:
            if cond is None:
                raise ValueError("this discriminator is conditional: pass cond")
            c = self.cond(cond)
            if c.shape[-2:] != x.shape[-2:]:
                c = F.interpolate(c, size=x.shape[-2:], mode="nearest")
            x = torch.cat([x, c], dim=1)
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return self.head(x), feats


class MultiScaleDiscriminator(nn.Module):
    """pix2pixHD's multi-scale discriminator: ``scales`` PatchGANs of the same shape, the k-th
    seeing the image average-pooled 2^k times (the condition is resized inside each).

    The full-resolution one judges fine texture, the coarser ones structure over a wider field
    for the same cost per logit. ``forward`` returns one logit map per scale (their resolutions
    differ, so losses are taken per scale and averaged: :func:`gancodec.gan.losses.per_scale`)
    and every scale's features, finest first, for feature matching."""

    def __init__(self, scales: int = 2, **patch_kwargs):
        super().__init__()
        if scales < 1:
            raise ValueError("scales must be at least 1")
        self.scales = nn.ModuleList(PatchDiscriminator(**patch_kwargs) for _ in range(scales))

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        logits, feats = [], []
        for k, disc in enumerate(self.scales):
            if k:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out, f = disc(x, cond)
            logits.append(out)
            feats.extend(f)
        return logits, feats
