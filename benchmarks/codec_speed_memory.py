"""Encode/decode seconds of the shipped codec on one Kodak-sized image, and peak memory
(RSS) of compress + decompress of a large image, each measured in a fresh process.

    python benchmarks/codec_speed_memory.py [--image ../shared/data/kodak/kodim01.png] [--threads 2]

Decode is timed with the default bit-exact fixed-point synthesis (``decode_s``) and with the
float32 one (``decompress(..., exact=False)``, ``decode_float32_s``). Like the ``gancodec``
command, the measuring process keeps freed memory for reuse (``gancodec.allocator``;
``--default-allocator`` measures without). Prints JSON lines;
BENCHMARKS.md quotes them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap

SPEED = textwrap.dedent("""
    import json, sys, time, torch
    torch.set_num_threads(int(sys.argv[2]))
    import numpy as np, gancodec
    from gancodec.allocator import tune_allocator
    if sys.argv[3] == "tuned":
        tune_allocator()  # as the gancodec command does
    from gancodec.imageio import load_rgb_array
    from skimage import data as skdata
    img = load_rgb_array(sys.argv[1]) if sys.argv[1] != "-" else np.ascontiguousarray(skdata.astronaut())
    codec = gancodec.load_model()
    codec.decompress(codec.compress(img, quality=3))  # warm-up: first-call allocations
    for q in (1, 3, 6):
        enc, dec, dec_fast, dec_gan = [], [], [], []
        for _ in range(3):
            t = time.perf_counter(); d = codec.compress(img, quality=q); enc.append(time.perf_counter() - t)
            t = time.perf_counter(); codec.decompress(d); dec.append(time.perf_counter() - t)
            t = time.perf_counter(); codec.decompress(d, exact=False); dec_fast.append(time.perf_counter() - t)
            if "gan" in codec.decoders:
                t = time.perf_counter(); codec.decompress(d, decoder="gan"); dec_gan.append(time.perf_counter() - t)
        print(json.dumps({"image": sys.argv[1], "size": list(img.shape[:2]), "threads": int(sys.argv[2]),
                          "allocator": sys.argv[3],
                          "quality": q, "bytes": len(d), "encode_s": round(min(enc), 3),
                          "decode_s": round(min(dec), 3), "decode_float32_s": round(min(dec_fast), 3),
                          "decode_gan_s": round(min(dec_gan), 3) if dec_gan else None}))
""")

MEMORY = textwrap.dedent("""
    import json, resource, sys, time, torch
    torch.set_num_threads(int(sys.argv[3]))
    import numpy as np, gancodec
    from gancodec.allocator import tune_allocator
    if sys.argv[4] == "tuned":
        tune_allocator()  # as the gancodec command does
    h, w = int(sys.argv[1]), int(sys.argv[2])
    rng = np.random.default_rng(0)
    # a smooth random image: realistic rate, no need for a photo of this size
    small = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
    from PIL import Image
    img = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))
    codec = gancodec.load_model()
    t = time.perf_counter(); data = codec.compress(img, quality=3); enc = time.perf_counter() - t
    t = time.perf_counter(); out = codec.decompress(data); dec = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"size": [h, w], "threads": int(sys.argv[3]), "allocator": sys.argv[4],
                      "bytes": len(data), "encode_s": round(enc, 2),
                      "decode_s": round(dec, 2), "peak_rss_mb": round(peak_mb)}))
""")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", default="../shared/data/kodak/kodim01.png", help="'-' for the bundled image")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--large", default="3000x4000", help="HxW of the memory test image")
    p.add_argument("--only", choices=["speed", "memory"], help="run one of the two measurements")
    p.add_argument("--default-allocator", action="store_true",
                   help="leave glibc's allocator as it is (the gancodec command tunes it; see gancodec/allocator.py)")
    args = p.parse_args()
    allocator = "default" if args.default_allocator else "tuned"
    if args.only != "memory":
        subprocess.run([sys.executable, "-c", SPEED, args.image, str(args.threads), allocator], check=True)
    if args.only != "speed":
        h, w = args.large.split("x")
        subprocess.run([sys.executable, "-c", MEMORY, h, w, str(args.threads), allocator], check=True)


if __name__ == "__main__":
    main()
