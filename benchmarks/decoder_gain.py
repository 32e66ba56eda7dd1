"""What a release's MSE decoder gains over another's on the same files: PSNR per quality.

    python benchmarks/decoder_gain.py --data ../shared/data/set14 --models hific-lite \
        [--base hific-lite-v0.10] [--threads 1]

For releases that share a bitstream (v0.11 and v0.12 retrained only the MSE decoder): every image
(RGB, at least 64 px a side) is compressed at qualities 1–6 with ``--base``, decoded by it, and
compressed and decoded by each of ``--models``; the files must be the same size (else the
comparison is not at equal bytes and the script stops). Prints the mean PSNR difference (dB)
per quality and over all of them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from gancodec.codec import Codec


def same_bitstream_files(
    folder: str, qualities: list[int], base_name: str, base: Codec, models: dict[str, Codec]
) -> Iterator[tuple[np.ndarray, dict[int, tuple[bytes, dict[str, bytes]]]]]:
    """Each RGB image of ``folder`` (at least 64 px a side) with, per quality, ``base``'s file and
    each of ``models``' files; stops the script if one is not the size of ``base``'s (not the
    same bitstream, so not a comparison at equal bytes)."""
    from gancodec.evaluation.bench import list_images
    from gancodec.imageio import load_rgb_array

    for entry in list_images(folder):  # the bench's image list: sorted, each file checked readable
        rgb = load_rgb_array(entry.path)
        if rgb.ndim != 3 or min(rgb.shape[:2]) < 64:
            continue
        files = {}
        for q in qualities:
            data = base.compress(rgb, quality=q)
            mine = {name: model.compress(rgb, quality=q) for name, model in models.items()}
            for name, other in mine.items():
                if len(other) != len(data):
                    raise SystemExit(f"{name} wrote {len(other)} bytes for {entry.name} at quality {q}, "
                                     f"{base_name} {len(data)}: not the same bitstream")
            files[q] = (data, mine)
        yield rgb, files


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder of images")
    ap.add_argument("--models", nargs="+", required=True, help="model names or exported folders")
    ap.add_argument("--base", default="hific-lite-v0.10")
    ap.add_argument("--qualities", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import gancodec
    from gancodec.metrics import psnr

    base = gancodec.load_model(args.base)
    models = {name: gancodec.load_model(name) for name in args.models}
    gains: dict[str, dict[int, list[float]]] = {name: {q: [] for q in args.qualities} for name in models}
    for rgb, files in same_bitstream_files(args.data, args.qualities, args.base, base, models):
        for q, (data, mine) in files.items():
            reference = psnr(rgb, base.decompress(data))
            for name, model in models.items():
                gains[name][q].append(psnr(rgb, model.decompress(mine[name])) - reference)
    for name, per_q in gains.items():
        cells = " / ".join(f"{np.mean(v):+.3f}" for v in per_q.values())
        overall = np.mean([np.mean(v) for v in per_q.values()])
        print(f"{name} against {args.base}, {len(next(iter(per_q.values())))} images: "
              f"PSNR dB at qualities {args.qualities}: {cells}; mean {overall:+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
