"""Realism measures: does a reconstruction *look* like a photograph, not just match it pixel by pixel?

PSNR and MS-SSIM reward the blurry average of all plausible images; a generative decoder trades
some of that fidelity for texture that looks real. These measures need no downloaded network,
so they run anywhere and give the same numbers everywhere.

``hf_ratio`` — high-frequency energy ratio
    Energy of the finest detail band (luma minus its Gaussian blur, σ = 1 px) of the
    reconstruction divided by that of the original. 1.0 means as much fine detail as the original;
    below 1 means detail was smoothed away (typical of MSE-trained codecs and JPEG 2000 at low
    rates); above 1 means energy was added (ringing, blocking, noise or over-sharpened synthetic
    texture). Limits: it is one number per image and blind to *where* the detail is and whether it
    is the right detail — a GAN that paints grass where there was grass scores 1.0 even though
    every blade is invented, and blocking artefacts raise it just like real texture does.

``kid`` — patch KID on handcrafted features
    The image is cut into non-overlapping 32×32 patches; each patch is described by 26 fixed
    features: log energy of first and second derivatives (x, y, xx, yy, xy) at three scales of a
    2× pyramid, the sparsity (mean |r| / RMS r) of the finest-scale responses — natural texture is
    sparse, noise is not — and the mean and spread of Y, Cb and Cr. The features are standardised
    with the original's patch statistics, and the kernel inception distance (unbiased MMD² with
    the cubic polynomial kernel ``(x·y/d + 1)³`` of Bińkowski et al. 2018) is computed between the
    original's patches and the reconstruction's. 0 means the two sets of patches are
    distributed alike (exactly 0 for an identical image); blur, blocking and colour shifts all
    raise it, steeply (a cubic kernel on standardised features: strong blur reaches hundreds), so
    plots use a logarithmic axis. No sampling is involved, so the value is exactly reproducible.
    Limits: handcrafted texture statistics, not the Inception features of published KID/FID, so
    the numbers are not comparable with papers (HiFiC's FID/KID); it is computed per image (a few
    hundred patches, so individual values are noisy and the unbiased estimate can dip slightly
    below 0) and averaged, where papers pool patches over a whole dataset; it sees only local
    statistics, nothing semantic.

``lpips`` (optional)
    Learned perceptual distance (Zhang et al. 2018, AlexNet). Reported only when the ``lpips``
    package, torchvision and *both* weight files (the LPIPS linear layers and torchvision's
    AlexNet checkpoint in the torch hub cache) are already on the machine; nothing is downloaded.
    FID is not offered: with one image per setting it would need dataset-level pooling of
    Inception features, which this harness does not download.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

PATCH = 32
PYRAMID_LEVELS = 3
HF_SIGMA = 1.0
ENERGY_FLOOR = 1.0  # squared 8-bit levels: below this a band is indistinguishable from rounding noise
STD_FLOOR = 0.1  # feature units; keeps flat originals from blowing standardisation up
FEATURE_NAMES = tuple(
    [f"log_energy_{f}_s{lvl}" for lvl in range(PYRAMID_LEVELS) for f in ("x", "y", "xx", "yy", "xy")]
    + [f"sparsity_{f}_s0" for f in ("x", "y", "xx", "yy", "xy")]
    + ["mean_y", "mean_cb", "mean_cr", "std_y", "std_cb", "std_cr"]
)


def ycbcr(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-range BT.601 Y, Cb, Cr as float64 (0..255)."""
    x = np.asarray(rgb, dtype=np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return y, 128 + (b - y) * 0.564, 128 + (r - y) * 0.713


def high_frequency_energy(rgb: np.ndarray, sigma: float = HF_SIGMA) -> float:
    """Mean squared luma detail finer than a Gaussian of ``sigma`` pixels."""
    y = ycbcr(rgb)[0]
    return float(np.mean((y - gaussian_filter(y, sigma, mode="reflect")) ** 2))


def hf_ratio(original: np.ndarray, reconstruction: np.ndarray) -> float:
    """High-frequency energy of the reconstruction over the original's (1 = same amount of detail)."""
    # the floor keeps a flat original (energy ~0) from turning rounding noise into huge ratios
    ref = high_frequency_energy(original) + 1e-2
    return (high_frequency_energy(reconstruction) + 1e-2) / ref


def _derivatives(y: np.ndarray) -> list[np.ndarray]:
    p = np.pad(y, 1, mode="edge")
    c = p[1:-1, 1:-1]
    dx = (p[1:-1, 2:] - p[1:-1, :-2]) / 2
    dy = (p[2:, 1:-1] - p[:-2, 1:-1]) / 2
    dxx = p[1:-1, 2:] - 2 * c + p[1:-1, :-2]
    dyy = p[2:, 1:-1] - 2 * c + p[:-2, 1:-1]
    dxy = (p[2:, 2:] - p[2:, :-2] - p[:-2, 2:] + p[:-2, :-2]) / 4
    return [dx, dy, dxx, dyy, dxy]


def _pool(a: np.ndarray, block: int) -> np.ndarray:
    """Per-patch mean of a map whose sides are multiples of ``block``: (rows·cols,)."""
    h, w = a.shape
    return a.reshape(h // block, block, w // block, block).mean(axis=(1, 3)).ravel()


def _halve(a: np.ndarray) -> np.ndarray:
    h, w = a.shape
    return a.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def patch_features(rgb: np.ndarray, patch: int = PATCH) -> np.ndarray:
    """(patches, 26) handcrafted texture/colour features of the non-overlapping ``patch``² tiles."""
    h, w = rgb.shape[:2]
    ph, pw = h // patch * patch, w // patch * patch
    if ph == 0 or pw == 0:
        return np.zeros((0, len(FEATURE_NAMES)))
    top, left = (h - ph) // 2, (w - pw) // 2  # centred crop: the same tiles for both images
    y, cb, cr = ycbcr(rgb[top : top + ph, left : left + pw])
    feats: list[np.ndarray] = []
    level, block, finest = y, patch, None
    for lvl in range(PYRAMID_LEVELS):
        responses = _derivatives(level)
        if lvl == 0:
            finest = responses
        feats += [np.log(_pool(r * r, block) + ENERGY_FLOOR) for r in responses]
        if lvl + 1 < PYRAMID_LEVELS:
            level, block = _halve(level), block // 2
    for r in finest:
        rms = np.sqrt(_pool(r * r, patch) + ENERGY_FLOOR)
        feats.append(_pool(np.abs(r), patch) / rms)
    for ch in (y, cb, cr):
        feats.append(_pool(ch, patch) / 32)  # /32: colour features on the same scale as log energies
    for ch in (y, cb, cr):
        mean = _pool(ch, patch)
        feats.append(np.sqrt(np.maximum(_pool(ch * ch, patch) - mean * mean, 0)) / 16)
    return np.stack(feats, axis=1)


def kid(reference_features: np.ndarray, test_features: np.ndarray) -> float:
    """Unbiased MMD² with the cubic polynomial kernel, features standardised by the reference set.

    With equally many patches on both sides (always the case here) this is the U-statistic of
    Gretton et al. (2012, eq. 3), which leaves out every i = j term, cross terms included: it is
    exactly 0 for identical sets and ignores which patch reconstructs which, so it measures how
    the patches are *distributed*, not how faithful each one is.
    """
    x, y = np.asarray(reference_features, np.float64), np.asarray(test_features, np.float64)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        return math.nan
    mu, sd = x.mean(axis=0), np.maximum(x.std(axis=0), STD_FLOOR)
    x, y = (x - mu) / sd, (y - mu) / sd
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    if n == m:
        off = kxx + kyy - kxy - kxy.T
        return float((off.sum() - np.trace(off)) / (n * (n - 1)))
    return float(
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2 * kxy.mean()
    )


def patch_kid(
    original: np.ndarray, reconstruction: np.ndarray, original_features: np.ndarray | None = None
) -> float:
    ref = patch_features(original) if original_features is None else original_features
    return kid(ref, patch_features(reconstruction))


# -- optional LPIPS ------------------------------------------------------------------------------
ALEXNET_CHECKPOINT = "alexnet-owt-7be5be79.pth"


def lpips_unavailable() -> str | None:
    """Why LPIPS cannot run here without downloading anything, or ``None`` if it can."""
    for module in ("lpips", "torchvision"):
        if importlib.util.find_spec(module) is None:
            return f"LPIPS not available: the {module} package is not installed"
    spec = importlib.util.find_spec("lpips")
    linear = Path(spec.origin).parent / "weights" / "v0.1" / "alex.pth" if spec and spec.origin else None
    if linear is None or not linear.is_file():
        return "LPIPS not available: the lpips package has no alex.pth weights"
    import torch

    backbone = Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_CHECKPOINT
    if not backbone.is_file():
        return f"LPIPS not available: {backbone} is missing (it is never downloaded)"
    return None


class LPIPS:
    """LPIPS-AlexNet on uint8 RGB arrays; construct only after :func:`lpips_unavailable` is ``None``."""

    def __init__(self) -> None:
        import lpips  # imported lazily: the package pulls in torchvision

        self.net = lpips.LPIPS(net="alex", verbose=False).eval()

    def __call__(self, original: np.ndarray, reconstruction: np.ndarray) -> float:
        import torch

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 127.5 - 1

        with torch.no_grad():
            return float(self.net(t(original), t(reconstruction)).mean())
