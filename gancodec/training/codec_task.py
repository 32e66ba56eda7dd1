"""Training recipe of the codec: rate–distortion, then GAN (HiFiC / MS-ILLM), and two stages that
retrain one part of a finished codec with the rest frozen:

``rd``  rate–distortion: loss = λ(q)·255²·MSE + bpp, with a quality q drawn uniformly from the
        continuous range [1, levels] for every image, so the gain units learn every rate and the
        points between levels.
``gan`` the encoder, gains and entropy model are frozen (the bitstream is fixed); a copy of the
        MSE synthesis is fine-tuned as a generator against a conditional PatchGAN that sees the
        quantised latent: loss = k_M(q)·λ(q)·255²·MSE + k_P·perceptual + β·(adversarial +
        feature matching), k_M (``--distortion-weight``) 1 by default, interpolated over q from
        a pair or given per quality level, the perceptual term (HiFiC's LPIPS; here VGG16 features,
        :mod:`gancodec.gan.perceptual`) optional. The MSE synthesis is kept untouched, so one
        file decodes either way. With a blend weight, a realism r ~ U(0, 1) is drawn each step
        and the weight-blended synthesis (what ``--realism r`` decodes) is pulled towards the
        pixel blend of the two decoders, so the dial stays between them. ``train_encoder``
        (``--train-encoder``, the ablation of that choice) trains the encoder, gains and entropy
        model with the generator instead, HiFiC's joint recipe: the bpp term is added and the
        bitstream moves, so the kept MSE synthesis no longer matches it. The EMA averages the
        generator only: ``export --weights raw`` keeps encoder and generator from one step.
``entropy`` the transforms, the gains and z's prior are frozen and only the entropy model of y
        learns — the hyper-synthesis, and the checkerboard context model when the model has one
        — on rate alone (the decoded image barely depends on it): loss = bpp of y. It runs on
        cached latents (:class:`~gancodec.training.data.LatentCache`), so a step costs
        milliseconds, and with ``--context none`` it is the ablation's control arm: the same
        steps spent on the hyperprior alone.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ..gan import losses
from ..gan.discriminators import MultiScaleDiscriminator, PatchDiscriminator
from ..gan.perceptual import PerceptualLoss
from ..models.codec import CodecConfig, HiFiCLite, bits_per_pixel, blended_parameters, lambda_for_quality
from .trainer import Task


def random_quality(n: int, levels: int, device: torch.device) -> torch.Tensor:
    """Continuous qualities uniform in [1, levels], drawn from the CPU generator (which the
    checkpoint saves, so a resumed run draws what the uninterrupted one would have)."""
    return (1 + torch.rand(n) * (levels - 1)).to(device)


class CodecRDTask(Task):
    ema_network = "codec"

    def __init__(self, model: HiFiCLite, lr: float = 1e-4):
        self.model = model
        self.lr = lr

    def networks(self) -> dict[str, nn.Module]:
        return {"codec": self.model}

    def optimizers(self, nets):
        return {"codec": torch.optim.Adam(nets["codec"].parameters(), lr=self.lr)}

    def train_step(self, batch, nets, opts, step):
        q = random_quality(batch.shape[0], self.model.config.levels, batch.device)
        lam = lambda_for_quality(self.model.config.lambdas, q)
        out = nets["codec"](batch, q)
        mse = F.mse_loss(out["x_hat"].float(), batch, reduction="none").flatten(1).mean(1)
        bpp = bits_per_pixel(out, batch.shape[-2] * batch.shape[-1])
        loss = (lam * 255**2 * mse + bpp).mean()
        opts["codec"].zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(nets["codec"].parameters(), 1.0)
        opts["codec"].step()
        psnr = (10 * torch.log10(1 / mse.detach().clamp_min(1e-10))).mean()
        return {"loss": loss.item(), "bpp": bpp.mean().item(), "psnr": psnr.item()}

    @torch.no_grad()
    def sample(self, batch, nets):
        codec = nets["codec"]
        x = batch[:2]
        rows = [x]
        for q in (1.0, float(codec.config.levels)):
            rows.append(codec(x, torch.full((x.shape[0],), q, device=x.device))["x_hat"])
        return torch.cat(rows)


class CodecEntropyTask(Task):
    """Stage ``entropy``; its batches are analysis outputs y (B, M, h, w), not images."""

    ema_network = "codec"

    def __init__(self, model: HiFiCLite, lr: float = 1e-4):
        model.requires_grad_(False)
        model.h_s.requires_grad_(True)
        if model.context is not None:
            model.context.requires_grad_(True)
        self.model, self.lr = model, lr

    def networks(self) -> dict[str, nn.Module]:
        return {"codec": self.model}

    def optimizers(self, nets):
        params = [p for p in nets["codec"].parameters() if p.requires_grad]
        return {"codec": torch.optim.Adam(params, lr=self.lr)}

    def train_step(self, batch, nets, opts, step):
        codec = nets["codec"]
        q = random_quality(batch.shape[0], codec.config.levels, batch.device)
        out = codec.quantize_latents(batch, q)
        pixels = batch.shape[-2] * batch.shape[-1] * 256  # the latent is 1/16 of the image per side
        y_bpp = (-torch.log2(out["y_likelihoods"])).flatten(1).sum(1) / pixels
        z_bpp = (-torch.log2(out["z_likelihoods"])).flatten(1).sum(1) / pixels
        loss = y_bpp.mean()
        opts["codec"].zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in codec.parameters() if p.requires_grad], 1.0)
        opts["codec"].step()
        return {"loss": loss.item(), "y_bpp": loss.item(), "bpp": (y_bpp + z_bpp).mean().item()}


class CodecSynthesisTask(Task):
    """Stage ``synthesis``: the MSE decoder alone, on the fixed quantised latent."""

    ema_network = "synthesis"

    def __init__(self, model: HiFiCLite, lr: float = 1e-4):
        model.requires_grad_(False)
        model.g_s.requires_grad_(True)
        self.model, self.lr = model, lr

    def networks(self) -> dict[str, nn.Module]:
        # "codec" is checkpointed whole; "synthesis" is its g_s, the one network that learns.
        return {"codec": self.model, "synthesis": self.model.g_s}

    def optimizers(self, nets):
        return {"synthesis": torch.optim.Adam(nets["synthesis"].parameters(), lr=self.lr)}

    def train_step(self, batch, nets, opts, step):
        codec, synthesis = nets["codec"], nets["synthesis"]
        q = random_quality(batch.shape[0], codec.config.levels, batch.device)
        lam = lambda_for_quality(codec.config.lambdas, q)
        with torch.no_grad():
            y_hat = codec.encode_latents(batch, q)["y_hat"]  # rounded as the encoder rounds it
        x_hat = synthesis(y_hat).float()  # the loss in fp32 under a bf16 autocast step
        mse = F.mse_loss(x_hat, batch, reduction="none").flatten(1).mean(1)
        loss = (lam * 255**2 * mse).mean()
        opts["synthesis"].zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(synthesis.parameters(), 1.0)
        opts["synthesis"].step()
        psnr = (10 * torch.log10(1 / mse.detach().clamp_min(1e-10))).mean()
        return {"loss": loss.item(), "psnr": psnr.item()}

    @torch.no_grad()
    def sample(self, batch, nets):
        codec = nets["codec"]
        x = batch[:2]
        rows = [x]
        for q in (1.0, float(codec.config.levels)):
            y_hat = codec.encode_latents(x, torch.full((x.shape[0],), q, device=x.device))["y_hat"]
            rows.append(nets["synthesis"](y_hat))
        return torch.cat(rows)


class CodecGANTask(Task):
    ema_network = "generator"
    ddp_networks = ("generator", "disc")

    def __init__(
        self, model: HiFiCLite, lr: float = 1e-4, beta: float = 0.3, fm_weight: float = 10.0,
        gan_loss: str = "ns", r1_weight: float = 0.0, disc_width: int = 48,
        perceptual: PerceptualLoss | None = None, perceptual_weight: float = 0.0, disc_scales: int = 1,
        disc_lr: float | None = None, blend_weight: float = 0.0,
        distortion_weight: float | tuple[float, ...] = 1.0, clip_grad: float | None = None,
        train_encoder: bool = False,
    ):
        if model.g_s_gan is None:
            model.add_gan_decoder()
        # The bitstream is fixed during this stage: only the generator learns (MS-ILLM), unless
        # train_encoder: then everything but the MSE synthesis learns, with a rate term (HiFiC).
        model.requires_grad_(False)
        model.g_s_gan.requires_grad_(True)
        self.train_encoder = train_encoder
        if train_encoder:
            for part in self._encoder_parts(model):
                part.requires_grad_(True)
        self.model = model
        patch = {"cond_channels": model.config.latent_channels, "width": disc_width, "layers": 3, "last_stride": 2}
        # One scale is v0.8's discriminator (checkpoints of it resume); more is pix2pixHD's.
        self.disc = (PatchDiscriminator(**patch) if disc_scales == 1
                     else MultiScaleDiscriminator(disc_scales, **patch))
        self.lr, self.beta, self.fm_weight = lr, beta, fm_weight
        # TTUR (Heusel et al. 2017): a faster discriminator. At the generator's rate the codec's
        # spectral-norm D sat at chance (ln 4) for its first ~600 steps, a third of a CPU session.
        self.disc_lr = lr if disc_lr is None else disc_lr
        self.gan_loss, self.r1_weight = gan_loss, r1_weight
        # Not in networks(): frozen, never checkpointed; moved to the batch's device on first use.
        self.perceptual = perceptual if perceptual_weight > 0 else None
        self.perceptual_weight = perceptual_weight
        # ESRGAN's weight interpolation is only a dial if the midpoints decode sensibly; long GAN
        # training can leave them outside both decoders (session 13's candidate: 51 % inside).
        self.blend_weight = blend_weight
        # HiFiC's k_M: the encoder is frozen, so this scales only how hard the GAN decoder is held
        # to the pixels (1: the rate-distortion stage's λ(q)·MSE); lower trades PSNR for texture.
        # A pair (lowest, highest quality) is interpolated log-linearly over the qualities: one
        # weight for all let qualities 3-6 over-texture when it was low enough for 1-2. One value
        # per quality level sets each on its own (texture and PSNR bind at different levels).
        self.distortion_weights = distortion_weights_per_level(distortion_weight, model.config.levels)
        # Adam with beta1 = 0.5 turns one gradient far above its running scale into a step of
        # ~16 lr on every weight at once (m / sqrt(v) = 0.5 / sqrt(0.001)); session 17's runs
        # lost 13 dB of training PSNR in ten such steps. A bound on the generator's gradient norm
        # keeps that step near lr. None: no bound (the norm is still measured and logged).
        if clip_grad is not None and clip_grad <= 0:
            raise ValueError(f"clip_grad must be positive, got {clip_grad}")
        self.clip_grad = clip_grad

    def networks(self):
        # "codec" is checkpointed whole; "generator" is its g_s_gan, the network that learns (with
        # train_encoder, beside the encoder and entropy model, which the "encoder" optimiser steps).
        return {"codec": self.model, "generator": self.model.g_s_gan, "disc": self.disc}

    @staticmethod
    def _encoder_parts(model: HiFiCLite) -> list[nn.Module | nn.Parameter]:
        """What decides the bitstream: analysis, hyper-analysis and -synthesis, z's prior, the
        context model and the gains."""
        parts = [model.g_a, model.h_a, model.h_s, model.prior, model.log_gain, model.log_inv_gain]
        return parts + ([model.context] if model.context is not None else [])

    def optimizers(self, nets):
        opts = {
            "generator": torch.optim.Adam(nets["generator"].parameters(), lr=self.lr, betas=(0.5, 0.999)),
            "disc": torch.optim.Adam(nets["disc"].parameters(), lr=self.disc_lr, betas=(0.5, 0.999)),
        }
        if self.train_encoder:
            params = [p for part in self._encoder_parts(nets["codec"])
                      for p in ([part] if isinstance(part, nn.Parameter) else part.parameters())]
            opts["encoder"] = torch.optim.Adam(params, lr=self.lr)  # the rd stage's Adam
        return opts

    def train_step(self, batch, nets, opts, step):
        codec, generator, disc = nets["codec"], nets["generator"], nets["disc"]
        n = batch.shape[0]
        q = random_quality(n, codec.config.levels, batch.device)
        lam = lambda_for_quality(codec.config.lambdas, q)
        if self.train_encoder:
            latents = codec.encode_latents(batch, q)
            y_hat = latents["y_hat"]
            rate = bits_per_pixel(latents, batch.shape[-2] * batch.shape[-1]).float()
        else:
            with torch.no_grad():
                y_hat = codec.encode_latents(batch, q)["y_hat"]
        fake = generator(y_hat).float()  # losses in fp32 under a bf16 autocast step
        y_cond = y_hat.detach()  # the discriminator's condition (HiFiC: no gradient to the encoder)

        # Discriminator: real and fake in one forward so DDP sees one pass per backward.
        real_in = batch.detach().requires_grad_(self.r1_weight > 0)
        logits, _ = disc(torch.cat([real_in, fake.detach()]), torch.cat([y_cond, y_cond]))
        real_logits, fake_logits = _split(logits, n)
        d_loss = losses.per_scale(partial(losses.d_loss, self.gan_loss), real_logits, fake_logits)
        if self.r1_weight > 0:
            flat = torch.cat([r.flatten(1) for r in real_logits], 1)
            d_loss = d_loss + self.r1_weight * 0.5 * losses.r1_penalty(flat, real_in)
        opts["disc"].zero_grad(set_to_none=True)
        d_loss.backward()
        opts["disc"].step()

        # Generator.
        logits, feats = disc(torch.cat([batch, fake]), torch.cat([y_cond, y_cond]))
        real_logits, fake_logits = _split(logits, n)
        feats = [f.float() for f in feats]
        g_adv = losses.per_scale(partial(losses.g_loss, self.gan_loss), fake_logits, real_logits)
        fm = losses.feature_matching([f[:n] for f in feats], [f[n:] for f in feats])
        mse = F.mse_loss(fake, batch, reduction="none").flatten(1).mean(1)
        k_m = lambda_for_quality(self.distortion_weights, q)
        g_loss = (k_m * lam * 255**2 * mse).mean() + self.beta * (g_adv + self.fm_weight * fm)
        metrics = {}
        if self.train_encoder:
            g_loss = g_loss + rate.mean()
            metrics["bpp"] = rate.mean().item()
        if self.perceptual is not None:
            if self.perceptual.features.mean.device != batch.device:  # once: the trainer picks the device
                self.perceptual.to(batch.device)
            perc = self.perceptual(fake, batch).mean()
            g_loss = g_loss + self.perceptual_weight * perc
            metrics["perceptual"] = perc.item()
        if self.blend_weight > 0:
            blend = self._blend_error(codec, fake, y_cond)
            g_loss = g_loss + self.blend_weight * (lam * 255**2 * blend).mean()
            metrics["blend_psnr"] = (10 * torch.log10(1 / blend.detach().clamp_min(1e-10))).mean().item()
        opts["generator"].zero_grad(set_to_none=True)
        if self.train_encoder:
            opts["encoder"].zero_grad(set_to_none=True)
        g_loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(generator.parameters(), self.clip_grad or float("inf"))
        opts["generator"].step()
        if self.train_encoder:
            opts["encoder"].step()
        psnr = (10 * torch.log10(1 / mse.detach().clamp_min(1e-10))).mean()
        return {
            "g_loss": g_loss.item(), "d_loss": d_loss.item(), "g_adv": g_adv.item(),
            "fm": fm.item(), **metrics, "psnr": psnr.item(), "g_grad_norm": grad_norm.item(),
        }

    @staticmethod
    def _blend_error(codec: HiFiCLite, fake: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
        """Per image, the MSE between the synthesis blended at a random realism r (weights, as
        the decoder does it) and the pixel blend of the MSE and GAN decoders' outputs; its
        gradient reaches the GAN decoder through the blended weights. r comes from the CPU
        generator, which the checkpoint saves."""
        r = float(torch.rand(()))
        with torch.no_grad():
            target = torch.lerp(codec.g_s(y_hat).float(), fake.detach(), r)
        params = blended_parameters(codec.g_s, codec.g_s_gan, r)
        mid = torch.func.functional_call(codec.g_s_gan, params, (y_hat,)).float()
        return F.mse_loss(mid, target, reduction="none").flatten(1).mean(1)

    @torch.no_grad()
    def sample(self, batch, nets):
        codec = nets["codec"]
        x = batch[:2]
        q = torch.full((x.shape[0],), 2.0, device=x.device)
        y_hat = codec.encode_latents(x, q)["y_hat"]
        return torch.cat([x, codec.g_s(y_hat), nets["generator"](y_hat)])


def distortion_weights_per_level(weight: float | tuple[float, ...], levels: int) -> list[float]:
    """k_M at each quality level from one value (all levels), a pair (lowest and highest level,
    log-linear between) or one value per level."""
    values = (float(weight),) if isinstance(weight, (int, float)) else tuple(float(v) for v in weight)
    if not values or min(values) <= 0:
        raise ValueError(f"distortion weights must be positive, got {weight}")
    if len(values) == 1:
        return [values[0]] * levels
    if len(values) == levels:
        return list(values)
    if len(values) == 2:
        lo, hi = values
        return [lo * (hi / lo) ** (i / (levels - 1)) for i in range(levels)]
    raise ValueError(f"distortion weights: one, two or {levels} values (one per quality level), got {len(values)}")


def _split(logits: torch.Tensor | list[torch.Tensor], n: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(real, fake) fp32 logit maps per scale of a batch whose first n images are the real ones."""
    maps = logits if isinstance(logits, list) else [logits]
    return [m[:n].float() for m in maps], [m[n:].float() for m in maps]


def build_codec(config: CodecConfig | None = None) -> HiFiCLite:
    return HiFiCLite(config or CodecConfig())
