"""Seeded hole masks for inpainting: training draws and fixed evaluation sets.

Kinds (all sizes are given for a 256-px image and scale with the shorter side):

* ``thin`` / ``medium`` / ``thick`` — free-form brush strokes, LaMa's irregular masks (a random
  walk of line segments with round joints; DeepFill v2's free-form masks are the same idea),
  brush widths 3–10 / 10–25 / 25–50 px.
* ``box`` — one to three axis-aligned rectangles (LaMa's box masks, 30–150 px sides).
* ``scratch`` — long thin gently bending lines, 1–3 px wide: the damage of an old print.

Every mask is a boolean (H, W) array, ``True`` = hole, drawn with Pillow from a
``numpy.random.Generator`` so that a seed gives the same mask on every machine. The hole area
is capped (50 % by default): training and evaluation never ask for more than that.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

KINDS = ("thin", "medium", "thick", "box", "scratch")
#: the area buckets (fractions of the image) that results are reported per, LaMa / AOT-GAN style
BUCKETS = ((0.0, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5))
#: the kinds of the benchmark
EVAL_KINDS = ("thin", "thick", "box", "scratch")
MAX_AREA = 0.5
#: relative frequency of each kind in training (boxes and strokes at equal odds, as LaMa)
TRAIN_MIX = {"thin": 0.17, "medium": 0.17, "thick": 0.16, "box": 0.35, "scratch": 0.15}

# brush width range, segment length range and stroke count range, in pixels of a 256-px image
_STROKES = {
    "thin": ((3, 10), (20, 80), (3, 10)),
    "medium": ((10, 25), (30, 120), (2, 6)),
    "thick": ((25, 50), (40, 160), (1, 4)),
}


def _scale(h: int, w: int) -> float:
    return min(h, w) / 256.0


def _draw_stroke(draw: ImageDraw.ImageDraw, h: int, w: int, rng: np.random.Generator, kind: str) -> None:
    """One brush stroke: 1–6 connected segments of random heading (LaMa's irregular mask)."""
    (w0, w1), (l0, l1), _ = _STROKES[kind]
    s = _scale(h, w)
    width = max(1, int(round(rng.uniform(w0, w1) * s)))
    x, y = rng.uniform(0, w), rng.uniform(0, h)
    angle = rng.uniform(0, 2 * np.pi)
    points = [(x, y)]
    for _ in range(int(rng.integers(1, 7))):
        angle += rng.uniform(-np.pi / 2, np.pi / 2)  # a hand turns, it does not jump back
        length = rng.uniform(l0, l1) * s
        x = float(np.clip(x + length * np.cos(angle), 0, w - 1))
        y = float(np.clip(y + length * np.sin(angle), 0, h - 1))
        points.append((x, y))
    draw.line(points, fill=1, width=width, joint="curve")
    r = width / 2  # round caps, as a brush leaves
    for px, py in (points[0], points[-1]):
        draw.ellipse((px - r, py - r, px + r, py + r), fill=1)


def _draw_box(draw: ImageDraw.ImageDraw, h: int, w: int, rng: np.random.Generator, area: float | None = None) -> None:
    """A rectangle with sides 30–150 px at 256 px, or of a given area fraction."""
    if area is None:
        s = _scale(h, w)
        bh, bw = (min(int(rng.uniform(30, 150) * s), n) for n in (h, w))
    else:
        aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
        bh = int(round(min(h, np.sqrt(area * h * w / aspect))))
        bw = int(round(min(w, area * h * w / max(bh, 1))))
    bh, bw = max(bh, 1), max(bw, 1)
    top, left = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
    draw.rectangle((left, top, left + bw - 1, top + bh - 1), fill=1)


def _draw_scratch(draw: ImageDraw.ImageDraw, h: int, w: int, rng: np.random.Generator) -> None:
    """A long thin line with gentle bends across a good part of the image."""
    s = _scale(h, w)
    width = max(1, int(round(rng.uniform(1, 3) * max(s, 1) ** 0.5)))
    diag = float(np.hypot(h, w))
    length = rng.uniform(0.3, 1.0) * diag
    segments = int(rng.integers(3, 9))
    angle = rng.uniform(0, np.pi)
    x, y = rng.uniform(0, w), rng.uniform(0, h)
    x, y = x - np.cos(angle) * length / 2, y - np.sin(angle) * length / 2  # centred on (x, y)
    points = [(x, y)]
    for _ in range(segments):
        angle += rng.normal(0, 0.15)
        x, y = x + np.cos(angle) * length / segments, y + np.sin(angle) * length / segments
        points.append((x, y))
    draw.line([(float(a), float(b)) for a, b in points], fill=1, width=width)


def _canvas(h: int, w: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("L", (w, h), 0)
    return img, ImageDraw.Draw(img)


def _as_bool(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.uint8) > 0


def _add(draw: ImageDraw.ImageDraw, kind: str, h: int, w: int, rng: np.random.Generator) -> None:
    if kind in _STROKES:
        _draw_stroke(draw, h, w, rng, kind)
    elif kind == "box":
        _draw_box(draw, h, w, rng)
    elif kind == "scratch":
        _draw_scratch(draw, h, w, rng)
    else:
        raise ValueError(f"unknown mask kind {kind!r}; choose from {', '.join(KINDS)}")


def random_mask(
    h: int, w: int, rng: np.random.Generator, kind: str | None = None, max_area: float = MAX_AREA
) -> np.ndarray:
    """One training mask: ``kind`` (drawn from :data:`TRAIN_MIX` when None) with a random number
    of strokes / boxes / scratches; the hole is never empty and covers at most ``max_area``."""
    if kind is None:
        kinds = list(TRAIN_MIX)
        p = np.array([TRAIN_MIX[k] for k in kinds])
        kind = kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
    if kind in _STROKES:
        lo, hi = _STROKES[kind][2]
    elif kind == "box":
        lo, hi = 1, 3
    else:
        lo, hi = 1, 8
    count = int(rng.integers(lo, hi + 1))
    img, draw = _canvas(h, w)
    mask = None
    for i in range(count):
        before = np.array(img) if i else None
        _add(draw, kind, h, w, rng)
        mask = _as_bool(img)
        if mask.mean() > max_area:
            if before is None:  # one stroke alone is too big: fall back to a box of half the cap
                img, draw = _canvas(h, w)
                _draw_box(draw, h, w, rng, area=max_area / 2)
                return _as_bool(img)
            return before > 0  # the last stroke went past the cap: keep the mask without it
    return mask


def scratch_mask(h: int, w: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` synthetic scratches (the CLI's ``--scratches N`` demo)."""
    img, draw = _canvas(h, w)
    for _ in range(count):
        _draw_scratch(draw, h, w, rng)
    return _as_bool(img)


def bucket_of(area: float) -> int | None:
    """Index of the bucket of a hole-area fraction (lower bound exclusive), None above 50 %."""
    for i, (lo, hi) in enumerate(BUCKETS):
        if lo < area <= hi:
            return i
    return None


def bucket_mask(
    h: int, w: int, kind: str, bucket: tuple[float, float], rng: np.random.Generator, tries: int = 200
) -> np.ndarray | None:
    """A mask of ``kind`` whose hole area lies in ``bucket`` (lo, hi]; None if none was found.

    A target area is drawn inside the bucket; strokes and scratches are added one at a time
    until the hole reaches it, boxes are drawn at that area; an attempt that leaves the bucket
    starts again."""
    lo, hi = bucket
    for _ in range(tries):
        img, draw = _canvas(h, w)
        # a target inside the bucket, so the masks do not all sit on its lower edge
        target = rng.uniform(lo + 0.15 * (hi - lo), hi - 0.15 * (hi - lo))
        if kind == "box":
            n = int(rng.integers(1, 3))
            for _ in range(n):
                _draw_box(draw, h, w, rng, area=target / n)
            area = _as_bool(img).mean()
            if lo < area <= hi:
                return _as_bool(img)
            continue
        area = 0.0
        for _ in range(2000):
            _add(draw, kind, h, w, rng)
            area = _as_bool(img).mean()
            if area >= target:
                break
        if lo < area <= hi:
            return _as_bool(img)
    return None


#: the highest bucket each kind is evaluated in: dense thin lines over 20 % of a photo are not
#: a scratched print any more, they are a different (and unrealistic) problem
KIND_MAX_BUCKET = {"scratch": 1}


def eval_masks(
    h: int, w: int, kinds: tuple[str, ...] = EVAL_KINDS, buckets: tuple[tuple[float, float], ...] = BUCKETS,
    per_bucket: int = 1, seed: int = 0,
) -> list[tuple[str, int, np.ndarray]]:
    """The fixed evaluation set: ``per_bucket`` masks of each kind in each area bucket, as
    (kind, bucket index, mask). The same (h, w, seed) always gives the same masks; each
    (kind, bucket) pair has its own generator, so limiting the kinds or buckets of a quick run
    leaves the others' masks unchanged. Scratches stop at the 10–20 % bucket
    (:data:`KIND_MAX_BUCKET`)."""
    out = []
    for kind in kinds:
        for b, bucket in enumerate(buckets):
            if b > KIND_MAX_BUCKET.get(kind, len(BUCKETS)):
                continue
            rng = np.random.default_rng([seed, KINDS.index(kind), b, h, w])
            for _ in range(per_bucket):
                mask = bucket_mask(h, w, kind, bucket, rng)
                if mask is not None:
                    out.append((kind, b, mask))
    return out


class MaskPool:
    """Training masks at one size, cheap to draw: a pool drawn once, one entry redrawn per
    batch, each use flipped / transposed at random (8 variants per entry).

    Pillow draws a mask in ~0.1–1 ms, so a pool of a few hundred costs well under a second at
    start and the per-batch cost stays negligible next to a GPU step.
    """

    def __init__(self, size: int, rng: np.random.Generator, count: int = 256, max_area: float = MAX_AREA):
        self.size, self.rng, self.max_area = size, rng, max_area
        self.masks = np.stack([random_mask(size, size, rng, max_area=max_area) for _ in range(count)])

    def draw(self, n: int) -> np.ndarray:
        """(n, size, size) boolean masks."""
        i = int(self.rng.integers(len(self.masks)))
        self.masks[i] = random_mask(self.size, self.size, self.rng, max_area=self.max_area)
        out = self.masks[self.rng.integers(len(self.masks), size=n)].copy()
        for k in range(n):
            flips = self.rng.integers(0, 2, size=3)
            if flips[0]:
                out[k] = out[k][::-1]
            if flips[1]:
                out[k] = out[k][:, ::-1]
            if flips[2]:
                out[k] = out[k].T
        return out
