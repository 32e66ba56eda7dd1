"""Training recipe of inpainting, on the shared trainer and GAN core (LaMa's, without its
pretrained perceptual networks).

Two stages, as for restoration:

* ``fidelity`` — L1 over the hole plus a smaller weight on the known pixels of the raw
  prediction: the PSNR-oriented model, blurry in big holes.
* ``gan`` — started from a fidelity run: the same L1 terms (the hole's at a lower weight) plus
  β·non-saturating adversarial loss and feature matching against a spectral-norm PatchGAN that
  also sees the mask. Only the patches that touch the hole count as fake (LaMa's
  ``mask_as_fake_target``: the mask max-pooled to the logits' resolution); the rest of an
  inpainted image is real, so the discriminator learns to spot the hole, seams included.
  R1 on real images, lazily every ``r1_every`` steps (StyleGAN2) and in float32.

Masks come from the task's own seeded generator (:class:`gancodec.inpaint_masks.MaskPool`),
drawn on the CPU and moved to the batch's device; the data stream only yields clean crops.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..gan import losses
from ..gan.discriminators import PatchDiscriminator
from ..inpaint_masks import MaskPool, random_mask
from ..models.inpaint import InpaintConfig
from .trainer import Task

STAGES = ("fidelity", "gan")


def masked_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the pixels ``weight`` (N, 1, H, W) selects."""
    return ((pred - target).abs() * weight).sum() / (weight.sum() * pred.shape[1]).clamp_min(1.0)


class InpaintTask(Task):
    ema_network = "generator"

    def __init__(
        self, config: InpaintConfig, generator: nn.Module | None = None, stage: str = "fidelity",
        lr: float = 1e-3, disc_lr: float = 1e-4, beta: float = 0.1, fm_weight: float = 1.0,
        hole_weight: float | None = None, known_weight: float = 0.1, r1_weight: float = 0.001,
        r1_every: int = 4, gan_loss: str = "ns", disc_width: int = 64, disc_layers: int = 4,
        seed: int = 0, pool_size: int = 256,
    ):
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {', '.join(STAGES)}")
        if gan_loss not in losses.MASKED_LOSSES:
            raise ValueError(f"gan loss must be one of {', '.join(losses.MASKED_LOSSES)}")
        self.config, self.stage = config, stage
        self.generator = generator or config.build()
        self.disc = (PatchDiscriminator(cond_channels=1, width=disc_width, layers=disc_layers)
                     if stage == "gan" else None)
        self.lr, self.disc_lr = lr, disc_lr
        self.beta, self.fm_weight, self.gan_loss = beta, fm_weight, gan_loss
        # Without LaMa's perceptual loss the GAN stage keeps some hole L1 as its anchor.
        self.hole_weight = hole_weight if hole_weight is not None else (1.0 if stage == "fidelity" else 0.25)
        self.known_weight = known_weight
        self.r1_weight, self.r1_every = r1_weight, max(1, r1_every)
        self.rng = np.random.default_rng(seed)
        self.pool_size = pool_size
        self._pool: MaskPool | None = None
        self._last_r1 = 0.0

    def networks(self):
        nets = {"generator": self.generator}
        if self.disc is not None:
            nets["disc"] = self.disc
        return nets

    def optimizers(self, nets):
        # LaMa: Adam 1e-3 for the generator, 1e-4 for the discriminator
        opts = {"generator": torch.optim.Adam(nets["generator"].parameters(), lr=self.lr, betas=(0.9, 0.99))}
        if "disc" in nets:
            opts["disc"] = torch.optim.Adam(nets["disc"].parameters(), lr=self.disc_lr, betas=(0.9, 0.99))
        return opts

    # -- masks -----------------------------------------------------------------------------------
    def masks(self, n: int, h: int, w: int, rng: np.random.Generator | None = None) -> torch.Tensor:
        """(n, 1, h, w) float masks (1 = hole), made on the CPU."""
        if rng is None and h == w:
            if self._pool is None or self._pool.size != h:
                self._pool = MaskPool(h, self.rng, count=self.pool_size)
            arr = self._pool.draw(n)
        else:
            rng = rng if rng is not None else self.rng
            arr = np.stack([random_mask(h, w, rng) for _ in range(n)])
        return torch.from_numpy(arr[:, None].astype(np.float32))

    def _inputs(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        target = batch.float()
        mask = self.masks(len(batch), *batch.shape[-2:]).to(batch.device, non_blocking=True)
        return target, mask

    # -- one step --------------------------------------------------------------------------------
    def train_step(self, batch, nets, opts, step):
        target, mask = self._inputs(batch)
        gen = nets["generator"]
        pred = gen(target, mask, composite=False).float()  # losses in float32 (autocast-safe)
        filled = mask * pred + (1 - mask) * target
        l1_hole = masked_l1(pred, target, mask)
        l1_known = masked_l1(pred, target, 1 - mask)
        l1 = self.hole_weight * l1_hole + self.known_weight * l1_known
        scalars = {"l1_hole": l1_hole.item(), "l1_known": l1_known.item()}
        if self.stage == "fidelity":
            opts["generator"].zero_grad(set_to_none=True)
            l1.backward()
            opts["generator"].step()
        else:
            scalars.update(self._gan_step(target, mask, filled, l1, nets, opts, step))
        with torch.no_grad():
            err = ((filled.detach().clamp(0, 1) - target) ** 2 * mask).sum() / (mask.sum() * 3).clamp_min(1.0)
        scalars["psnr_hole"] = (10 * torch.log10(1 / err.clamp_min(1e-10))).item()
        return scalars

    def _disc(self, disc, images: torch.Tensor, mask: torch.Tensor):
        logits, feats = disc(images, torch.cat([mask, mask]))
        return logits.float(), [f.float() for f in feats]

    def _gan_step(self, target, mask, filled, l1, nets, opts, step) -> dict[str, float]:
        disc, n = nets["disc"], target.shape[0]
        # -- discriminator: real images real, inpainted images fake only where the hole is
        r1_now = self.r1_weight > 0 and step % self.r1_every == 0
        real_in = target.detach().requires_grad_(r1_now)
        if r1_now:
            # gradient penalty in float32: the whole discriminator pass leaves autocast
            with torch.autocast(device_type=target.device.type, enabled=False):
                logits, _ = self._disc(disc, torch.cat([real_in, filled.detach()]), mask)
        else:
            logits, _ = self._disc(disc, torch.cat([real_in, filled.detach()]), mask)
        fake_mask = F.adaptive_max_pool2d(mask, logits.shape[-2:])  # a patch touching the hole is fake
        d_loss = losses.masked_d_loss(self.gan_loss, logits[:n], logits[n:], fake_mask)
        scalars = {"d_loss": d_loss.item()}
        if r1_now:
            r1 = losses.r1_penalty(logits[:n], real_in)
            d_loss = d_loss + self.r1_weight * self.r1_every * r1
            self._last_r1 = r1.item()
        scalars["r1"] = self._last_r1  # every step, so the CSV log keeps one set of columns
        opts["disc"].zero_grad(set_to_none=True)
        d_loss.backward()
        opts["disc"].step()
        # -- generator
        logits, feats = self._disc(disc, torch.cat([target, filled]), mask)
        g_adv = losses.masked_g_loss(self.gan_loss, logits[n:], fake_mask)
        fm = losses.feature_matching([f[:n] for f in feats], [f[n:] for f in feats])
        g_loss = l1 + self.beta * g_adv + self.fm_weight * fm
        opts["generator"].zero_grad(set_to_none=True)
        g_loss.backward()
        opts["generator"].step()
        scalars.update(g_adv=g_adv.item(), fm=fm.item())
        return scalars

    @torch.no_grad()
    def sample(self, batch, nets):
        """Rows: image with the hole (grey), inpainted, original; the same masks at every step."""
        target = batch[:2].float()
        mask = self.masks(len(target), *target.shape[-2:], rng=np.random.default_rng(0)).to(target.device)
        filled = nets["generator"](target, mask).float().clamp(0, 1)
        holed = target * (1 - mask) + 0.5 * mask
        return torch.cat([holed, filled, target])
