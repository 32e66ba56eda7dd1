"""Training recipes of restoration and super-resolution, on the shared trainer and GAN core.

Both follow ESRGAN's two steps: a *fidelity* stage (L1 only, the PSNR-oriented model), then a
*gan* stage started from it (L1 + β·(adversarial + feature matching)) against a spectral-norm
PatchGAN conditioned on the input (pix2pix): restoration sees the degraded image, SR the
bilinear upsampling of the low-resolution input. Pairs are made on the fly from clean crops.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..gan import losses
from ..gan.discriminators import PatchDiscriminator
from ..models.rrdb import RRDBNet
from ..models.unet import TASKS, RestorationUNet
from .degradations import bicubic_down, degrade
from .trainer import Task


@dataclass
class EnhanceConfig:
    kind: str  # "restore" or "sr"
    scale: int = 1  # 2 or 4 for sr
    width: int = 32
    blocks: int = 2  # RRDB blocks (sr) or residual blocks per level (restore)
    levels: int = 3  # U-Net levels (restore)
    growth: int = 16  # RRDB dense growth (sr)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EnhanceConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def build(self) -> nn.Module:
        if self.kind == "sr":
            return RRDBNet(scale=self.scale, nf=self.width, blocks=self.blocks, gc=self.growth)
        if self.kind == "restore":
            return RestorationUNet(width=self.width, levels=self.levels, blocks=self.blocks)
        raise ValueError(f"unknown kind {self.kind!r}")


def _to_uint8(batch: torch.Tensor) -> np.ndarray:
    return (batch.detach().cpu().clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)


def _to_float(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255)


class EnhanceTask(Task):
    ema_network = "generator"

    def __init__(
        self, config: EnhanceConfig, generator: nn.Module | None = None, stage: str = "fidelity",
        lr: float = 2e-4, beta: float = 0.05, fm_weight: float = 1.0, gan_loss: str | None = None,
        seed: int = 0, task_mix: list[float] | None = None,
    ):
        self.config = config
        self.stage = stage
        self.generator = generator or config.build()
        self.disc = PatchDiscriminator(cond_channels=3, width=32, layers=3) if stage == "gan" else None
        self.lr, self.beta, self.fm_weight = lr, beta, fm_weight
        self.gan_loss = gan_loss or ("ragan" if config.kind == "sr" else "ns")
        self.rng = np.random.default_rng(seed)
        # Relative frequency of each restoration task in a batch (a specialist run weights JPEG up).
        mix = np.asarray(task_mix if task_mix is not None else [1.0] * len(TASKS), dtype=np.float64)
        if mix.shape != (len(TASKS),) or (mix < 0).any() or mix.sum() <= 0:
            raise ValueError(f"task mix needs {len(TASKS)} non-negative weights ({', '.join(TASKS)}), not all zero")
        self.task_mix = mix / mix.sum()

    def networks(self):
        nets = {"generator": self.generator}
        if self.disc is not None:
            nets["disc"] = self.disc
        return nets

    def optimizers(self, nets):
        opts = {"generator": torch.optim.Adam(nets["generator"].parameters(), lr=self.lr, betas=(0.9, 0.99))}
        if "disc" in nets:
            opts["disc"] = torch.optim.Adam(nets["disc"].parameters(), lr=self.lr, betas=(0.9, 0.99))
        return opts

    # -- pairs -----------------------------------------------------------------------------------
    def make_pair(self, clean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(network input, task channels or None, target) from a batch of clean crops."""
        images = _to_uint8(clean)
        if self.config.kind == "sr":
            low = _to_float([bicubic_down(im, self.config.scale) for im in images])
            return low.to(clean.device), None, clean
        tasks = self.rng.choice(len(TASKS), size=len(images), p=self.task_mix)
        degraded = _to_float([degrade(im, TASKS[t], self.rng) for im, t in zip(images, tasks)])
        onehot = torch.zeros(len(images), len(TASKS), *clean.shape[-2:], device=clean.device)
        onehot[torch.arange(len(images)), torch.from_numpy(tasks)] = 1
        return degraded.to(clean.device), onehot, clean

    def _generate(self, gen: nn.Module, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return gen(x) if cond is None else gen(x, cond)

    def _condition(self, x: torch.Tensor, size) -> torch.Tensor:
        return x if x.shape[-2:] == size else F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def train_step(self, batch, nets, opts, step):
        x, cond, target = self.make_pair(batch)
        gen = nets["generator"]
        fake = self._generate(gen, x, cond).float()  # losses in fp32 under a bf16 autocast step
        l1 = F.l1_loss(fake, target)
        scalars = {"l1": l1.item()}
        if self.stage == "fidelity":
            opts["generator"].zero_grad(set_to_none=True)
            l1.backward()
            opts["generator"].step()
        else:
            disc, n = nets["disc"], batch.shape[0]
            c = self._condition(x, target.shape[-2:])
            logits, _ = disc(torch.cat([target, fake.detach()]), torch.cat([c, c]))
            logits = logits.float()
            d_loss = losses.d_loss(self.gan_loss, logits[:n], logits[n:])
            opts["disc"].zero_grad(set_to_none=True)
            d_loss.backward()
            opts["disc"].step()
            logits, feats = disc(torch.cat([target, fake]), torch.cat([c, c]))
            logits, feats = logits.float(), [f.float() for f in feats]
            g_adv = losses.g_loss(self.gan_loss, logits[n:], logits[:n])
            fm = losses.feature_matching([f[:n] for f in feats], [f[n:] for f in feats])
            g_loss = l1 + self.beta * (g_adv + self.fm_weight * fm)
            opts["generator"].zero_grad(set_to_none=True)
            g_loss.backward()
            opts["generator"].step()
            scalars.update(d_loss=d_loss.item(), g_adv=g_adv.item(), fm=fm.item())
        with torch.no_grad():
            mse = F.mse_loss(fake.clamp(0, 1), target).clamp_min(1e-10)
        scalars["psnr"] = (10 * torch.log10(1 / mse)).item()
        return scalars

    @torch.no_grad()
    def sample(self, batch, nets):
        x, cond, target = self.make_pair(batch[:2])
        out = self._generate(nets["generator"], x, cond).clamp(0, 1)
        return torch.cat([self._condition(x, target.shape[-2:]), out, target])
