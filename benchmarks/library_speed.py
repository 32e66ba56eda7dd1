"""Library vs command: encode + decode seconds of the shipped codec on one image, measured in
fresh processes taken in turns (so load from other jobs hits every variant alike).

    python benchmarks/library_speed.py [--image ../shared/data/kodak/kodim01.png] [--threads 2] [--rounds 3]

Variants: ``library-before`` is the library as it was (no allocator setting: set
``GANCODEC_ALLOCATOR=off``), ``library`` the library now (the setting scoped to each call,
gancodec/allocator.py), ``command`` the ``gancodec`` command's process-wide setting
(``tune_allocator()``). Each process warms up once, then keeps the best of 3 calls. Also times the
``gancodec compress`` + ``decompress`` commands end to end (process start and model load
included). Prints one JSON line per measurement and a summary with ratios to ``command``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

PROBE = textwrap.dedent("""
    import json, sys, time, torch
    torch.set_num_threads(int(sys.argv[2]))
    import gancodec
    from gancodec.imageio import load_rgb_array
    if sys.argv[3] == "command":
        from gancodec.allocator import tune_allocator
        tune_allocator()
    img = load_rgb_array(sys.argv[1])
    codec = gancodec.load_model()
    gancodec.decompress(gancodec.compress(img, quality=3, model=codec), model=codec)  # warm-up
    enc, dec = [], []
    for _ in range(3):
        t = time.perf_counter(); d = gancodec.compress(img, quality=3, model=codec); enc.append(time.perf_counter() - t)
        t = time.perf_counter(); gancodec.decompress(d, model=codec); dec.append(time.perf_counter() - t)
    print(json.dumps({"variant": sys.argv[3], "encode_s": min(enc), "decode_s": min(dec)}))
""")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", default="../shared/data/kodak/kodim01.png")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    results: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for variant in ("library-before", "library", "command"):
            env = dict(os.environ)
            env.pop("GANCODEC_ALLOCATOR", None)
            if variant == "library-before":
                env["GANCODEC_ALLOCATOR"] = "off"
            out = subprocess.run([sys.executable, "-c", PROBE, args.image, str(args.threads), variant],
                                 check=True, capture_output=True, text=True, env=env).stdout
            r = json.loads(out)
            print(json.dumps(r | {k: round(r[k], 3) for k in ("encode_s", "decode_s")}), flush=True)
            results.setdefault(variant, []).append(r["encode_s"] + r["decode_s"])
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            for cmd in (["compress", args.image, "-o", f"{tmp}/a.gcz", "-q", "3"],
                        ["decompress", f"{tmp}/a.gcz", "-o", f"{tmp}/a.png"]):
                subprocess.run([sys.executable, "-m", "gancodec.cli", *cmd, "--threads", str(args.threads)],
                               check=True, capture_output=True)
            results.setdefault("command-end-to-end", []).append(time.perf_counter() - t)
    best = {k: round(min(v), 3) for k, v in results.items()}
    print(json.dumps({"best_encode_plus_decode_s": best,
                      "ratio_to_command": {k: round(v / best["command"], 2) for k, v in best.items()}}))


if __name__ == "__main__":
    main()
