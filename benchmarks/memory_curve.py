"""Peak memory (RSS) and seconds of the ``gancodec`` commands on large photos: the curve that
shows memory is bounded by the tile, not the image.

    python benchmarks/memory_curve.py [--sizes 4000x3000 8000x6000 12000x9000] [--threads 2]
        [--image ../shared/data/kodak/kodim23.png] [--work DIR]
        [--commands compress decompress decompress-gan restore upscale inpaint]
        [--format png|jpg|jpg-turned|png-turned|png16|tif16]

Each size gets a test photo: ``--image`` resized (Lanczos) to that size and saved as PNG (or
with ``--format jpg`` as a quality-90 JPEG, ``jpg-turned`` / ``png-turned`` the JPEG / PNG
stored sideways with EXIF orientation 6 (a phone held upright), with ``png16`` / ``tif16`` as a 16-bit RGB PNG /
deflated TIFF, a raw converter's export, written by libvips), so the content, and with it the
rate, is that of a photo. Every command then runs in a fresh process, as a user runs it (``--max-pixels 0`` lifts
the size limit, no progress bar), and its peak RSS is read from the kernel's accounting of
that child (``wait4``). ``restore`` runs on each size; ``upscale`` (×4) on an input of 1/16 of
each size, so its output has that size; ``inpaint`` removes a box of 1/16 of each side from the
middle.
``--pythonpath`` runs the commands with another checkout (``PYTHONPATH``) for a
before/after comparison. Prints one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CLI = "import sys; from gancodec.cli import main; sys.exit(main())"
# the test photos' names by --format
_SUFFIX = {"png": ".png", "jpg": ".jpg", "jpg-turned": "-turned.jpg", "png-turned": "-turned.png", "png16": "-16.png",
           "tif16": "-16.tif"}


def run(args: list[str], threads: int, pythonpath: str | None) -> tuple[float, float, int]:
    """(seconds, peak RSS MB, exit status) of one ``gancodec`` command in a fresh process."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    t = time.perf_counter()
    # `python -c` puts its working directory first on sys.path, ahead of PYTHONPATH: the other
    # checkout is imported only if the command runs in it (the paths in ``args`` are absolute)
    proc = subprocess.Popen([sys.executable, "-c", CLI, *args, "--threads", str(threads)], env=env,
                            cwd=pythonpath or None)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t
    return seconds, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def make_photo(src: Path, size: tuple[int, int], dst: Path) -> None:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    if not dst.exists():
        with Image.open(src) as im:
            photo = im.convert("RGB").resize(size, Image.LANCZOS)
            if dst.stem.endswith("-turned"):  # stored a quarter turn anticlockwise, seen upright
                exif = Image.Exif()
                exif[0x0112] = 6
                turned = photo.transpose(Image.Transpose.ROTATE_90)
                if dst.suffix == ".png":
                    turned.save(dst, compress_level=1, exif=exif.tobytes())
                else:
                    turned.save(dst, quality=90, exif=exif.tobytes())
            elif dst.suffix == ".jpg":
                photo.save(dst, quality=90)  # a camera's JPEG: 4:2:0, quality 90
            elif dst.stem.endswith("-16"):  # Pillow writes no 16-bit RGB
                import numpy as np
                import pyvips

                deep = np.asarray(photo).astype(np.uint16) * 257
                image = pyvips.Image.new_from_array(deep, interpretation="rgb16")
                if dst.suffix == ".png":
                    image.pngsave(str(dst), compression=1)
                else:
                    image.tiffsave(str(dst), compression="deflate")
            else:
                photo.save(dst, compress_level=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["4000x3000", "8000x6000", "12000x9000"], help="WxH")
    p.add_argument("--image", default="../shared/data/kodak/kodim23.png")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", default="bench-memory")
    p.add_argument("--commands", nargs="+", default=["compress", "decompress"],
                   choices=["compress", "decompress", "decompress-gan", "restore", "upscale", "inpaint"])
    p.add_argument("--pythonpath", default=None, help="PYTHONPATH for the commands (another checkout)")
    p.add_argument("--label", default="current")
    p.add_argument("--format", choices=list(_SUFFIX), default="png", help="the test photos' format")
    args = p.parse_args()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    for spec in args.sizes:
        w, h = (int(v) for v in spec.split("x"))
        photo = work / f"photo-{w}x{h}{_SUFFIX[args.format]}"
        make_photo(Path(args.image).resolve(), (w, h), photo)
        stem = f"photo-{w}x{h}" + ("" if args.format == "png" else f"-{args.format}")
        gcz, decoded = work / f"{stem}.gcz", work / f"decoded-{w}x{h}.png"
        jobs = {
            "compress": ["compress", str(photo), "-o", str(gcz), "-q", "2", "--max-pixels", "0", "--no-progress"],
            "decompress": ["decompress", str(gcz), "-o", str(decoded), "--max-pixels", "0", "--no-progress"],
            # the GAN decoder: since v1.0 three syntheses side by side (docs/FORMAT.md, anchored)
            "decompress-gan": ["decompress", str(gcz), "-o", str(work / f"decoded-gan-{w}x{h}.png"), "--decoder",
                               "gan", "--max-pixels", "0", "--no-progress"],
            "restore": ["restore", str(photo), "-o", str(work / f"restored-{w}x{h}.png"), "--max-pixels", "0",
                        "--no-progress"],
            # an object to remove: a box of 1/16 of each side in the middle
            "inpaint": ["inpaint", str(photo), "-o", str(work / f"inpainted-{w}x{h}.png"), "--box",
                        f"{w // 2},{h // 2},{w // 16},{h // 16}", "--max-pixels", "0"],
        }
        if "upscale" in args.commands:
            small = work / f"photo-{w // 4}x{h // 4}.png"
            make_photo(Path(args.image), (w // 4, h // 4), small)
            jobs["upscale"] = ["upscale", str(small), "-o", str(work / f"upscaled-{w}x{h}.png"), "--scale", "4",
                               "--max-pixels", "0", "--no-progress"]
        for name in args.commands:
            seconds, peak, code = run(jobs[name], args.threads, args.pythonpath)
            print(json.dumps({"label": args.label, "command": name, "format": args.format, "size": [w, h],
                              "megapixels": round(w * h / 1e6, 1), "threads": args.threads,
                              "seconds": round(seconds, 1), "peak_rss_mb": round(peak), "exit": code}), flush=True)


if __name__ == "__main__":
    main()
