"""HiFiC-lite: the generative image codec's networks, sized for a CPU.

    x ──g_a──> y ──×gain[q]──> y_g ──h_a──> z ──round──> ẑ ──h_s──> (μ, σ)
    ŷ_g = round(y_g − μ) + μ ──×inv_gain[q]──> ŷ ──g_s (MSE) or g_s_gan (GAN)──> x̂

* analysis ``g_a``: four stride-2 5×5 convolutions with GDN (stride 16 overall);
* gain units (Cui et al. 2021): one learned per-channel gain / inverse gain per quality level,
  interpolated geometrically in between, so one model covers every rate;
* mean–scale hyperprior: factorized prior on z, Gaussian conditional on y_g; optionally a
  checkerboard context model (:mod:`gancodec.entropy.context`) that refines the mean and scale
  of half the positions from the other, already decoded half;
* synthesis / generator: residual blocks at 1/16 resolution then four upsampling stages with
  IGDN. The MSE-trained synthesis is kept beside the GAN-finetuned one, and the bitstream does
  not depend on which of the two decodes it. A GAN decoder may be *anchored* (``g_s_anchor``):
  its image is then g_s(ŷ) + g_s_gan(ŷ) − g_s_anchor(ŷ), the texture it adds over the MSE
  synthesis it was trained against, put onto a later, better MSE synthesis.

Everything about *coding* (integer hyper-synthesis, tables, bytes) lives in
:mod:`gancodec.models.integer` and :mod:`gancodec.codec`; this module is the differentiable part.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..entropy.context import CONTEXT_MODELS, CheckerboardContext, anchor_mask_like
from ..entropy.factorized import FactorizedPrior
from ..entropy.gaussian import GaussianConditional
from ..layers import GDN, ResidualBlock, conv, deconv, lower_bound


@dataclass
class CodecConfig:
    channels: int = 128  # N: width of the transforms
    latent_channels: int = 160  # M: channels of y
    hyper_channels: int = 128  # channels of z and of the hyper transforms
    res_blocks: int = 3  # residual blocks at the synthesis input
    # rate–distortion trade-off of each quality level; this range spans about 0.1–0.6 bpp on Kodak
    lambdas: list[float] = field(default_factory=lambda: [0.0009, 0.0018, 0.0035, 0.0067, 0.013, 0.025])
    context: str = "none"  # entropy model context: none | checkerboard

    def __post_init__(self) -> None:
        if self.context not in CONTEXT_MODELS:
            raise ValueError(f"context must be one of {', '.join(CONTEXT_MODELS)}, got {self.context!r}")

    @property
    def levels(self) -> int:
        return len(self.lambdas)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CodecConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def lambda_for_quality(lambdas: list[float], q: torch.Tensor) -> torch.Tensor:
    """Log-linear interpolation of the per-level λ at continuous quality q ∈ [1, levels]."""
    log_l = torch.tensor([math.log(v) for v in lambdas], dtype=q.dtype, device=q.device)
    pos = (q - 1).clamp(0, len(lambdas) - 1)
    lo = pos.floor().long().clamp(max=len(lambdas) - 2)
    t = pos - lo
    return torch.exp(log_l[lo] * (1 - t) + log_l[lo + 1] * t)


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity in the backward pass."""
    return x + (torch.round(x) - x).detach()


class Analysis(nn.Module):
    def __init__(self, n: int, m: int):
        super().__init__()
        self.net = nn.Sequential(
            conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Synthesis(nn.Module):
    """Decoder / generator. Residual blocks at the latent resolution are cheap and give the
    capacity that texture synthesis needs."""

    def __init__(self, n: int, m: int, res_blocks: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(m, n, 3, padding=1),
            *[ResidualBlock(n) for _ in range(res_blocks)],
            deconv(n, n), GDN(n, inverse=True),
            deconv(n, n), GDN(n, inverse=True),
            deconv(n, n), GDN(n, inverse=True),
            deconv(n, 3),
        )

    def forward(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.net(y_hat)


def blended_parameters(fidelity: Synthesis, gan: Synthesis, realism: float) -> dict[str, torch.Tensor]:
    """The parameters of the synthesis ``realism`` of the way from ``fidelity`` to ``gan``, blended
    as the decoder blends them (:meth:`gancodec.models.integer.ExactSynthesis.blended`):
    convolutions linearly, each IGDN in its effective β and γ (the stored values squared) — a
    blend of two valid IGDNs is then a valid IGDN. Gradients reach both networks, so training can
    shape what the ``--realism`` dial decodes (:class:`~gancodec.training.codec_task.CodecGANTask`)."""
    gan_params = dict(gan.named_parameters())
    out = {k: torch.lerp(v, gan_params[k], realism) for k, v in fidelity.named_parameters()}
    for name, module in fidelity.named_modules():
        if not isinstance(module, GDN):
            continue
        for attr, bound in (("beta", module._beta_bound), ("gamma", module._gamma_bound)):
            key = f"{name}.{attr}"
            ped = module._pedestal
            a = lower_bound(getattr(module, attr), bound) ** 2 - ped
            b = lower_bound(gan_params[key], bound) ** 2 - ped
            out[key] = torch.sqrt(torch.lerp(a, b, realism) + ped)
    return out


def hyper_analysis(m: int, n: int) -> nn.Sequential:
    return nn.Sequential(
        conv(m, n, 3, 1), nn.LeakyReLU(0.1), conv(n, n), nn.LeakyReLU(0.1), conv(n, n)
    )


def hyper_synthesis(n: int, m: int) -> nn.Sequential:
    # Only convolutions and ReLU: the decoder runs it in exact integer arithmetic.
    return nn.Sequential(
        deconv(n, n), nn.ReLU(), deconv(n, n * 3 // 2), nn.ReLU(), conv(n * 3 // 2, 2 * m, 3, 1)
    )


class HiFiCLite(nn.Module):
    def __init__(self, config: CodecConfig | None = None):
        super().__init__()
        self.config = config or CodecConfig()
        c = self.config
        self.g_a = Analysis(c.channels, c.latent_channels)
        self.g_s = Synthesis(c.channels, c.latent_channels, c.res_blocks)
        self.g_s_gan: Synthesis | None = None
        self.g_s_anchor: Synthesis | None = None  # see add_gan_anchor
        self.h_a = hyper_analysis(c.latent_channels, c.hyper_channels)
        self.h_s = hyper_synthesis(c.hyper_channels, c.latent_channels)
        self.prior = FactorizedPrior(c.hyper_channels)
        self.gaussian = GaussianConditional()
        self.context = CheckerboardContext(c.latent_channels) if c.context == "checkerboard" else None
        # Higher quality -> larger gain -> finer effective quantisation step.
        init = torch.linspace(-1.0, 1.0, c.levels).view(-1, 1).expand(-1, c.latent_channels)
        self.log_gain = nn.Parameter(init.clone())
        self.log_inv_gain = nn.Parameter(-init.clone())

    # -- gains ---------------------------------------------------------------------------------
    def gains(self, quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gain and inverse gain for continuous quality in [1, levels], shape (B, M, 1, 1)."""
        q = quality.clamp(1, self.config.levels) - 1
        lo = q.floor().long().clamp(max=self.config.levels - 2) if self.config.levels > 1 else q.long()
        t = (q - lo).unsqueeze(1)
        hi = (lo + 1).clamp(max=self.config.levels - 1)
        log_g = self.log_gain[lo] * (1 - t) + self.log_gain[hi] * t
        log_ig = self.log_inv_gain[lo] * (1 - t) + self.log_inv_gain[hi] * t
        return log_g.exp()[..., None, None], log_ig.exp()[..., None, None]

    def add_gan_decoder(self) -> Synthesis:
        """Start the GAN generator from the MSE synthesis (MS-ILLM-style fine-tuning)."""
        self.g_s_gan = copy.deepcopy(self.g_s)
        return self.g_s_gan

    def add_gan_anchor(self, anchor: Synthesis | None = None) -> Synthesis:
        """Anchor the GAN decoder to ``anchor`` (default: a copy of today's MSE synthesis), the
        MSE synthesis it was fine-tuned against: the GAN image becomes MSE + (GAN − anchor), so
        an MSE decoder retrained after the GAN one lifts the GAN image's fidelity too, with the
        same texture. Both share one architecture."""
        if self.g_s_gan is None:
            raise ValueError("only a GAN decoder can be anchored")
        self.g_s_anchor = copy.deepcopy(anchor if anchor is not None else self.g_s)
        return self.g_s_anchor

    def add_context(self) -> CheckerboardContext:
        """Give a model trained without context a checkerboard context model; untrained, it
        leaves every mean and scale as the hyperprior's (its last layer starts at zero)."""
        self.config.context = "checkerboard"
        self.context = CheckerboardContext(self.config.latent_channels)
        return self.context

    def decode(self, y_hat: torch.Tensor, decoder: str = "mse") -> torch.Tensor:
        """The image of a decoder (float; the anchored GAN image when there is an anchor)."""
        x_hat = self.synthesis(decoder)(y_hat)
        if decoder == "gan" and self.g_s_anchor is not None:
            x_hat = x_hat + self.g_s(y_hat) - self.g_s_anchor(y_hat)
        return x_hat

    def synthesis(self, decoder: str) -> Synthesis:
        """One synthesis network: "mse", "gan", or the GAN decoder's "anchor"."""
        if decoder == "gan":
            if self.g_s_gan is None:
                raise ValueError("this model has no GAN decoder")
            return self.g_s_gan
        if decoder == "anchor":
            if self.g_s_anchor is None:
                raise ValueError("this model's GAN decoder has no anchor")
            return self.g_s_anchor
        return self.g_s

    # -- training forward ------------------------------------------------------------------------
    def encode_latents(self, x: torch.Tensor, quality: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything up to the quantised latent, with likelihoods for the rate term."""
        return self.quantize_latents(self.g_a(x), quality)

    def quantize_latents(self, y: torch.Tensor, quality: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`encode_latents` from the analysis transform's output ``y``."""
        gain, inv_gain = self.gains(quality)
        y_g = y * gain
        z = self.h_a(y_g)
        _, z_likelihoods = self.prior(z, training=self.training)
        z_hat = ste_round(z)
        means, scales = self.h_s(z_hat).chunk(2, dim=1)
        if self.context is not None:
            anchors = anchor_mask_like(y_g)
            y_hat_g = ste_round(y_g - means) + means  # what the decoder holds after the first pass
            c_means, c_scales = self.context(y_hat_g * anchors, means, scales)
            means = torch.lerp(c_means, means, anchors)
            scales = torch.lerp(c_scales, scales, anchors)
        y_likelihoods = self.gaussian(y_g, scales, means, noise=self.training)
        y_hat = (ste_round(y_g - means) + means) * inv_gain
        return {"y_hat": y_hat, "y_likelihoods": y_likelihoods, "z_likelihoods": z_likelihoods}

    def forward(self, x: torch.Tensor, quality: torch.Tensor, decoder: str = "mse") -> dict[str, torch.Tensor]:
        out = self.encode_latents(x, quality)
        out["x_hat"] = self.decode(out["y_hat"], decoder)
        return out


def bits_per_pixel(out: dict[str, torch.Tensor], num_pixels: int) -> torch.Tensor:
    """Per-image estimated rate in bits per pixel, shape (B,)."""
    bits = sum(
        (-torch.log2(out[k])).flatten(1).sum(1) for k in ("y_likelihoods", "z_likelihoods")
    )
    return bits / num_pixels
