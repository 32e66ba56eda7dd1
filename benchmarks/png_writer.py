"""Our streaming PNG writer (gancodec/pngstream.py) against Pillow's PNG encoder: file size and
seconds per image, same pixels.

    python benchmarks/png_writer.py [--data ../shared/data/kodak]
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from gancodec.pngstream import PngWriter


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/data/kodak")
    args = p.parse_args()
    ratios = []
    for path in sorted(Path(args.data).glob("*.png")):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        t = time.perf_counter()
        pil = io.BytesIO()
        Image.fromarray(rgb).save(pil, format="PNG")
        t_pil = time.perf_counter() - t
        t = time.perf_counter()
        ours = io.BytesIO()
        writer = PngWriter(ours, rgb.shape[1], rgb.shape[0], 3)
        writer.write(rgb)
        writer.close()
        t_ours = time.perf_counter() - t
        ratio = len(ours.getvalue()) / len(pil.getvalue())
        ratios.append(ratio)
        print(json.dumps({"image": path.name, "pillow_bytes": len(pil.getvalue()), "ours_bytes": len(ours.getvalue()),
                          "size_ratio": round(ratio, 3), "pillow_s": round(t_pil, 3), "ours_s": round(t_ours, 3)}))
    print(json.dumps({"images": len(ratios), "size_ratio_min": round(min(ratios), 3),
                      "size_ratio_max": round(max(ratios), 3), "size_ratio_mean": round(float(np.mean(ratios)), 3)}))


if __name__ == "__main__":
    main()
