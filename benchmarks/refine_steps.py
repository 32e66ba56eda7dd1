"""How much `compress --refine N` gains with N: real file sizes and decoded PSNR per step count.

    python benchmarks/refine_steps.py --data ../shared/data/bsds500/test --limit 6 \
        --steps 0 10 30 50 --qualities 1 4 [--learning-rates 0.005 0.02] [--model hific-lite] \
        [--threads 2] [--json out.json]

For every image (sorted by name, the first ``--limit``), quality and step count: bytes, bpp,
PSNR of the bit-exact MSE decoder, the rate–distortion cost bpp + λ(q)·255²·MSE (the loss the
refinement lowers) and encode seconds. Prints the mean change against 0 steps per quality.
``--learning-rates`` runs every step count at each of several Adam step sizes (default: the
shipped ``gancodec.refine.LEARNING_RATE``).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder of images")
    ap.add_argument("--limit", type=int, default=6)
    ap.add_argument("--steps", type=int, nargs="+", default=[0, 10, 30, 50])
    ap.add_argument("--qualities", type=float, nargs="+", default=[1, 4])
    ap.add_argument("--learning-rates", type=float, nargs="+", default=None)
    ap.add_argument("--model", default="hific-lite")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import gancodec
    import gancodec.codec
    from gancodec.imageio import load_rgb_array
    from gancodec.models.codec import lambda_for_quality

    codec = gancodec.load_model(args.model)
    paths = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[: args.limit]
    steps = sorted(set([0, *args.steps]))
    shipped_refine = gancodec.codec.refine_latent
    rates = args.learning_rates or [gancodec.refine.LEARNING_RATE]
    variants = [(0, rates[0])] + [(n, lr) for n in steps[1:] for lr in rates]
    records = []
    for path in paths:
        rgb = load_rgb_array(path)
        for q in args.qualities:
            lam = float(lambda_for_quality(codec.config.lambdas, torch.tensor([q], dtype=torch.float64)))
            for n, lr in variants:
                # the step size is not part of the API: the benchmark swaps it into Codec.compress's refiner
                gancodec.codec.refine_latent = functools.partial(shipped_refine, learning_rate=lr)
                t = time.perf_counter()
                data = codec.compress(rgb, quality=q, refine=n)
                seconds = time.perf_counter() - t
                out = codec.decompress(data)
                mse = float(np.mean((out.astype(np.float64) - rgb) ** 2)) / 255**2
                bpp = 8 * len(data) / (rgb.shape[0] * rgb.shape[1])
                rec = {"image": path.name, "quality": q, "steps": n, "learning_rate": lr,
                       "bytes": len(data), "bpp": bpp,
                       "psnr": 10 * math.log10(1 / mse), "rd_cost": bpp + lam * 255**2 * mse, "encode_s": seconds}
                records.append(rec)
                print(json.dumps(rec), flush=True)
    print("\nmean against 0 steps | quality | steps | learning rate | bytes | PSNR dB | RD cost | encode s")
    for q in args.qualities:
        base = {r["image"]: r for r in records if r["quality"] == q and r["steps"] == 0}
        for n, lr in variants[1:]:
            rows = [(r, base[r["image"]]) for r in records
                    if r["quality"] == q and r["steps"] == n and r["learning_rate"] == lr]
            d_bytes = np.mean([100 * (r["bytes"] / b["bytes"] - 1) for r, b in rows])
            d_psnr = np.mean([r["psnr"] - b["psnr"] for r, b in rows])
            d_cost = np.mean([100 * (r["rd_cost"] / b["rd_cost"] - 1) for r, b in rows])
            secs = np.mean([r["encode_s"] for r, _ in rows])
            print(f"| {q:g} | {n} | {lr:g} | {d_bytes:+.1f} % | {d_psnr:+.3f} | {d_cost:+.1f} % | {secs:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
