"""How much the classical codecs gain at their slowest presets: WebP ``method`` 4 (the bench's
fixed choice, Pillow's default) against 6, JPEG XL ``effort`` 7 (the bench's, libjxl's default)
against 9, each beside learned-codec curves from `gancodec bench` runs. `compress --refine` is our
slow preset; this puts it beside theirs.

    python benchmarks/classical_effort.py --data ../shared/data/kodak \
        --against bench-kodak-plain:gancodec bench-kodak-refine50:gancodec [--jobs 2]

Every image at every default setting of the bench's WebP and JPEG XL adapters, with the bench's
metrics (PSNR, MS-SSIM on the uint8 RGB arrays); curves are means over the images per setting,
MS-SSIM in dB of the mean as the bench computes it. Prints each curve and the BD-rate (pchip, %)
of every curve against every other on PSNR and on MS-SSIM (dB). The ``--against`` runs must
cover the same images (checked by name and content hash).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from bd_between_runs import print_bd_tables  # the sibling script (benchmarks/ is on sys.path)
from PIL import Image

from gancodec.evaluation.bdrate import ms_ssim_db
from gancodec.evaluation.bench import list_images
from gancodec.evaluation.codecs import JPEGXL, WebP
from gancodec.evaluation.results import load_summary
from gancodec.imageio import load_rgb_array
from gancodec.metrics import ms_ssim, psnr

# name: (Pillow format, the adapter whose settings sweep it, fixed parameters)
VARIANTS = {
    "webp-method4": ("WEBP", WebP, {"method": 4}),
    "webp-method6": ("WEBP", WebP, {"method": 6}),
    "jxl-effort7": ("JXL", JPEGXL, {"effort": 7, "num_threads": 1}),
    "jxl-effort9": ("JXL", JPEGXL, {"effort": 9, "num_threads": 1}),
}


def _measure(path: str) -> list[dict]:
    import pillow_jxl  # noqa: F401  (registers JPEG XL with Pillow in this worker)

    rgb = load_rgb_array(path)
    out = []
    for name, (fmt, adapter, fixed) in VARIANTS.items():
        for setting in adapter.default_settings:
            buf = io.BytesIO()
            Image.fromarray(rgb).save(buf, format=fmt, quality=int(setting), **fixed)
            decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
            out.append({"variant": name, "setting": setting, "bpp": 8 * buf.tell() / (rgb.shape[0] * rgb.shape[1]),
                        "psnr": psnr(rgb, decoded), "ms_ssim": ms_ssim(rgb, decoded)})
    return out


def _run_curve(spec: str, images: set[tuple[str, str]]) -> list[dict]:
    run, _, codec = spec.rpartition(":")
    journal = {(r["image"], r["image_sha"]) for r in map(json.loads, Path(run, "results.jsonl").open())
               if r["codec"] == codec}
    if journal != images:
        raise SystemExit(f"{spec} covers other images than --data")
    rows = [r for r in load_summary(run)["rows"] if r["codec"] == codec and r.get("complete", True)]
    return sorted(rows, key=lambda r: r["bpp"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--against", nargs="*", default=[], metavar="RUN_DIR:CODEC")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    entries = list_images(args.data)
    images = {(e.name, e.sha) for e in entries}
    curves = {spec: _run_curve(spec, images) for spec in args.against}
    with ProcessPoolExecutor(args.jobs) as pool:
        records = [r for per_image in pool.map(_measure, [str(e.path) for e in entries]) for r in per_image]
    for name, (_, adapter, _) in VARIANTS.items():
        rows = []
        for setting in adapter.default_settings:
            mine = [r for r in records if r["variant"] == name and r["setting"] == setting]
            mean_ms_ssim = float(np.mean([r["ms_ssim"] for r in mine]))
            rows.append({"bpp": float(np.mean([r["bpp"] for r in mine])),
                         "psnr": float(np.mean([r["psnr"] for r in mine])), "ms_ssim_db": ms_ssim_db(mean_ms_ssim)})
        curves[name] = sorted(rows, key=lambda r: r["bpp"])
    for name, rows in curves.items():
        print(f"{name}: bpp/PSNR " + ", ".join(f"{r['bpp']:.4f}/{r['psnr']:.2f}" for r in rows))
    print_bd_tables(curves)
    return 0


if __name__ == "__main__":
    sys.exit(main())
