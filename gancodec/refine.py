"""Encoder-side latent refinement: spend encoding time to find, for one image, a latent that
costs fewer bits for the same or better pixels. The decoder and the file format do not change.

The analysis transform is amortised: one forward pass predicts a good latent for any image, not
the best one for this image. Gradient descent on the latent itself, through the frozen synthesis
and entropy model, closes part of that gap (Campos et al. 2019, "Content adaptive optimization
for neural image compression"; Yang et al. 2020, "Improving inference for neural image
compression"). What it gains here, and what it costs, is in BENCHMARKS.md §1.

* The loss is the rate–distortion training loss at the file's quality: the bits of y under the
  Gaussian the decoder will code it with, plus λ(q)·255²·(sum of squared errors)/3 of the MSE
  synthesis.
* Rounding has no gradient. Stochastic Gumbel annealing (SGA, Yang et al.) replaces it with a
  random soft choice between the two integers around each value, sharper as a temperature falls
  from ``TEMPERATURE[0]`` to ``TEMPERATURE[1]``. Straight-through rounding or uniform noise drive
  the real (rounded) cost up at any step size we tried.
* The means and scales come from the exact integer hyper-synthesis and context model, what the
  decoder computes, remade from the current latent every ``PARAMS_EVERY`` steps and held fixed in
  between (they are integer functions: no gradient). z's rate is left out of the loss (a few
  per cent of the file).
* The latent is refined in tiles of ``TILE`` latent units (768 px; a Kodak image is one tile)
  with ``MARGIN`` units of fixed context around each, so memory is bounded by the tile.

The refined latent is quantised and coded like any other: the file decodes bit-exactly with every
decoder of the model, and is measured on its real size and decoded pixels. The Gumbel noise comes
from a generator seeded per tile, so one machine writes the same bytes every time; another
machine's float rounding in the gradient may pick a different (equally valid) latent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .entropy.gaussian import LIKELIHOOD_BOUND, SCALE_MIN, bin_probability
from .models.codec import lambda_for_quality
from .tiling import progress_bar, uint8_source

if TYPE_CHECKING:
    from .codec import Codec

LEARNING_RATE = 0.005  # Adam, on the gain-scaled latent (quantisation step 1)
TEMPERATURE = (0.5, 0.05)  # SGA's temperature, annealed geometrically over the steps
PARAMS_EVERY = 10  # steps between two recomputations of the exact means and scales
TILE = 48  # latent units per tile side (768 px)
# Latent units of fixed context around a tile. The synthesis's receptive field reaches 7 (1 + 2
# per residual block), most of its weight within a few; a wider window costs memory (1.65 GB at 4).
MARGIN = 4
MAX_STEPS = 10_000
SEED = 0x5EED
_EPS = 1e-5


def sga_round(v: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """A soft, random rounding of ``v``: floor(v) + p, where p in (0, 1) is a Gumbel-softmax
    choice between floor and ceil whose logits, −atanh(distance)/temperature, favour the
    nearer integer more strongly as the temperature falls (SGA, Yang et al. 2020)."""
    floor = torch.floor(v)
    frac = v - floor
    logit_floor = -torch.atanh(frac.clamp(_EPS, 1 - _EPS)) / temperature
    logit_ceil = -torch.atanh((1 - frac).clamp(_EPS, 1 - _EPS)) / temperature
    u = torch.rand((2, *v.shape), generator=generator).clamp_(1e-10, 1 - 1e-7)
    gumbel = -torch.log(-torch.log(u))
    p_ceil = torch.softmax(torch.stack([logit_floor + gumbel[0], logit_ceil + gumbel[1]]), dim=0)[1]
    return floor + p_ceil


def gaussian_bits(values: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Bits of the (soft) integers ``values`` (latent minus its mean) under N(0, scales) binned
    to unit intervals, as the entropy model's training likelihood computes them."""
    p = bin_probability(values.abs(), scales.clamp_min(SCALE_MIN))
    return -torch.log2(p.clamp_min(LIKELIHOOD_BOUND)).sum()


def _tiles(height: int, width: int) -> list[tuple[int, int, int, int]]:
    return [(a0, min(height, a0 + TILE), b0, min(width, b0 + TILE))
            for a0 in range(0, height, TILE) for b0 in range(0, width, TILE)]


def refine_latent(
    codec: Codec, rgb: np.ndarray, y: torch.Tensor, quality_milli: int, steps: int, *,
    learning_rate: float = LEARNING_RATE, progress: bool = False,
) -> torch.Tensor:
    """The latent ``y`` (float32, (1, M, h, w), from :meth:`Codec.analyse` of the uint8 image
    ``rgb``) refined by ``steps`` SGA steps for quality ``quality_milli``/1000. Returns a new
    tensor; ``y`` is not changed."""
    if steps <= 0:
        return y
    h, w = rgb.shape[:2]
    hy, wy = y.shape[-2:]
    pixels = uint8_source(rgb)
    gain, inv_gain = codec._gains(quality_milli)
    inv_gain32 = inv_gain.float()
    lam = float(lambda_for_quality(codec.config.lambdas, torch.tensor([quality_milli / 1000.0], dtype=torch.float64)))
    distortion_weight = lam * 255**2 / 3  # per squared error summed over channels: bpp + λ·255²·MSE, times pixels
    y = y.clone()
    synthesis = codec.net.g_s
    tiles = _tiles(hy, wy)
    t0, t1 = TEMPERATURE
    with torch.enable_grad(), progress_bar(len(tiles) * steps, progress, "refinement", unit="step") as bar:
        for k, (a0, a1, b0, b1) in enumerate(tiles):
            e0, e1 = max(0, a0 - MARGIN), min(hy, a1 + MARGIN)
            f0, f1 = max(0, b0 - MARGIN), min(wy, b1 + MARGIN)
            core = (slice(None), slice(None), slice(a0 - e0, a1 - e0), slice(b0 - f0, b1 - f0))
            x = pixels(16 * e0, 16 * e1, 16 * f0, 16 * f1)
            # squared errors count inside the image only, not in the padding to a multiple of 64
            inside = torch.zeros(1, 1, *x.shape[-2:])
            inside[..., : max(0, h - 16 * e0), : max(0, w - 16 * f0)] = 1
            core_pixels = max(1, min(h, 16 * a1) - 16 * a0) * max(1, min(w, 16 * b1) - 16 * b0)
            latent = (y[..., a0:a1, b0:b1].double() * gain).float().requires_grad_(True)
            optimiser = torch.optim.Adam([latent], lr=learning_rate)
            generator = torch.Generator().manual_seed(SEED + k)
            for step in range(steps):
                if step % PARAMS_EVERY == 0:
                    y[..., a0:a1, b0:b1] = (latent.detach().double() / gain).float()
                    means64, indices = codec.coding_params(y, gain, e0, e1, f0, f1)
                    means = means64.float()
                    scales = codec.y_scales[indices].float()
                    # the context around the tile, as the decoder will hold it
                    fixed = (torch.round((y[..., e0:e1, f0:f1].double() * gain) - means64) + means64).float()
                temperature = t0 * (t1 / t0) ** (step / max(1, steps - 1))
                soft = sga_round(latent - means[core], temperature, generator)
                window = fixed.clone()
                window[core] = soft + means[core]
                x_hat = synthesis(window * inv_gain32)
                sse = ((x_hat - x) ** 2 * inside).sum()
                loss = (gaussian_bits(soft, scales[core]) + distortion_weight * sse) / core_pixels
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                bar.update()
            if not torch.isfinite(latent).all():
                raise ArithmeticError("latent refinement diverged")  # cannot happen with finite inputs; guard anyway
            y[..., a0:a1, b0:b1] = (latent.detach().double() / gain).float()
    return y


def check_steps(steps: int) -> int:
    """``steps`` if it is a usable number of refinement steps, else ValueError."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 0 <= steps <= MAX_STEPS:
        raise ValueError(f"refinement steps must be an integer in 0..{MAX_STEPS}, got {steps!r}")
    return int(steps)

