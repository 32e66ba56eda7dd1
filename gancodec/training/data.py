"""Training data: random crops with flips from any folder(s) of images.

Images are decoded once and kept in memory as uint8 (BSDS500 is ~60 MB that way), so a
training step costs no disk or JPEG decoding. Each distributed rank draws from its own
seeded generator, which is what a DistributedSampler would give for an infinite stream.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..imageio import IMAGE_SUFFIXES, load_rgb_array


def list_images(dirs: Sequence[str | Path]) -> list[Path]:
    files: list[Path] = []
    for d in dirs:
        d = Path(d)
        if d.is_file():
            files.append(d)
            continue
        if not d.is_dir():
            raise UserError(f"training data folder not found: {d}")
        files += sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"no images found in {', '.join(map(str, dirs))}")
    return files


class RandomCrops:
    """Infinite iterator of (B, 3, crop, crop) float batches in [0, 1]."""

    def __init__(self, dirs: Sequence[str | Path], crop: int, batch_size: int, seed: int = 0):
        self.images = [load_rgb_array(p) for p in list_images(dirs)]
        self.crop = crop
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)

    def _crop(self, img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        if h < self.crop or w < self.crop:
            pad = ((0, max(0, self.crop - h)), (0, max(0, self.crop - w)), (0, 0))
            img = np.pad(img, pad, mode="reflect" if min(h, w) > 1 else "edge")
            h, w = img.shape[:2]
        top = self.rng.integers(0, h - self.crop + 1)
        left = self.rng.integers(0, w - self.crop + 1)
        patch = img[top : top + self.crop, left : left + self.crop]
        if self.rng.random() < 0.5:
            patch = patch[:, ::-1]
        if self.rng.random() < 0.5:
            patch = patch[::-1]
        return patch

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        idx = self.rng.integers(0, len(self.images), self.batch_size)
        batch = np.stack([self._crop(self.images[i]) for i in idx])
        return torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)


class LatentCache:
    """Infinite iterator of (B, M, h, w) batches of a *frozen* analysis transform's outputs on a
    fixed set of ``count`` random crops, computed once (and kept in ``cache_file`` when given,
    so a resumed run or a second arm of an ablation reuses them). The codec's entropy stage
    trains only the entropy model, for which the analysis transform would be 95 % of a step."""

    def __init__(self, crops: RandomCrops, analysis: torch.nn.Module, count: int, batch_size: int, seed: int = 0,
                 cache_file: Path | None = None, progress: bool = True):
        if cache_file is not None and cache_file.is_file():
            self.latents = torch.load(cache_file, map_location="cpu", weights_only=True)
        else:
            from tqdm import tqdm

            parts = []
            with torch.no_grad():
                for _ in tqdm(range(-(-count // crops.batch_size)), desc="caching latents", disable=not progress):
                    parts.append(analysis(next(crops)).float())
            self.latents = torch.cat(parts)[:count].contiguous()
            if cache_file is not None:
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache_file.with_suffix(".tmp")
                torch.save(self.latents, tmp)
                tmp.replace(cache_file)
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        return self.latents[torch.from_numpy(self.rng.integers(0, len(self.latents), self.batch_size))]
