"""How far ``--realism`` blends stay between the MSE and GAN decoders, for one or more models.

    python benchmarks/realism_blend.py --models hific-lite MODEL_DIR [--image PATH] [--crop Y0 Y1 X0 X1]
        [--quality 1] [--realism 0.25 0.5 0.75] [--grid OUT.jpg] [--time N]

Weight interpolation is not pixel interpolation: each blend is checked against the two
decoders' pixels. Prints one JSON line per model and realism: PSNR against the original, the
share of values within ±1 of the two decoders' interval, and the mean distance outside it.
Without ``--image`` the test suite's astronaut crop (scikit-image) is used. ``--grid`` saves the
crop, the first model's MSE decoding and every model's GAN decoding side by side (×2, nearest).
``--time N`` also prints, per model, the best of N decode times of the crop with each decoder
and at the first ``--realism`` (a pixel blend runs both decoders).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["hific-lite"])
    p.add_argument("--image", default=None)
    p.add_argument("--crop", type=int, nargs=4, default=[96, 352, 128, 384], metavar=("Y0", "Y1", "X0", "X1"))
    p.add_argument("--quality", type=float, default=1.0)
    p.add_argument("--realism", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    p.add_argument("--grid", default=None, help="save original | MSE | each model's GAN decoding here")
    p.add_argument("--time", type=int, default=0, metavar="N", help="best of N decode times per decoder")
    args = p.parse_args()

    import gancodec
    from gancodec.imageio import load_rgb_array
    from gancodec.metrics import psnr

    if args.image:
        full = load_rgb_array(args.image)
    else:
        from skimage import data

        full = data.astronaut()
    y0, y1, x0, x1 = args.crop
    x = np.ascontiguousarray(full[y0:y1, x0:x1])
    panels = [x]
    for name in args.models:
        codec = gancodec.load_model(name)
        blob = codec.compress(x, quality=args.quality)
        mse, gan = (codec.decompress(blob, decoder=d).astype(int) for d in ("mse", "gan"))
        if len(panels) == 1:
            panels.append(mse.astype(np.uint8))
        panels.append(gan.astype(np.uint8))
        lo, hi = np.minimum(mse, gan), np.maximum(mse, gan)
        for r in (0.0, *args.realism, 1.0):
            out = codec.decompress(blob, realism=r).astype(int)
            print(json.dumps({
                "model": name, "version": codec.version, "realism": r,
                "psnr": round(psnr(x, out.astype(np.uint8)), 2),
                "inside": round(float(np.mean((out >= lo - 1) & (out <= hi + 1))), 3),
                "mean_outside": round(float(np.abs(out - np.clip(out, lo, hi)).mean()), 2),
            }), flush=True)
        if args.time:
            seconds = {}
            for label, how in (("mse", {"decoder": "mse"}), ("gan", {"decoder": "gan"}),
                               (f"realism {args.realism[0]}", {"realism": args.realism[0]})):
                best = float("inf")
                for _ in range(args.time):
                    t = time.perf_counter()
                    codec.decompress(blob, **how)
                    best = min(best, time.perf_counter() - t)
                seconds[label] = round(best, 3)
            print(json.dumps({"model": name, "version": codec.version, "decode_seconds": seconds}), flush=True)
    if args.grid:
        from PIL import Image

        grid = np.concatenate(panels, axis=1).repeat(2, axis=0).repeat(2, axis=1)
        Image.fromarray(grid).save(args.grid, quality=90)


if __name__ == "__main__":
    main()
