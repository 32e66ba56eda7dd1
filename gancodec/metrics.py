"""Image quality metrics on uint8 arrays: PSNR (RGB) and MS-SSIM (via pytorch-msssim).

Both take (H, W) or (H, W, C) uint8 arrays of the same shape. MS-SSIM needs at least 161
pixels per side for its five scales; smaller images fall back to single-scale SSIM, and the
returned value says which one it is only through this documented rule.
"""

from __future__ import annotations

import numpy as np
import torch
from pytorch_msssim import ms_ssim as _ms_ssim
from pytorch_msssim import ssim as _ssim

MS_SSIM_MIN_SIDE = 161


def _as_float(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a.astype(np.float64)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    return float(np.mean((_as_float(a) - _as_float(b)) ** 2))


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB over all pixels and channels (the field's "PSNR-RGB"); inf if identical."""
    err = mse(a, b)
    return float("inf") if err == 0 else float(10 * np.log10(peak**2 / err))


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.array(a, dtype=np.float32))
    t = t.unsqueeze(-1) if t.dim() == 2 else t
    return t.permute(2, 0, 1).unsqueeze(0)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM on 0..255 data (SSIM for images under 161 px on a side)."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    x, y = _to_tensor(a), _to_tensor(b)
    if min(a.shape[:2]) >= MS_SSIM_MIN_SIDE:
        return float(_ms_ssim(x, y, data_range=255.0))
    win = min(11, min(a.shape[:2]) // 2 * 2 + 1) if min(a.shape[:2]) < 11 else 11
    if win < 3:
        return 1.0 if np.array_equal(a, b) else float(1 - mse(a, b) / 255.0**2)
    return float(_ssim(x, y, data_range=255.0, win_size=win))


def y_channel(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma in [16, 235] as float, the super-resolution literature's Y channel."""
    rgb = rgb.astype(np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0
