"""DCGAN-family networks for small images: 28×28 (MNIST), 32×32 and 64×64.

* :class:`DCGANGenerator` — pytorch/examples' DCGAN shape (4×4 stride-2 transposed convolutions,
  BN, ReLU, Tanh) from a start of 7×7 (28 px) or 4×4 (32, 64 px). Class conditioning by
  *conditional BN* (a per-class gain and bias after each BN, Miyato & Koyama 2018) or by
  concatenating a class embedding to ``z``. The same conditional BN carries InfoGAN's
  *categorical code* (Chen et al. 2016): an unconditional generator drawn from a mixture of
  ``latent_codes`` sub-generators, with no labels involved.
* :class:`DCGANDiscriminator` — 4×4 stride-2 convolutions with LeakyReLU 0.2 and a linear head.
  No BN: WGAN-GP's penalty is per sample and BN couples samples, and the stability study
  compares every loss on the *same* pair. Spectral norm on every layer is optional.
  Class conditioning by *projection* (inner product of a class embedding with the features,
  Miyato & Koyama 2018) or by one-hot maps concatenated to the input. With ``codes`` it also
  has InfoGAN's auxiliary head Q, which predicts a generated image's categorical code from the
  shared features.
* :class:`BEGANDiscriminator` — BEGAN's autoencoder: it returns a reconstruction, and the loss is
  the reconstruction error (:func:`gancodec.gan.losses.began_recon_error`).

Images are in [-1, 1] inside the networks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

SIZES = {28: (7, 2), 32: (4, 3), 64: (4, 4)}  # image size → (start resolution, upsamplings)


def _geometry(size: int) -> tuple[int, int]:
    if size not in SIZES:
        raise ValueError(f"image size must be one of {sorted(SIZES)}, got {size}")
    return SIZES[size]


@dataclass
class GANConfig:
    size: int = 28
    channels: int = 1
    nz: int = 64
    width: int = 64  # channels of the last G stage / first D stage; doubled per stage
    num_classes: int = 0  # 0: unconditional
    # InfoGAN's categorical code for an *unconditional* model: G is conditioned on a code drawn
    # uniformly from this many values and D predicts it; 0: none. The noise of a continuous
    # latent space is one connected blob, and digits are separate classes: without a discrete
    # code G must spend part of its space between them (ambiguous digits).
    latent_codes: int = 0
    g_cond: str = "cbn"  # cbn | concat
    d_cond: str = "projection"  # projection | concat
    spectral_norm: bool = True
    began: bool = False  # the discriminator is BEGAN's autoencoder
    began_hidden: int = 64
    # 3×3 stride-1 convolutions added per resolution stage (SNGAN's "standard CNN", Miyato et al.
    # 2018): in G a conv-BN-ReLU after the projection and each upsampling, in D a conv-LeakyReLU
    # before each downsampling and after the last. 0: the plain DCGAN pair (the study's).
    g_depth: int = 0
    d_depth: int = 0
    # A self-conditioned unconditional model (Liu et al. 2020; gancodec/generation/clusters.py):
    # G and D are conditioned like a class-conditional pair on the id of a k-means cluster of the
    # training images, and sampling draws the id from ``cluster_prior`` (each cluster's share).
    # No label is used: the model is unconditional. 0: none.
    clusters: int = 0
    cluster_prior: list[float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GANConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def __post_init__(self) -> None:
        if self.latent_codes and self.num_classes:
            raise ValueError("a model is either class-conditional or has a latent code, not both")
        if self.latent_codes and self.began:
            raise ValueError("BEGAN's autoencoder discriminator has no code head")
        if self.g_depth < 0 or self.d_depth < 0:
            raise ValueError("g_depth and d_depth count layers: 0 or more")
        if self.d_depth and self.began:
            raise ValueError("d_depth is for the DCGAN discriminator, not BEGAN's autoencoder")
        if self.clusters and (self.num_classes or self.latent_codes or self.began):
            raise ValueError("self-conditioning (clusters) is for an unconditional DCGAN pair without a latent code")
        if self.clusters and (self.cluster_prior is None or len(self.cluster_prior) != self.clusters):
            raise ValueError("a self-conditioned model needs the share of each of its clusters (cluster_prior)")

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def generator_conditions(self) -> int:
        """How many values the generator's second input takes (classes or codes; 0: none)."""
        return self.num_classes or self.latent_codes or self.clusters

    @property
    def label_conditions(self) -> int:
        """How many values the label both networks see takes (classes or cluster ids; 0: none)."""
        return self.num_classes or self.clusters

    def build_generator(self) -> DCGANGenerator:
        return DCGANGenerator(self.nz, self.size, self.channels, self.width, self.generator_conditions,
                              self.g_cond, depth=self.g_depth)

    def build_discriminator(self) -> nn.Module:
        if self.began:
            return BEGANDiscriminator(self.size, self.channels, self.width, self.began_hidden, self.num_classes,
                                      self.spectral_norm)
        return DCGANDiscriminator(self.size, self.channels, self.width, self.label_conditions, self.d_cond,
                                  self.spectral_norm, codes=self.latent_codes, depth=self.d_depth)


def dcgan_init(module: nn.Module) -> None:
    """N(0, 0.02) weights, BN gains N(1, 0.02) (Radford et al. 2016)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class CondBatchNorm(nn.Module):
    """BN without its own affine, then a gain and bias looked up by class (or shared if none)."""

    def __init__(self, channels: int, num_classes: int = 0):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=num_classes == 0)
        self.embed = None
        if num_classes:
            self.embed = nn.Embedding(num_classes, 2 * channels)
            nn.init.ones_(self.embed.weight[:, :channels])
            nn.init.zeros_(self.embed.weight[:, channels:])

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        x = self.bn(x)
        if self.embed is None:
            return x
        gain, bias = self.embed(y).chunk(2, dim=1)
        return x * gain[:, :, None, None] + bias[:, :, None, None]


class DCGANGenerator(nn.Module):
    def __init__(self, nz: int = 64, size: int = 28, channels: int = 1, width: int = 64, num_classes: int = 0,
                 cond: str = "cbn", depth: int = 0):
        super().__init__()
        if cond not in ("cbn", "concat"):
            raise ValueError(f"generator conditioning must be cbn or concat, got {cond!r}")
        self.nz, self.size, self.num_classes = nz, size, num_classes
        self.start, ups = _geometry(size)
        bn_classes = num_classes if cond == "cbn" else 0
        self.embed = nn.Embedding(num_classes, nz) if num_classes and cond == "concat" else None
        ch = width * 2 ** (ups - 1)
        self.fc = nn.Linear(nz * (2 if self.embed is not None else 1), ch * self.start**2, bias=False)
        self.norms = nn.ModuleList([CondBatchNorm(ch, bn_classes)])
        self.ups = nn.ModuleList()
        # per stage (the projection's, then each upsampling's): ``depth`` × (3×3 conv, norm)
        self.refine = nn.ModuleList([_RefineStage(ch, depth, bn_classes)])
        for _ in range(ups - 1):
            self.ups.append(nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False))
            ch //= 2
            self.norms.append(CondBatchNorm(ch, bn_classes))
            self.refine.append(_RefineStage(ch, depth, bn_classes))
        self.out = nn.ConvTranspose2d(ch, channels, 4, 2, 1)
        dcgan_init(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes and y is None:
            raise ValueError("this generator is class-conditional: pass the labels")
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)
        h = self.fc(z).view(z.shape[0], -1, self.start, self.start)
        h = self.refine[0](F.relu(self.norms[0](h, y)), y)
        for up, norm, refine in zip(self.ups, self.norms[1:], self.refine[1:]):
            h = refine(F.relu(norm(up(h), y)), y)
        return torch.tanh(self.out(h))


class _RefineStage(nn.Module):
    """``depth`` × (3×3 conv, conditional BN, ReLU) at one resolution of the generator; empty
    (identity, no parameters) at depth 0."""

    def __init__(self, channels: int, depth: int, num_classes: int):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(channels, channels, 3, 1, 1, bias=False) for _ in range(depth)])
        self.norms = nn.ModuleList([CondBatchNorm(channels, num_classes) for _ in range(depth)])

    def forward(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms):
            h = F.relu(norm(conv(h), y))
        return h


class DCGANDiscriminator(nn.Module):
    def __init__(self, size: int = 28, channels: int = 1, width: int = 64, num_classes: int = 0,
                 cond: str = "projection", spectral_norm: bool = True, codes: int = 0, depth: int = 0):
        super().__init__()
        if cond not in ("projection", "concat"):
            raise ValueError(f"discriminator conditioning must be projection or concat, got {cond!r}")
        sn = _sn if spectral_norm else (lambda m: m)
        self.num_classes, self.cond = num_classes, cond
        start, downs = _geometry(size)
        ch = channels + (num_classes if num_classes and cond == "concat" else 0)
        convs = []
        for i in range(downs):
            out = width * 2**i
            for _ in range(depth):  # 3×3 convolutions at this resolution, then the stride-2 one
                convs.append(sn(nn.Conv2d(ch, out, 3, 1, 1)))
                ch = out
            convs.append(sn(nn.Conv2d(ch, out, 4, 2, 1)))
            ch = out
        for _ in range(depth):  # and at the last resolution
            convs.append(sn(nn.Conv2d(ch, ch, 3, 1, 1)))
        self.convs = nn.ModuleList(convs)
        features = ch * start * start
        self.head = sn(nn.Linear(features, 1))
        self.project = sn(nn.Embedding(num_classes, features)) if num_classes and cond == "projection" else None
        # InfoGAN's Q: a small MLP on D's features (no spectral norm: it is a classifier, not a critic)
        self.code_head = nn.Sequential(nn.Linear(features, 128), nn.LeakyReLU(0.2),
                                       nn.Linear(128, codes)) if codes else None
        dcgan_init(self)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None,
                with_codes: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (N,); with ``with_codes``, also the code head's logits (N, codes). A keyword
        of ``forward`` rather than a method of its own, so a DDP wrapper still sees the call."""
        if with_codes and self.code_head is None:
            raise ValueError("this discriminator has no code head")
        if self.num_classes and y is None:
            raise ValueError("this discriminator is class-conditional: pass the labels")
        if self.num_classes and self.cond == "concat":
            onehot = F.one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, onehot.expand(-1, -1, *x.shape[-2:])], dim=1)
        h = x
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)
        h = h.flatten(1)
        out = self.head(h).squeeze(1)
        if self.project is not None:
            out = out + (self.project(y) * h).sum(1)
        return (out, self.code_head(h)) if with_codes else out


class BEGANDiscriminator(nn.Module):
    """Autoencoder (Berthelot et al. 2017): conv encoder to a ``hidden``-dim code, decoder by
    nearest upsampling + 3×3 convolutions with ELU. Conditional: a class embedding is added to the
    code, so an image reconstructs well only under its own class."""

    def __init__(self, size: int = 28, channels: int = 1, width: int = 64, hidden: int = 64, num_classes: int = 0,
                 spectral_norm: bool = False):
        super().__init__()
        sn = _sn if spectral_norm else (lambda m: m)
        self.start, downs = _geometry(size)
        enc = [sn(nn.Conv2d(channels, width, 3, 1, 1)), nn.ELU()]
        ch = width
        for i in range(downs):
            out = width * 2 ** (i + 1)
            enc += [sn(nn.Conv2d(ch, out, 4, 2, 1)), nn.ELU()]
            ch = out
        self.encoder = nn.Sequential(*enc)
        self.to_code = sn(nn.Linear(ch * self.start**2, hidden))
        self.embed = nn.Embedding(num_classes, hidden) if num_classes else None
        self.width = width
        self.from_code = sn(nn.Linear(hidden, width * self.start**2))
        dec: list[nn.Module] = []
        for _ in range(downs):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), sn(nn.Conv2d(width, width, 3, 1, 1)), nn.ELU()]
        dec += [sn(nn.Conv2d(width, channels, 3, 1, 1))]
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The reconstruction of ``x`` (same shape)."""
        code = self.to_code(self.encoder(x).flatten(1))
        if self.embed is not None:
            if y is None:
                raise ValueError("this discriminator is class-conditional: pass the labels")
            code = code + self.embed(y)
        h = self.from_code(code).view(x.shape[0], self.width, self.start, self.start)
        return self.decoder(h)
