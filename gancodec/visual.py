"""Labelled image grids for side-by-side comparisons (demo, compare, training samples)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LABEL_HEIGHT = 22


def _font(size: int = 14) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def labelled_row(images: list[np.ndarray], labels: list[str], gap: int = 4) -> np.ndarray:
    """Images side by side, each with a caption strip above; all images must share a height."""
    h = max(im.shape[0] for im in images)
    w = sum(im.shape[1] for im in images) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (w, h + LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for im, label in zip(images, labels):
        tile = Image.fromarray(im if im.ndim == 3 else np.repeat(im[..., None], 3, axis=2)).convert("RGB")
        canvas.paste(tile, (x, LABEL_HEIGHT))
        draw.text((x + 4, 3), label, fill="black", font=_font())
        x += im.shape[1] + gap
    return np.asarray(canvas)


def stack_rows(rows: list[np.ndarray], gap: int = 6) -> np.ndarray:
    w = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, gap), (0, w - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(padded)[:-gap] if gap else np.concatenate(padded)


def zoom(image: np.ndarray, box: tuple[int, int, int, int], factor: int) -> np.ndarray:
    """Crop (top, left, height, width) and enlarge with nearest neighbour, so pixels stay visible."""
    t, l, h, w = box
    crop = image[t : t + h, l : l + w]
    return np.asarray(Image.fromarray(crop).resize((w * factor, h * factor), Image.NEAREST))
