"""Would a GAN image anchored to the MSE decoder keep its PSNR gap as the MSE decoder improves?

    python benchmarks/texture_transplant.py --data ../shared/data/kodak \
        [--model hific-lite] [--base hific-lite-v0.10] [--qualities 1 2] [--threads 1]

An experiment for issue 14, with no training: ``--model`` and ``--base`` must share the bitstream
and the GAN decoder (v0.11 and v0.12 retrained only v0.10's MSE decoder). Every image is
compressed at each quality by both (the files must be the same size); the texture that the GAN
decoder adds over ``--base``'s MSE decoder, ``gan − mse_base``, is then put onto ``--model``'s
MSE image: ``mse + (gan − mse_base)``, rounded and clipped to 8 bits. Prints, per quality, the
mean PSNR of the MSE, GAN and transplanted images, the two gaps to the MSE decoder, and the
mean HF ratio and per-image patch KID of both texture images (the bench's measures).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder of images")
    ap.add_argument("--model", default="hific-lite")
    ap.add_argument("--base", default="hific-lite-v0.10")
    ap.add_argument("--qualities", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from decoder_gain import same_bitstream_files  # benchmarks/, this script's folder

    import gancodec
    from gancodec.evaluation import realism
    from gancodec.metrics import psnr

    model, base = gancodec.load_model(args.model), gancodec.load_model(args.base)
    keys = ("psnr_mse", "psnr_gan", "psnr_moved", "hf_gan", "hf_moved", "kid_gan", "kid_moved")
    rows: dict[int, dict[str, list[float]]] = {q: {k: [] for k in keys} for q in args.qualities}
    for rgb, files in same_bitstream_files(args.data, args.qualities, args.base, base, {args.model: model}):
        features = realism.patch_features(rgb)
        for q, (data_base, mine) in files.items():
            data = mine[args.model]
            mse = model.decompress(data, decoder="mse")
            gan = model.decompress(data, decoder="gan")
            texture = gan.astype(np.int16) - base.decompress(data_base, decoder="mse").astype(np.int16)
            moved = np.clip(mse.astype(np.int16) + texture, 0, 255).astype(np.uint8)
            r = rows[q]
            r["psnr_mse"].append(psnr(rgb, mse))
            r["psnr_gan"].append(psnr(rgb, gan))
            r["psnr_moved"].append(psnr(rgb, moved))
            r["hf_gan"].append(realism.hf_ratio(rgb, gan))
            r["hf_moved"].append(realism.hf_ratio(rgb, moved))
            r["kid_gan"].append(realism.kid(features, realism.patch_features(gan)))
            r["kid_moved"].append(realism.kid(features, realism.patch_features(moved)))
    print("| quality | PSNR dB: MSE / GAN / MSE + texture | gap: GAN / moved | HF: GAN / moved "
          "| patch KID: GAN / moved | images |")
    print("|---|---|---|---|---|---|")
    for q, r in rows.items():
        m = {k: float(np.mean(v)) for k, v in r.items()}
        print(f"| {q} | {m['psnr_mse']:.2f} / {m['psnr_gan']:.2f} / {m['psnr_moved']:.2f} "
              f"| {m['psnr_mse'] - m['psnr_gan']:.2f} / {m['psnr_mse'] - m['psnr_moved']:.2f} "
              f"| {m['hf_gan']:.3f} / {m['hf_moved']:.3f} | {m['kid_gan']:.2f} / {m['kid_moved']:.2f} "
              f"| {len(r['psnr_mse'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
