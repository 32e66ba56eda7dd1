"""Entropy-model ablation: codec model folders that share their transforms, compared on the bytes
they really write and the pixels their MSE decoder gives back.

    python benchmarks/entropy_ablation.py --models gancodec/zoo/weights/hific-lite-v0.6 runs/m-hyper runs/m-ctx \
        --data ../shared/data/kodak [--qualities 1 2 3 4 5 6] [--limit N] [--threads 1] [--json out.json] \
        [--curves runs/entropy-hyper runs/entropy-ctx --plot curves.png]

For every model and quality: mean bpp (from the ``.gcz`` size, header included), the share of
the bytes in the y stream, mean PSNR (RGB, MSE decoder, bit-exact decode), and mean encode /
decode seconds; then each model's BD-rate (PSNR, pchip) against the first model. Every file is
decoded through the real bitstream. ``--curves`` plots the training runs' logged rate (y bits
per pixel at a random quality, mean of every 200 steps) against the step, one line per run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=[], help="codec model folders or names; the first is the anchor")
    ap.add_argument("--data", default=None, help="folder of test images (with --models)")
    ap.add_argument("--qualities", type=float, nargs="+", default=[1, 2, 3, 4, 5, 6])
    ap.add_argument("--limit", type=int, default=None, help="only the first N images")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--curves", nargs="*", default=[], help="entropy-stage run directories to plot")
    ap.add_argument("--plot", default="entropy-ablation.png", help="where --curves draws")
    args = ap.parse_args()
    if args.curves:
        plot_curves([Path(c) for c in args.curves], Path(args.plot))
    if not args.models:
        return 0
    if args.data is None:
        ap.error("--models needs --data")
    torch.set_num_threads(args.threads)

    import gancodec
    from gancodec.bitstream import Container
    from gancodec.evaluation.bdrate import bd_rate
    from gancodec.imageio import load_rgb_array
    from gancodec.metrics import psnr
    from gancodec.training.data import list_images

    images = list_images([args.data])[: args.limit]
    rows = []
    for name in args.models:
        codec = gancodec.load_model(name)
        for q in args.qualities:
            bpp, y_share, quality, enc_s, dec_s = [], [], [], [], []
            for path in images:
                rgb = load_rgb_array(path)
                t = time.perf_counter()
                data = codec.compress(rgb, quality=q)
                enc_s.append(time.perf_counter() - t)
                t = time.perf_counter()
                out = codec.decompress(data)
                dec_s.append(time.perf_counter() - t)
                streams = Container.from_bytes(data).streams
                bpp.append(8 * len(data) / (rgb.shape[0] * rgb.shape[1]))
                y_share.append(len(streams[2]) / len(data))
                quality.append(psnr(rgb, out))
            row = {"model": name, "context": codec.config.context, "quality": q, "bpp": float(np.mean(bpp)),
                   "y_share": float(np.mean(y_share)), "psnr": float(np.mean(quality)),
                   "encode_s": float(np.mean(enc_s)), "decode_s": float(np.mean(dec_s))}
            rows.append(row)
            print(json.dumps(row), flush=True)
    anchor = [r for r in rows if r["model"] == args.models[0]]
    print("\n| model | context | BD-rate vs first (PSNR) | bpp at q1 / q6 | PSNR at q1 / q6 | encode s | decode s |")
    print("|---|---|---|---|---|---|---|")
    summary = {}
    for name in args.models:
        mine = [r for r in rows if r["model"] == name]
        bd = bd_rate([r["bpp"] for r in anchor], [r["psnr"] for r in anchor],
                     [r["bpp"] for r in mine], [r["psnr"] for r in mine])
        summary[name] = bd
        print(f"| {name} | {mine[0]['context']} | {bd:+.2f} % | {mine[0]['bpp']:.4f} / {mine[-1]['bpp']:.4f} | "
              f"{mine[0]['psnr']:.2f} / {mine[-1]['psnr']:.2f} | {np.mean([r['encode_s'] for r in mine]):.2f} | "
              f"{np.mean([r['decode_s'] for r in mine]):.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "bd_rate_vs_first": summary,
                                               "images": [str(p) for p in images]}, indent=2))
    return 0


def plot_curves(runs: list[Path], out: Path) -> None:
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for run in runs:
        by_step = {}
        with open(run / "log.csv") as fh:
            for row in csv.DictReader(fh):  # a resumed run logs some steps twice: the last one counts
                by_step[int(row["step"])] = float(row["y_bpp"])
        steps = np.array(sorted(by_step))
        rate = np.array([by_step[k] for k in steps])
        bins = (steps - 1) // 200  # (0, 200], (200, 400], ...; an incomplete last bin is dropped
        full = [b for b in np.unique(bins) if (bins == b).sum() * 2 >= (bins == 0).sum()]
        xs = [200 * (b + 1) for b in full]
        ys = [rate[bins == b].mean() for b in full]
        ax.plot(xs, ys, label=run.name)
    ax.set_xlabel("step")
    ax.set_ylabel("y bits per pixel (training batches)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"curves: {out}")


if __name__ == "__main__":
    sys.exit(main())
