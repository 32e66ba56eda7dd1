"""Runtime of inpainting: masks from any form, holes filled by crops, pixels outside untouched.

A model folder holds ``config.json`` (``"kind": "inpaint"``) and ``fidelity.safetensors``
(L1-trained), optionally ``gan.safetensors`` (GAN-finetuned from it); ``realism`` in [0, 1]
interpolates their weights, as for restoration.

Any image size (IOPaint's CROP strategy, then its RESIZE for big holes):

1. The mask's connected components are boxed; each box grows by a margin of context
   (``margin`` px, at least half the box's longer side) and boxes whose grown regions overlap
   are merged until none do, so every crop holds its holes and no part of another one.
2. Each crop is filled at native resolution when its longer side is at most ``work_size``;
   otherwise a copy is downscaled to ``work_size``, filled, and the result upscaled.
3. Only the hole's pixels are written back: every pixel outside the (dilated) mask is the
   input's, byte for byte, and there can be no seam at a crop border.

Memory is bounded by the crop, not the image. The generator's Fourier branch gives every pixel
a receptive field as large as its input, so a crop's fill can differ slightly from a fill of
the whole image; a crop that reaches the image's borders on every side *is* the whole image
and gives exactly the same result.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from .allocator import reuse_large_buffers
from .blend import BlendedModel, write_stage
from .errors import UserError
from .imageio import (
    has_alpha,
    is_greyscale,
    open_image,
    output_format,
    row_writer,
    save_image,
    streamed_rgb,
    upright_size,
)
from .limits import DEFAULT_MAX_PIXELS
from .models.inpaint import InpaintConfig
from .tiling import RowReader

KIND = "inpaint"
DEFAULT_MODEL = "inpaint-lite"


# -- masks -----------------------------------------------------------------------------------------
def mask_from_image(img: Image.Image) -> np.ndarray:
    """Boolean hole mask of a mask image: its alpha channel where it has one that is not fully
    opaque (painted = hole), else any non-zero value (white on black)."""
    if has_alpha(img):
        alpha = np.asarray(img.convert("RGBA").getchannel("A"))
        if alpha.min() < 255:
            return alpha > 0
    if img.mode in ("I", "I;16", "F", "1", "L"):
        return np.asarray(img) != 0
    return (np.asarray(img.convert("RGB")) != 0).any(axis=2)


def to_mask(mask, shape: tuple[int, int], max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A (H, W) boolean mask from a path, a PIL image or an array (bool; numbers: non-zero =
    hole; (H, W, 2 or 4): the last channel is alpha), checked against the image's (H, W)."""
    if isinstance(mask, (str, Path)):
        mask = open_image(mask, max_pixels)
    if isinstance(mask, Image.Image):
        arr = mask_from_image(mask)
    else:
        arr = np.asarray(mask)
        if arr.ndim == 3 and arr.shape[2] in (2, 4) and arr[..., -1].min() < arr[..., -1].max(initial=0):
            arr = arr[..., -1]
        elif arr.ndim == 3 and arr.shape[2] in (2, 4):
            arr = arr[..., :-1]
        if arr.ndim == 3:
            arr = (arr != 0).any(axis=2)
        if arr.ndim != 2:
            raise UserError(f"mask arrays must be (H, W) or (H, W, C), got shape {arr.shape}")
        arr = arr != 0
    if arr.shape != tuple(shape):
        raise UserError(f"mask is {arr.shape[1]}×{arr.shape[0]} but the image is {shape[1]}×{shape[0]}")
    return np.ascontiguousarray(arr)


def box_mask(boxes: list[tuple[int, int, int, int]], shape: tuple[int, int]) -> np.ndarray:
    """Mask of rectangles given as (x, y, width, height), clipped to the image."""
    h, w = shape
    mask = np.zeros((h, w), dtype=bool)
    for x, y, bw, bh in boxes:
        if bw <= 0 or bh <= 0:
            raise UserError(f"box {x},{y},{bw},{bh}: width and height must be positive")
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + bw, w), min(y + bh, h)
        if x0 >= x1 or y0 >= y1:
            raise UserError(f"box {x},{y},{bw},{bh} lies outside the {w}×{h} image")
        mask[y0:y1, x0:x1] = True
    return mask


def parse_box(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--box takes X,Y,W,H (four integers), got {text!r}") from None
    return x, y, w, h


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Grow the hole by ``pixels`` (a disc), as users mask an object a little too tightly."""
    if pixels < 0:
        raise UserError(f"dilate must be >= 0, got {pixels}")
    if pixels == 0 or not mask.any():
        return mask
    r = int(pixels)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return ndimage.binary_dilation(mask, structure=xx * xx + yy * yy <= r * r)


# -- crop plan -------------------------------------------------------------------------------------
Box = tuple[int, int, int, int]  # top, left, bottom, right (exclusive)


def _grow(box: Box, margin: int, ratio: float, shape: tuple[int, int]) -> Box:
    t, l, b, r = box
    m = max(margin, int(np.ceil(ratio * max(b - t, r - l))))
    return max(t - m, 0), max(l - m, 0), min(b + m, shape[0]), min(r + m, shape[1])


PLAN_CELL = 8  # px: the crop plan finds and merges holes on a grid of cells this size


def _cells_with_holes(mask: np.ndarray, cell: int) -> np.ndarray:
    """(ceil(H / cell), ceil(W / cell)) bool: which cells hold a hole pixel, made a band of
    ``cell`` rows at a time (no full-size temporary)."""
    h, w = mask.shape
    out = np.zeros((-(-h // cell), -(-w // cell)), dtype=bool)
    starts = np.arange(0, w, cell)
    for i, r0 in enumerate(range(0, h, cell)):
        out[i] = np.logical_or.reduceat(mask[r0 : r0 + cell].any(axis=0), starts)
    return out


def _hole_boxes(mask: np.ndarray, cell: int) -> list[Box]:
    """Tight boxes of the holes. Connected components are found on the grid of cells, so the
    labels take 4 bytes per cell, not per pixel (430 MB for a 108 MP photo), and specks in one
    cell count once; each box is then shrunk to the hole pixels it holds."""
    h, w = mask.shape
    labels, _ = ndimage.label(_cells_with_holes(mask, cell), structure=np.ones((3, 3), dtype=bool))
    boxes = []
    for s in ndimage.find_objects(labels):
        if s is None:
            continue
        t, l, b, r = s[0].start * cell, s[1].start * cell, min(h, s[0].stop * cell), min(w, s[1].stop * cell)
        region = mask[t:b, l:r]
        rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
        boxes.append((t + int(rows[0]), l + int(cols[0]), t + int(rows[-1]) + 1, l + int(cols[-1]) + 1))
    return boxes


def crop_plan(mask: np.ndarray, margin: int = 128, ratio: float = 0.5, cell: int = PLAN_CELL) -> list[Box]:
    """Crops (top, left, bottom, right) that together cover every hole with context; grown
    regions of different crops never overlap, so each hole pixel is filled exactly once.

    Holes whose grown boxes overlap are merged (their bounding box, grown again) until none do.
    Each round paints the grown boxes on the cell grid and labels it: boxes that overlap share a
    cell, so a round costs one pass over the grid whatever the number of holes (a mask of
    thousands of specks took minutes with pairwise merging)."""
    holes = _hole_boxes(mask, cell)
    gh, gw = -(-mask.shape[0] // cell), -(-mask.shape[1] // cell)
    while True:
        grown = [_grow(h, margin, ratio, mask.shape) for h in holes]
        canvas = np.zeros((gh, gw), dtype=bool)
        for t, l, b, r in grown:
            canvas[t // cell : -(-b // cell), l // cell : -(-r // cell)] = True
        labels, count = ndimage.label(canvas)
        if count == len(holes):  # no two grown boxes share a cell, so none overlap
            return sorted(grown)
        merged: dict[int, Box] = {}
        for hole, (t, l, _, _) in zip(holes, grown):
            k = int(labels[t // cell, l // cell])
            a = merged.get(k, hole)
            merged[k] = (min(a[0], hole[0]), min(a[1], hole[1]), max(a[2], hole[2]), max(a[3], hole[3]))
        holes = list(merged.values())


# -- the model -------------------------------------------------------------------------------------
class Inpainter(BlendedModel):
    margin = 128  # context around a hole, px (IOPaint's crop margin)
    margin_ratio = 0.5  # ... and at least this share of the hole's longer side
    work_size = 768  # longest side the network runs at; larger crops are filled on a downscaled copy

    def read_config(self, meta: dict) -> InpaintConfig:
        if meta.get("kind") != KIND:
            raise UserError(f"model {self.folder.name} is not an inpainting model")
        return InpaintConfig.from_dict(meta["inpaint_config"])

    @property
    def stride(self) -> int:
        return self.config.stride

    @torch.no_grad()
    def fill(self, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """The network's inpainting of a uint8 RGB crop at its own size (composited, uint8)."""
        h, w = hole.shape
        s = self.stride
        ph, pw = -h % s, -w % s
        x = torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).permute(2, 0, 1)[None].float().div_(255)
        m = torch.from_numpy(hole.astype(np.float32))[None, None]
        if ph or pw:
            # reflect keeps image statistics at the border; a side shorter than the pad cannot
            mode = "reflect" if ph < h and pw < w else "replicate"
            x, m = F.pad(x, (0, pw, 0, ph), mode=mode), F.pad(m, (0, pw, 0, ph), mode=mode)
        y = self.net(x, m)[..., :h, :w]
        return (y[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)

    def fill_crop(self, rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """Fill at native size, or on a copy downscaled to :attr:`work_size` then upscaled."""
        h, w = hole.shape
        if max(h, w) <= self.work_size:
            return self.fill(rgb, hole)
        f = self.work_size / max(h, w)
        sw, sh = max(1, round(w * f)), max(1, round(h * f))
        small = np.asarray(Image.fromarray(rgb).resize((sw, sh), Image.LANCZOS))
        # any coverage makes a small pixel a hole, so no hole pixel is filled from itself
        small_hole = np.asarray(Image.fromarray(hole.astype(np.uint8) * 255).resize((sw, sh), Image.BILINEAR)) > 0
        filled = self.fill(small, small_hole)
        return np.asarray(Image.fromarray(filled).resize((w, h), Image.BICUBIC))

    def _check_hole(self, hole: np.ndarray, allow_empty: bool) -> bool:
        """Whether there is anything to fill; an empty hole (unless allowed) or one covering the
        whole image is a :class:`UserError`."""
        if not hole.any():
            if allow_empty:
                return False
            raise UserError("the mask is empty: nothing to fill (pass --allow-empty to copy the image unchanged)")
        if hole.all():
            raise UserError("the mask covers the whole image: there is nothing to fill the hole from")
        return True

    def _fill_region(self, src: np.ndarray, dst: np.ndarray, hole: np.ndarray) -> None:
        """Fill one crop of the plan: ``src`` its input pixels, ``dst`` where its hole pixels go."""
        filled = self.fill_crop(src, hole)
        dst[hole] = filled[hole]

    def run(self, rgb: np.ndarray, mask: np.ndarray, realism: float = 0.0, dilate_px: int = 0,
            allow_empty: bool = False, in_place: bool = False) -> np.ndarray:
        """Inpaint a uint8 RGB image where ``mask`` (H, W, bool) is True; see the module docstring.
        ``in_place`` fills ``rgb`` itself instead of a copy (a large image's 3 bytes a pixel):
        crops' regions never overlap, so no fill reads another crop's filled pixels."""
        self.set_realism(realism)
        if mask.shape != rgb.shape[:2]:
            raise UserError(f"mask is {mask.shape[1]}×{mask.shape[0]} but the image is {rgb.shape[1]}×{rgb.shape[0]}")
        hole = dilate(mask, dilate_px)
        out = rgb if in_place else np.array(rgb, dtype=np.uint8, copy=True)
        if not self._check_hole(hole, allow_empty):
            return out
        for t, l, b, r in crop_plan(hole, self.margin, self.margin_ratio):
            self._fill_region(rgb[t:b, l:r], out[t:b, l:r], hole[t:b, l:r])
        return out

    def run_rows(self, rows: RowReader, hole: np.ndarray, write: Callable[[int, np.ndarray], None],
                 realism: float = 0.0, allow_empty: bool = False) -> None:
        """:meth:`run` on an image read top to bottom (a :class:`~gancodec.tiling.RowReader`),
        handing the result to ``write(first_row, rows)`` top to bottom (``rows`` uint8 (n, W, 3)).
        The crops of the plan are filled in order of their top row; rows above the next crop's
        top are final and are written at once, so what is held is the rows of the crops being
        filled (with their context), not the image. ``hole`` is the (dilated) mask, whole."""
        self.set_realism(realism)
        h, w = rows.shape[:2]
        if hole.shape != (h, w):
            raise UserError(f"mask is {hole.shape[1]}×{hole.shape[0]} but the image is {w}×{h}")
        plan = crop_plan(hole, self.margin, self.margin_ratio) if self._check_hole(hole, allow_empty) else []
        held = np.empty((0, w, 3), dtype=np.uint8)  # rows start:start + len(held), writable
        start = 0

        def advance(end: int) -> None:
            """Write rows above ``end`` out (those read and those passed over), read none below it."""
            nonlocal held, start
            if end <= start:
                return
            n = min(end - start, len(held))
            if n:
                write(start, held[:n])
                held, start = held[n:], start + n
            for r0 in range(start, end, _PASS_ROWS):  # rows no crop touches: straight through
                write(r0, rows.rows(r0, min(end, r0 + _PASS_ROWS)))
            start = max(start, end)

        for t, l, b, r in plan:
            advance(t)
            if start + len(held) < b:  # read down to the crop's bottom
                held = np.concatenate([held, rows.rows(start + len(held), b)])
            region = held[t - start : b - start, l:r]
            self._fill_region(np.array(region), region, hole[t:b, l:r])
        advance(h)


_PASS_ROWS = 256  # rows read and written at a time where no crop is


def inpaint_file(model: Inpainter, image: str | Path, mask, output: str | Path, *, realism: float = 0.0,
                 dilate_px: int = 0, allow_empty: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 mask_image: Callable[[tuple[int, int]], np.ndarray] | None = None) -> None:
    """:func:`inpaint_image` from an image file to an image file (format from the suffix), written
    atomically, with the input's ICC profile attached. A plain PNG or a large JPEG or TIFF
    without alpha is read in rows (:func:`~gancodec.imageio.streamed_rgb`, crops in order of
    their top row: :meth:`Inpainter.run_rows`) and, into a ``.png``, written in rows
    (:func:`~gancodec.imageio.row_writer`): only the mask is held whole (1 byte a pixel).
    ``mask_image``, if given, makes the mask from the image's (H, W) instead of ``mask``."""
    output = Path(output)
    output_format(output)  # an unknown suffix is refused before the work, not after
    img = open_image(image, max_pixels, decode=False)
    icc = img.info.get("icc_profile") or None
    meta = {"icc_profile": icc} if icc else {}
    width, height = upright_size(img)  # a large rotated photo is turned as its rows are read
    shape = (height, width)
    hole = dilate(mask_image(shape) if mask_image else to_mask(mask, shape, max_pixels), dilate_px)
    rows = streamed_rgb(img)
    if rows is None:
        save_image(output, inpaint_image(model, img, hole, realism=realism, allow_empty=allow_empty,
                                         max_pixels=max_pixels), **meta)
        return
    grey = is_greyscale(img)
    img = None
    try:
        # a large image's allocator setting (gancodec.allocator): its bands of rows, made and freed
        # as the crops move down, are not kept by a heap tuned to keep every freed block
        with reuse_large_buffers(shape[0] * shape[1]), row_writer(output, shape[1], shape[0], 1 if grey else 3,
                                                                   **meta) as write_file:

            def write(r0: int, band: np.ndarray) -> None:
                write_file(r0, _grey_fill(band, hole[r0 : r0 + len(band)]) if grey else band)

            model.run_rows(rows, hole, write, realism=realism, allow_empty=allow_empty)
    finally:
        rows.close()


def _grey_fill(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """A greyscale image's inpainted rows: the luma of the fill in the hole, the input (any of the
    three equal channels of its RGB form) elsewhere."""
    luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.where(hole, np.clip(luma + 0.5, 0, 255).astype(np.uint8), rgb[..., 0])


def inpaint_image(model: Inpainter, image, mask, realism: float = 0.0, dilate_px: int = 0,
                  allow_empty: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Inpaint any image form, keeping its layout: greyscale in, greyscale out (luma of the
    fill); an alpha channel is carried over unchanged. Images above ``max_pixels`` (None: no
    limit) are refused before they are decoded."""
    from .codec import prepare_image

    prepared = prepare_image(image, max_pixels)
    hole = dilate(to_mask(mask, prepared.rgb.shape[:2], max_pixels), dilate_px)
    # pixels read from a file or a PIL image are our own copy: filled in place
    own = isinstance(image, (str, Path, Image.Image))
    out = model.run(prepared.rgb, hole, realism=realism, allow_empty=allow_empty, in_place=own)
    if prepared.mode.name in ("GREY", "GREY_ALPHA"):
        out = _grey_fill(out, hole)
    if prepared.alpha is not None:
        out = np.dstack([out, prepared.alpha])
    return out


# -- export ----------------------------------------------------------------------------------------
def export_inpaint(run: Path, out: Path, name: str, ema: bool = True) -> Path:
    """Write a run's (EMA) generator as ``{stage}.safetensors`` into a model folder (+ config)."""
    ckpt = run / "checkpoint.pt" if run.is_dir() else run
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    config = InpaintConfig.from_dict(state["config"])
    stage = state["stage"]
    weights = (state.get("ema") if ema else None) or state["nets"]["generator"]
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "config.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("kind") != KIND or meta.get("inpaint_config") != config.to_dict():
            raise UserError(f"{out} holds a model of another kind or configuration")
    meta = {"name": name, "kind": KIND, "inpaint_config": config.to_dict(), "stride": config.stride}
    return write_stage(out, stage, weights, meta)
