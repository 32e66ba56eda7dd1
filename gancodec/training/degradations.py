"""Synthetic degradations that make (degraded, clean) training pairs on the fly.

Restoration learns to undo what real pipelines do to photos: JPEG through Pillow (the real
codec, not a simulation), Gaussian and signal-dependent sensor-like noise, mild blur and
down-up resizing, alone or chained (``auto``). Super-resolution uses bicubic downscaling,
the benchmark convention. All randomness comes from the ``numpy`` generator passed in.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(buf).convert("RGB"))


def gaussian_noise(rgb: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    noisy = rgb.astype(np.float32) + rng.normal(0, sigma, rgb.shape).astype(np.float32)
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


def sensor_noise(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shot noise (variance ∝ intensity) plus read noise, like a small camera sensor."""
    x = rgb.astype(np.float32)
    gain = rng.uniform(0.05, 0.6)
    read = rng.uniform(1, 6)
    noisy = x + rng.normal(0, 1, x.shape).astype(np.float32) * np.sqrt(gain * x + read**2)
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


def blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(sigma)))


def resize_down_up(rgb: np.ndarray, factor: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    small = Image.fromarray(rgb).resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.BICUBIC)
    return np.asarray(small.resize((w, h), Image.BICUBIC))


def bicubic_down(rgb: np.ndarray, scale: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    return np.asarray(Image.fromarray(rgb).resize((w // scale, h // scale), Image.BICUBIC))


def jpeg_quality(rng: np.random.Generator, low: int, high: int) -> int:
    """A JPEG quality in [low, high], log-uniform: the low qualities, whose blocking and ringing
    need the largest corrections, are drawn as often per octave as the mild ones (uniform
    drawing left quality 10 at the thin edge of the training distribution)."""
    q = np.exp(rng.uniform(np.log(low), np.log(high + 1)))
    return int(min(high, np.floor(q)))


def degrade(rgb: np.ndarray, task: str, rng: np.random.Generator) -> np.ndarray:
    """One random degradation of an 8-bit RGB image for ``task`` in jpeg / denoise / auto."""
    if task == "jpeg":
        return jpeg(rgb, jpeg_quality(rng, 10, 60))
    if task == "denoise":
        if rng.random() < 0.3:
            return sensor_noise(rgb, rng)
        return gaussian_noise(rgb, rng.uniform(2, 30), rng)
    if task != "auto":
        raise ValueError(f"unknown task {task!r}")
    out = rgb
    if rng.random() < 0.3:
        out = blur(out, rng.uniform(0.3, 1.5))
    if rng.random() < 0.3:
        out = resize_down_up(out, rng.uniform(0.5, 0.9))
    if rng.random() < 0.5:
        out = sensor_noise(out, rng) if rng.random() < 0.3 else gaussian_noise(out, rng.uniform(1, 20), rng)
    if rng.random() < 0.8 or out is rgb:
        out = jpeg(out, jpeg_quality(rng, 10, 70))
    return out
