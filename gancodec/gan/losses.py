"""Adversarial losses, gradient penalties and feature matching, one function each.

Every loss takes discriminator logits and returns a scalar. ``d_loss`` / ``g_loss`` dispatch on
a name so that a model config can choose ``"ns" | "hinge" | "lsgan" | "wgan" | "rsgan" | "ragan"``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..precision import fp32_region

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


def per_scale(loss, *logits: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    """``loss(*maps)`` over a multi-scale discriminator's logit maps, averaged over scales as in
    pix2pixHD. Each argument is a list with one map per scale, or a tensor (one scale); bind
    the loss's name first, e.g. ``per_scale(partial(d_loss, "ns"), real, fake)``."""
    lists = [x if isinstance(x, (list, tuple)) else [x] for x in logits]
    return torch.stack([loss(*maps) for maps in zip(*lists, strict=True)]).mean()


def r1_penalty(real_logits: torch.Tensor, real_inputs: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): squared gradient norm of D at real data.

    ``real_inputs`` must have ``requires_grad=True`` before the discriminator sees it. The
    gradient has the precision of the forward that made ``real_logits``; :func:`r1_fp32`
    makes that forward in float32 inside a bf16 step.
    """
    (grad,) = torch.autograd.grad(real_logits.float().sum(), real_inputs, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1).mean()


def r1_fp32(disc, real: torch.Tensor, *cond: torch.Tensor) -> torch.Tensor:
    """R1 from a float32 forward of ``disc`` on ``real`` (autocast off): the penalty is a
    squared gradient norm, which bf16's 8-bit mantissa would make noisy."""
    with fp32_region(real.device.type):
        real = real.detach().float().requires_grad_(True)
        out = disc(real, *(c.float() for c in cond))
        logits = out[0] if isinstance(out, tuple) else out
        return r1_penalty(logits, real)


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, *cond: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): (‖∇D(x̃)‖ − 1)² on random interpolates, computed in
    float32 (autocast off) even inside a bf16 training step."""
    with fp32_region(real.device.type):
        alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
        mixed = (alpha * real.float() + (1 - alpha) * fake.detach().float()).requires_grad_(True)
        out = critic(mixed, *(c.float() if c.is_floating_point() else c for c in cond))
        out = out[0] if isinstance(out, tuple) else out
        (grad,) = torch.autograd.grad(out.float().sum(), mixed, create_graph=True)
        return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def feature_matching(real_feats: list[torch.Tensor], fake_feats: list[torch.Tensor]) -> torch.Tensor:
    """L1 between discriminator features of real and fake (pix2pixHD); a perceptual term that
    needs no pretrained network."""
    return sum(F.l1_loss(f, r.detach()) for r, f in zip(real_feats, fake_feats)) / len(real_feats)


# -- BEGAN (Berthelot et al. 2017): the discriminator is an autoencoder ---------------------------
def began_recon_error(recon: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """L(v) = mean |v − D(v)|, computed in float32 (the loss is a small difference of these)."""
    return (recon.float() - images.float()).abs().mean()


def began_losses(real_err: torch.Tensor, fake_err_detached: torch.Tensor, k: float) -> torch.Tensor:
    """The discriminator's loss L(x) − k_t·L(G(z)); the generator's is L(G(z)) itself."""
    return real_err - k * fake_err_detached


def began_update(k: float, real_err: float, fake_err: float, gamma: float = 0.75,
                 lambda_k: float = 0.001) -> tuple[float, float]:
    """The equilibrium step k_{t+1} = clip(k_t + λ_k(γ·L(x) − L(G(z))), 0, 1) and the convergence
    measure M_global = L(x) + |γ·L(x) − L(G(z))|; returns (k_{t+1}, M_global)."""
    balance = gamma * real_err - fake_err
    return min(max(k + lambda_k * balance, 0.0), 1.0), real_err + abs(balance)


# -- per-patch weighted losses (inpainting: LaMa's ``mask_as_fake_target``) -------------------------
MASKED_LOSSES = ("ns", "hinge", "lsgan")


def _as_real(kind: str, x: torch.Tensor) -> torch.Tensor:
    """Element-wise discriminator loss of logits that should say "real"."""
    if kind == "ns":
        return F.softplus(-x)
    if kind == "hinge":
        return F.relu(1 - x)
    if kind == "lsgan":
        return 0.5 * (x - 1) ** 2
    raise ValueError(f"unknown masked GAN loss {kind!r}; choose from {', '.join(MASKED_LOSSES)}")


def _as_fake(kind: str, x: torch.Tensor) -> torch.Tensor:
    if kind == "ns":
        return F.softplus(x)
    if kind == "hinge":
        return F.relu(1 + x)
    if kind == "lsgan":
        return 0.5 * x**2
    raise ValueError(f"unknown masked GAN loss {kind!r}; choose from {', '.join(MASKED_LOSSES)}")


def masked_d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor, fake_mask: torch.Tensor) -> torch.Tensor:
    """Discriminator loss where only the patches of ``fake`` that ``fake_mask`` marks (1) are
    fake; the rest of a fake image is real (an inpainted image is real outside its hole).
    ``fake_mask`` has the logits' shape (e.g. the hole mask max-pooled to their resolution)."""
    per_patch = fake_mask * _as_fake(kind, fake) + (1 - fake_mask) * _as_real(kind, fake)
    return _as_real(kind, real).mean() + per_patch.mean()


def masked_g_loss(kind: str, fake: torch.Tensor, fake_mask: torch.Tensor) -> torch.Tensor:
    """Generator loss averaged over the patches ``fake_mask`` marks (those it can change)."""
    if kind == "ns":
        per_patch = F.softplus(-fake)
    elif kind == "hinge":
        per_patch = -fake
    elif kind == "lsgan":
        per_patch = 0.5 * (fake - 1) ** 2
    else:
        raise ValueError(f"unknown masked GAN loss {kind!r}; choose from {', '.join(MASKED_LOSSES)}")
    return (per_patch * fake_mask).sum() / fake_mask.sum().clamp_min(1.0)
