"""Matched-size visual comparison: every codec at the same byte budget, in one labelled grid.

For each codec the quality knob is searched (bisection; integer knobs exactly, continuous ones
to 1/2¹⁴ of their range) for the **largest file that does not exceed** the budget, so no codec
is shown with more bytes than another was allowed. If even the codec's smallest setting is over
the budget, that file is shown and its label says "over budget". Codecs sharing a bitstream
(``gancodec`` / ``gancodec-gan``) share the search and the bytes. PNG, being lossless with a
single setting, cannot meet a budget and is left out.

The grid shows the original and each reconstruction as a thumbnail with the crop windows
marked, the crops enlarged with nearest-neighbour (pixels stay pixels), and a label with the
codec, its setting, bytes, bpp and PSNR. By default two crops are chosen automatically: the
most detailed window of the original (where blur and invented texture show) and a window of
middling detail (where blocking and banding show).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import UserError
from ..imageio import atomic_output, load_rgb_array, save_image
from ..metrics import psnr
from .codecs import DEFAULT_MODEL, Codec, parse_codec_list, resolve_codecs

THUMB_WIDTH = 360
CROP_COLOURS = [(255, 64, 64), (64, 160, 255), (255, 200, 0), (80, 220, 120)]
BISECTION_STEPS = 14


def match_size(codec: Codec, rgb: np.ndarray, target_bytes: int) -> tuple[float, bytes, bool, int]:
    """(setting, bytes, over_budget, encodes tried) for the largest file ≤ ``target_bytes``."""
    lo, hi = codec.range()
    tried: dict[float, bytes] = {}

    def size(s: float) -> int:
        if s not in tried:
            tried[s] = codec.encode(rgb, s)
        return len(tried[s])

    if codec.integer_setting:
        a, b = int(math.ceil(lo)), int(math.floor(hi))
        if size(a) <= target_bytes:
            while a < b:  # invariant: size(a) ≤ target
                mid = (a + b + 1) // 2
                if size(mid) <= target_bytes:
                    a = mid
                else:
                    b = mid - 1
    else:
        a, b = float(lo), float(hi)
        if size(a) <= target_bytes and size(b) > target_bytes:
            for _ in range(BISECTION_STEPS):
                mid = (a + b) / 2
                if size(mid) <= target_bytes:
                    a = mid
                else:
                    b = mid
    # file sizes are not perfectly monotone in the knob: choose among everything encoded
    fits = [(len(d), s) for s, d in tried.items() if len(d) <= target_bytes]
    if fits:
        _, best = max(fits)
        return best, tried[best], False, len(tried)
    _, best = min((len(d), s) for s, d in tried.items())
    return best, tried[best], True, len(tried)


def _detail_map(rgb: np.ndarray) -> np.ndarray:
    y = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    gy, gx = np.gradient(y)
    return gx * gx + gy * gy


def auto_crops(rgb: np.ndarray, size: int | None = None) -> list[tuple[int, int, int]]:
    """Two (x, y, size) windows: the most detailed one and a non-overlapping one of middling detail."""
    h, w = rgb.shape[:2]
    size = size or int(np.clip(min(h, w) // 8, 16, 96))  # ~1/8 of the image: enlarged 2-3x in the grid
    size = min(size, h, w)
    energy = _detail_map(rgb)
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    step = max(1, size // 4)
    candidates = []
    for y in range(0, h - size + 1, step):
        for x in range(0, w - size + 1, step):
            s = integral[y + size, x + size] - integral[y, x + size] - integral[y + size, x] + integral[y, x]
            candidates.append((float(s), x, y))
    candidates.sort(reverse=True)
    _, x0, y0 = candidates[0]
    crops = [(x0, y0, size)]
    others = [c for c in candidates if abs(c[1] - x0) >= size or abs(c[2] - y0) >= size]
    if others:
        _, x1, y1 = others[len(others) // 2]
        crops.append((x1, y1, size))
    return crops


def parse_crop(text: str) -> tuple[int, int, int]:
    try:
        x, y, s = (int(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--crop wants X,Y,SIZE in pixels, got {text!r}") from None
    if x < 0 or y < 0 or s < 4:
        raise UserError(f"--crop {text}: X and Y must be ≥ 0 and SIZE ≥ 4")
    return x, y, s


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _panel(rgb: np.ndarray, crops, title: str, lines: list[str], warn: bool, font, small) -> Image.Image:
    h, w = rgb.shape[:2]
    tw = min(THUMB_WIDTH, w)
    scale = tw / w
    th = max(1, round(h * scale))
    thumb = Image.fromarray(rgb).resize((tw, th), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(thumb)
    for i, (x, y, s) in enumerate(crops):
        box = [x * scale, y * scale, (x + s) * scale - 1, (y + s) * scale - 1]
        draw.rectangle(box, outline=CROP_COLOURS[i % len(CROP_COLOURS)], width=2)
    gap = 6
    cw = (tw - gap * (len(crops) - 1)) // max(1, len(crops))
    text_h = 20 + 17 * len(lines)
    panel = Image.new("RGB", (tw, th + gap + cw + gap + text_h), "white")
    panel.paste(thumb, (0, 0))
    d = ImageDraw.Draw(panel)
    for i, (x, y, s) in enumerate(crops):
        crop = Image.fromarray(rgb[y : y + s, x : x + s]).resize((cw, cw), Image.Resampling.NEAREST)
        left = i * (cw + gap)
        panel.paste(crop, (left, th + gap))
        d.rectangle(
            [left, th + gap, left + cw - 1, th + gap + cw - 1],
            outline=CROP_COLOURS[i % len(CROP_COLOURS)],
            width=2,
        )
    ty = th + gap + cw + gap
    d.text((0, ty), title, fill=(0, 0, 0), font=font)
    for j, line in enumerate(lines):
        d.text(
            (0, ty + 20 + 17 * j),
            line,
            fill=(200, 0, 0) if warn and j == len(lines) - 1 else (60, 60, 60),
            font=small,
        )
    return panel


def render_grid(panels: Sequence[Image.Image], heading: str, columns: int = 4) -> Image.Image:
    columns = max(1, min(columns, len(panels)))
    rows = math.ceil(len(panels) / columns)
    pw = max(p.width for p in panels)
    ph = max(p.height for p in panels)
    margin, head = 12, 34
    grid = Image.new("RGB", (margin + columns * (pw + margin), head + rows * (ph + margin)), "white")
    for i, p in enumerate(panels):
        r, c = divmod(i, columns)
        grid.paste(p, (margin + c * (pw + margin), head + r * (ph + margin)))
    ImageDraw.Draw(grid).text((margin, 8), heading, fill=(0, 0, 0), font=_font(18))
    return grid


def compare_image(
    image: str | Path,
    codecs: Sequence[Codec],
    *,
    target_bytes: int,
    output: str | Path,
    crops: Sequence[tuple[int, int, int]] | None = None,
    columns: int = 4,
) -> dict:
    """Write the grid PNG and a JSON sidecar (same name, ``.json``); return what the sidecar holds."""
    if target_bytes < 1:
        raise UserError("the byte budget must be at least 1 byte")
    output = Path(output)
    rgb = load_rgb_array(image)
    h, w = rgb.shape[:2]
    crops = list(crops) if crops else auto_crops(rgb)
    for x, y, s in crops:
        if x + s > w or y + s > h:
            raise UserError(f"crop {x},{y},{s} does not fit in the {w}×{h} image")
    font, small = _font(15), _font(13)
    panels = [_panel(rgb, crops, "original", [f"{w}x{h} pixels", ""], False, font, small)]
    info: list[dict] = []
    shared: dict[str, tuple[float, bytes, bool]] = {}
    for codec in codecs:
        if codec.lossless:
            continue
        if codec.encode_key not in shared:
            setting, data, over, _ = match_size(codec, rgb, target_bytes)
            shared[codec.encode_key] = (setting, data, over)
        setting, data, over = shared[codec.encode_key]
        out = codec.decode(data)
        p = psnr(rgb, out)
        entry = {
            "codec": codec.name,
            "label": codec.label,
            "setting": setting,
            "bytes": len(data),
            "bpp": round(8 * len(data) / (h * w), 4),
            "psnr": round(p, 3) if math.isfinite(p) else None,
            "over_budget": over,
        }
        info.append(entry)
        lines = [
            f"{codec.format_setting(setting)} · {len(data):,} B · {entry['bpp']:.3f} bpp",
            f"PSNR {p:.2f} dB",
        ]
        if over:
            lines.append("over budget: smallest setting")
        panels.append(_panel(out, crops, codec.label, lines, over, font, small))
    if not info:
        raise UserError("no lossy codec to compare (PNG cannot meet a byte budget)")
    # ASCII only in the picture: Pillow's built-in font has no glyphs for ≤ or ×
    heading = (
        f"{Path(image).name}: every codec at <= {target_bytes:,} bytes "
        f"({8 * target_bytes / (h * w):.3f} bpp); crops enlarged x{_zoom(crops, panels[0].width)}"
    )
    grid = render_grid(panels, heading, columns)
    save_image(output, np.asarray(grid))
    result = {
        "image": str(image),
        "width": w,
        "height": h,
        "target_bytes": target_bytes,
        "target_bpp": round(8 * target_bytes / (h * w), 4),
        "crops": [list(c) for c in crops],
        "panels": info,
        "grid": str(output),
    }
    with atomic_output(output.with_suffix(".json"), "w") as fh:
        json.dump(result, fh, indent=2)
    return result


def _zoom(crops, width: int) -> str:
    gap = 6
    cw = (width - gap * (len(crops) - 1)) // max(1, len(crops))
    return f"{cw / crops[0][2]:.1f}".rstrip("0").rstrip(".")


def run_compare(
    image: str | Path,
    *,
    target_bytes: int | None = None,
    target_bpp: float | None = None,
    codecs: str | None = None,
    output: str | Path | None = None,
    model: str = DEFAULT_MODEL,
    crops: Sequence[str] = (),
    log=print,
) -> dict:
    """The ``gancodec compare`` command: resolve codecs and the budget, then :func:`compare_image`."""
    image = Path(image)
    if not image.is_file():
        raise UserError(f"input file not found: {image}")
    if (target_bytes is None) == (target_bpp is None):
        raise UserError("give exactly one of --bytes or --bpp")
    names = parse_codec_list(codecs)
    if "png" in names:
        names.remove("png")
        if codecs:  # asked for by name: say why it is missing from the grid
            log("skipped png: lossless with one setting, it cannot meet a byte budget")
    ready, skipped = resolve_codecs(names, model)
    for name, reason in skipped.items():
        log(f"skipped {name}: {reason}")
    if not ready:
        raise UserError("none of the requested codecs can run here")
    if target_bytes is None:
        from ..imageio import open_image

        with open_image(image) as img:
            w, h = img.size
        if not (target_bpp > 0 and math.isfinite(target_bpp)):
            raise UserError("--bpp must be a positive number")
        target_bytes = max(1, int(target_bpp * w * h / 8))
    out = Path(output) if output else Path(f"{image.stem}-compare-{target_bytes}B.png")
    result = compare_image(
        image, ready, target_bytes=target_bytes, output=out, crops=[parse_crop(c) for c in crops] or None
    )
    result["skipped"] = skipped
    return result
