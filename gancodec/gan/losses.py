"""Adversarial losses, gradient penalties and feature matching, one function each.

Every loss takes discriminator logits and returns a scalar. ``d_loss`` / ``g_loss`` dispatch on
a name so that a model config can choose ``"ns" | "hinge" | "lsgan" | "wgan" | "rsgan" | "ragan"``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("ns", "hinge", "lsgan", "wgan", "rsgan", "ragan")


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Discriminator loss on logits of real and (detached) fake samples."""
    if kind == "ns":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "lsgan":
        return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean()
    if kind == "wgan":
        return fake.mean() - real.mean()
    if kind == "rsgan":  # relativistic standard GAN
        return F.softplus(-(real - fake)).mean()
    if kind == "ragan":  # relativistic average GAN (ESRGAN)
        return F.softplus(-(real - fake.mean())).mean() + F.softplus(fake - real.mean()).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose from {', '.join(LOSSES)}")


def g_loss(kind: str, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
    """Generator loss; relativistic losses also need the real logits (no gradient to D)."""
    if kind == "ns":
        return F.softplus(-fake).mean()
    if kind in ("hinge", "wgan"):
        return -fake.mean()
    if kind == "lsgan":
        return 0.5 * ((fake - 1) ** 2).mean()
    if real is None:
        raise ValueError(f"{kind} needs the real logits")
    real = real.detach()
    if kind == "rsgan":
        return F.softplus(-(fake - real)).mean()
    if kind == "ragan":
        return F.softplus(real - fake.mean()).mean() + F.softplus(-(fake - real.mean())).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose from {', '.join(LOSSES)}")


def r1_penalty(real_logits: torch.Tensor, real_inputs: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): squared gradient norm of D at real data.

    ``real_inputs`` must have ``requires_grad=True`` before the discriminator sees it.
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real_inputs, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, *cond: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): (‖∇D(x̃)‖ − 1)² on random interpolates."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = critic(mixed, *cond)
    out = out[0] if isinstance(out, tuple) else out
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def feature_matching(real_feats: list[torch.Tensor], fake_feats: list[torch.Tensor]) -> torch.Tensor:
    """L1 between discriminator features of real and fake (pix2pixHD); a perceptual term that
    needs no pretrained network."""
    return sum(F.l1_loss(f, r.detach()) for r, f in zip(real_feats, fake_feats)) / len(real_feats)
