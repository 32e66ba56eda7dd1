"""Benchmark of inpainting on Kodak: ours (fidelity, GAN) against OpenCV Telea / Navier–Stokes and
scikit-image's biharmonic fill, per hole-area bucket and per mask kind.

    python benchmarks/inpaint.py --model inpaint-lite -o bench-inpaint                 # everything
    python benchmarks/inpaint.py --model FOLDER --images 4 --kinds box thin -o /tmp/b  # a quick run

Masks: :func:`gancodec.inpaint_masks.eval_masks`, seeded per image (seed + image index), one mask
per kind (thin strokes, thick strokes, boxes, scratches) and area bucket (0–10 … 40–50 %;
scratches only up to 20 %). Never trained on: Kodak is a test set.

Measures, all on 8-bit RGB:

* PSNR over the hole's pixels and over the whole image;
* MS-SSIM over the whole image and over the hole's bounding box (SSIM where that box is under
  161 px on a side, :func:`gancodec.metrics.ms_ssim`);
* realism of the fill: patch KID of :mod:`gancodec.evaluation.realism` between the original's and
  the result's 32×32 patches that are at least a quarter hole, pooled over every image of a
  group (one patch set per method and bucket, and per method and kind: per image there are too
  few patches), and the high-frequency ratio restricted to the hole (detail energy of the fill
  over the original's there: below 1 is blur);
* seconds per image of each method (``--threads`` torch / OpenCV threads).

Biharmonic solves a sparse system per hole and takes minutes on big holes: above
``--biharmonic-max-pixels`` hole pixels it runs on a downscaled copy whose result is upscaled
and pasted into the hole (counted in ``downscaled`` in the JSON and said in the table).

Writes OUT/inpaint.json (every sample and the aggregates), OUT/inpaint.md (tables) and
OUT/grid-KIND.png (input with hole, each method, original, and zoomed crops of the hole).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter
from tqdm import tqdm

from gancodec.errors import UserError
from gancodec.evaluation.realism import HF_SIGMA, PATCH, kid, patch_features, ycbcr
from gancodec.imageio import IMAGE_SUFFIXES, atomic_output, load_rgb_array, save_image
from gancodec.inpaint_masks import BUCKETS, EVAL_KINDS, eval_masks
from gancodec.metrics import ms_ssim, psnr
from gancodec.visual import labelled_row, stack_rows, zoom

LABELS = {"telea": "OpenCV Telea", "ns": "OpenCV NS", "biharmonic": "biharmonic",
          "fidelity": "ours-fidelity", "gan": "ours-GAN"}
BUCKET_NAMES = [f"{int(lo * 100)}–{int(hi * 100)} %" for lo, hi in BUCKETS]


# -- methods ---------------------------------------------------------------------------------------
def opencv_fill(flag_name: str):
    import cv2

    flag = getattr(cv2, flag_name)

    def fill(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        return cv2.inpaint(np.ascontiguousarray(rgb), hole.astype(np.uint8) * 255, 3, flag)

    return fill


def biharmonic_fill(max_pixels: int, flags: dict):
    from skimage.restoration import inpaint_biharmonic

    def run(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        out = inpaint_biharmonic(rgb.astype(np.float64) / 255, hole, channel_axis=-1)
        return np.clip(out * 255 + 0.5, 0, 255).astype(np.uint8)

    def fill(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        flags["downscaled"] = False
        if hole.sum() <= max_pixels:
            return run(rgb, hole)
        flags["downscaled"] = True
        f = np.sqrt(max_pixels / hole.sum())
        h, w = hole.shape
        size = (max(8, round(w * f)), max(8, round(h * f)))
        small = np.asarray(Image.fromarray(rgb).resize(size, Image.LANCZOS))
        small_hole = np.asarray(Image.fromarray(hole.astype(np.uint8) * 255).resize(size, Image.BILINEAR)) > 0
        up = np.asarray(Image.fromarray(run(small, small_hole)).resize((w, h), Image.BICUBIC))
        out = rgb.copy()
        out[hole] = up[hole]
        return out

    return fill


def ours(model, realism: float):
    def fill(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
        return model.run(rgb, hole, realism=realism)

    return fill


# -- measures --------------------------------------------------------------------------------------
def hole_psnr(a: np.ndarray, b: np.ndarray, hole: np.ndarray) -> float:
    return psnr(a[hole], b[hole])


def bbox(hole: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(hole.any(1)), np.flatnonzero(hole.any(0))
    return rows[0], cols[0], rows[-1] + 1, cols[-1] + 1


def hole_ms_ssim(a: np.ndarray, b: np.ndarray, hole: np.ndarray) -> float:
    t, l, bt, r = bbox(hole)
    if min(bt - t, r - l) < 11:  # SSIM's window
        t, l = max(0, t - 8), max(0, l - 8)
        bt, r = min(hole.shape[0], bt + 8), min(hole.shape[1], r + 8)
    return ms_ssim(a[t:bt, l:r], b[t:bt, l:r])


def hole_patches(features: np.ndarray, hole: np.ndarray, min_cover: float = 0.25) -> np.ndarray:
    """Rows of ``patch_features`` (same centred tiling) whose patch is at least ``min_cover`` hole."""
    h, w = hole.shape
    ph, pw = h // PATCH * PATCH, w // PATCH * PATCH
    top, left = (h - ph) // 2, (w - pw) // 2
    cover = hole[top : top + ph, left : left + pw].reshape(ph // PATCH, PATCH, pw // PATCH, PATCH).mean((1, 3))
    return features[cover.ravel() >= min_cover]


def hole_hf_energy(rgb: np.ndarray, hole: np.ndarray) -> float:
    y = ycbcr(rgb)[0]
    return float(np.mean(((y - gaussian_filter(y, HF_SIGMA, mode="reflect")) ** 2)[hole]))


# -- run -------------------------------------------------------------------------------------------
def load_images(path: Path, limit: int | None) -> list[tuple[str, np.ndarray]]:
    if not path.is_dir():
        raise UserError(f"data folder not found: {path}")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not files:
        raise UserError(f"no images in {path}")
    return [(p.stem, load_rgb_array(p)) for p in files]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default="../shared/data/kodak")
    ap.add_argument("--model", default="inpaint-lite", help="zoo name or model folder")
    ap.add_argument("--methods", nargs="+", default=list(LABELS), choices=list(LABELS))
    ap.add_argument("--images", type=int, default=None, help="only the first N images")
    ap.add_argument("--kinds", nargs="+", default=list(EVAL_KINDS), choices=list(EVAL_KINDS))
    ap.add_argument("--buckets", nargs="+", type=int, default=list(range(len(BUCKETS))),
                    help="bucket indices 0..4 (0–10 %% .. 40–50 %%)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--biharmonic-max-pixels", type=int, default=20000,
                    help="bigger holes are filled by biharmonic on a downscaled copy")
    ap.add_argument("--grid-image", type=int, default=0, help="index of the image shown in the grids")
    ap.add_argument("--grid-bucket", type=int, default=1, help="bucket shown in the grids")
    ap.add_argument("--no-ms-ssim", action="store_true", help="skip MS-SSIM (most of the run time of a quick run)")
    ap.add_argument("-o", "--out", default="bench-inpaint")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = load_images(Path(args.data), args.images)
    methods, bih_flags = {}, {}
    for name in args.methods:
        if name in ("telea", "ns"):
            import cv2

            cv2.setNumThreads(args.threads)
            methods[name] = opencv_fill("INPAINT_TELEA" if name == "telea" else "INPAINT_NS")
        elif name == "biharmonic":
            methods[name] = biharmonic_fill(args.biharmonic_max_pixels, bih_flags)
    if {"fidelity", "gan"} & set(args.methods):
        from gancodec.zoo import load_inpainter

        model = load_inpainter(args.model)
        if "fidelity" in args.methods:
            methods["fidelity"] = ours(model, 0.0)
        if "gan" in args.methods and "gan" in model.weights:
            methods["gan"] = ours(model, 1.0)
        # warm-up: first-call allocations are not the method's speed
        model.run(images[0][1][:64, :64], np.pad(np.ones((8, 8), bool), 28))

    samples, feats, nan = [], defaultdict(lambda: ([], [])), float("nan")
    grids: dict[str, list[tuple[str, np.ndarray]]] = {}
    for idx, (name, rgb) in enumerate(tqdm(images, desc="images")):
        h, w = rgb.shape[:2]
        ref_feats = patch_features(rgb)
        ref_hf = {}
        for kind, b, hole in eval_masks(h, w, kinds=tuple(args.kinds), seed=args.seed + idx):
            if b not in args.buckets:
                continue
            ref_hf_k = ref_hf.setdefault((kind, b), hole_hf_energy(rgb, hole))
            ref_p = hole_patches(ref_feats, hole)
            shown = idx == args.grid_image and b == args.grid_bucket
            if shown:
                grids[kind] = [("input", np.where(hole[..., None], np.uint8(255), rgb))]
            for m, fill in methods.items():
                t0 = time.perf_counter()
                res = fill(rgb, hole)
                sec = time.perf_counter() - t0
                if m in ("fidelity", "gan"):
                    assert np.array_equal(res[~hole], rgb[~hole]), f"{m} changed pixels outside the hole"
                else:  # the baselines are judged on their fill alone, pasted as ours is
                    res = np.where(hole[..., None], res, rgb)
                test_p = hole_patches(patch_features(res), hole)
                for key in ((m, "bucket", b), (m, "kind", kind)):
                    feats[key][0].append(ref_p)
                    feats[key][1].append(test_p)
                samples.append({
                    "image": name, "kind": kind, "bucket": b, "area": round(float(hole.mean()), 4), "method": m,
                    "psnr_hole": hole_psnr(rgb, res, hole), "psnr": psnr(rgb, res),
                    "ms_ssim": nan if args.no_ms_ssim else ms_ssim(rgb, res),
                    "ms_ssim_hole": nan if args.no_ms_ssim else hole_ms_ssim(rgb, res, hole),
                    "hf_ratio_hole": (hole_hf_energy(res, hole) + 1e-2) / (ref_hf_k + 1e-2),
                    "seconds": sec, "downscaled": bool(bih_flags.get("downscaled")) if m == "biharmonic" else False,
                })
                if shown:
                    grids[kind].append((LABELS[m], res))
            if shown:
                grids[kind].append(("original", rgb))
                write_grid(out / f"grid-{kind}.png", grids[kind], hole)

    summary = aggregate(samples, feats)
    with atomic_output(out / "inpaint.json", "w") as fh:
        json.dump({"data": str(args.data), "model": args.model, "seed": args.seed, "threads": args.threads,
                   "biharmonic_max_pixels": args.biharmonic_max_pixels, "summary": summary, "samples": samples},
                  fh, indent=1)
    table = markdown(summary, list(methods), args)
    with atomic_output(out / "inpaint.md", "w") as fh:
        fh.write(table)
    print(table)
    return 0


def aggregate(samples: list[dict], feats) -> dict:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for s in samples:
        groups[(s["method"], "bucket", s["bucket"])].append(s)
        groups[(s["method"], "kind", s["kind"])].append(s)
    summary: dict[str, dict] = defaultdict(dict)
    for (m, axis, key), rows in groups.items():
        ref = np.concatenate(feats[(m, axis, key)][0])
        test = np.concatenate(feats[(m, axis, key)][1])
        finite = [r["psnr_hole"] for r in rows if np.isfinite(r["psnr_hole"])]
        summary[m][f"{axis}:{key}"] = {
            "n": len(rows),
            "psnr_hole": float(np.mean(finite)) if finite else float("nan"),
            "psnr": float(np.mean([r["psnr"] for r in rows])),
            "ms_ssim": float(np.mean([r["ms_ssim"] for r in rows])),
            "ms_ssim_hole": float(np.mean([r["ms_ssim_hole"] for r in rows])),
            "hf_ratio_hole": float(np.mean([r["hf_ratio_hole"] for r in rows])),
            "kid_hole": kid(ref, test) if len(ref) >= 2 and len(test) >= 2 else float("nan"),
            "patches": int(len(ref)),
            "seconds": float(np.mean([r["seconds"] for r in rows])),
            "downscaled": int(sum(r["downscaled"] for r in rows)),
        }
    return summary


def markdown(summary: dict, methods: list[str], args) -> str:
    def table(axis: str, keys: list, names: list[str], field: str, fmt: str) -> str:
        head = "| method | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
        rows = []
        for m in methods:
            cells = []
            for k in keys:
                v = summary.get(m, {}).get(f"{axis}:{k}")
                cells.append(format(v[field], fmt) if v else "–")
            rows.append(f"| {LABELS[m]} | " + " | ".join(cells) + " |")
        return head + "\n".join(rows) + "\n"

    buckets = sorted(args.buckets)
    bnames = [BUCKET_NAMES[b] for b in buckets]
    parts = [f"Kodak, {args.images or 'all'} images, masks seeded from {args.seed}, {args.threads} threads.\n"]
    for field, title, fmt in (
        ("psnr_hole", "PSNR over the hole (dB)", ".2f"), ("psnr", "PSNR, whole image (dB)", ".2f"),
        ("ms_ssim_hole", "MS-SSIM over the hole's bounding box", ".4f"), ("ms_ssim", "MS-SSIM, whole image", ".4f"),
        ("kid_hole", "patch KID of the hole's patches (pooled; lower is better)", ".3f"),
        ("hf_ratio_hole", "high-frequency ratio in the hole (1 = as detailed as the original)", ".2f"),
        ("seconds", "seconds per image", ".2f"),
    ):
        parts.append(f"\n**{title}**, per hole-area bucket\n\n" + table("bucket", buckets, bnames, field, fmt))
    for field, title, fmt in (("psnr_hole", "PSNR over the hole (dB)", ".2f"),
                              ("kid_hole", "patch KID of the hole's patches", ".3f")):
        kinds = list(args.kinds)
        parts.append(f"\n**{title}**, per mask kind\n\n" + table("kind", kinds, kinds, field, fmt))
    n_down = sum(v.get("downscaled", 0) for k, v in summary.get("biharmonic", {}).items() if k.startswith("bucket:"))
    if n_down:
        parts.append(f"\nBiharmonic ran on a downscaled copy for {n_down} holes over "
                     f"{args.biharmonic_max_pixels} pixels (result upscaled into the hole).\n")
    return "".join(parts)


def write_grid(path: Path, panels: list[tuple[str, np.ndarray]], hole: np.ndarray, width: int = 384) -> None:
    """Row 1: every panel downscaled to ``width``; row 2: the same zoomed ×2 on the hole."""
    h, w = hole.shape
    f = width / w
    small = [np.asarray(Image.fromarray(im).resize((width, round(h * f)), Image.LANCZOS)) for _, im in panels]
    t, l, b, r = bbox(hole)
    cy, cx, side = (t + b) // 2, (l + r) // 2, 96
    top, left = int(np.clip(cy - side, 0, max(h - 2 * side, 0))), int(np.clip(cx - side, 0, max(w - 2 * side, 0)))
    crop = (top, left, min(2 * side, h), min(2 * side, w))
    zooms = [zoom(im, crop, 2) for _, im in panels]
    labels = [name for name, _ in panels]
    save_image(path, stack_rows([labelled_row(small, labels), labelled_row(zooms, [f"{n} ×2" for n in labels])]))


if __name__ == "__main__":
    raise SystemExit(main())
