"""Seconds to fill one hole in a 768×512 photo (issue 12's speed target: < 2 s on 2 threads).

    python benchmarks/inpaint_speed.py [--image ../shared/data/kodak/kodim01.png] [--area 0.2] [--threads 2]

One box of ``--area`` of the image in the middle and one set of thick strokes of about that area,
each filled with ``inpaint-lite`` after a warm-up call; the median of 3 runs is printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", default="../shared/data/kodak/kodim01.png")
    p.add_argument("--area", type=float, default=0.2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--realism", type=float, default=1.0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import gancodec
    from gancodec.imageio import load_rgb_array
    from gancodec.inpaint_masks import random_mask

    img = load_rgb_array(args.image)
    h, w = img.shape[:2]
    box = np.zeros((h, w), dtype=bool)
    bh, bw = int(h * args.area**0.5), int(w * args.area**0.5)
    box[(h - bh) // 2:(h + bh) // 2, (w - bw) // 2:(w + bw) // 2] = True
    masks = {"box": box, "thick": random_mask(h, w, np.random.default_rng(0), kind="thick")}
    gancodec.inpaint(img, box, realism=args.realism)  # warm-up: loads the model
    for kind, mask in masks.items():
        times = []
        for _ in range(3):
            t = time.perf_counter()
            gancodec.inpaint(img, mask, realism=args.realism)
            times.append(time.perf_counter() - t)
        print(json.dumps({"image": args.image, "size": [h, w], "mask": kind, "hole": round(float(mask.mean()), 3),
                          "threads": args.threads, "seconds": round(statistics.median(times), 2)}))


if __name__ == "__main__":
    main()
