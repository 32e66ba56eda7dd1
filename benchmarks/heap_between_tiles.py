"""What glibc's heap holds between the tiles of a large ``upscale``: resident memory, and the
heap's bytes in use and free (``mallinfo2``), after every head tile.

    python benchmarks/heap_between_tiles.py [--size 1000x750] [--every 1] [--no-release]
        [--image ../shared/data/kodak/kodim23.png]

The input is ``--image`` resized to ``--size`` (the output is 4× each side; 1000×750 gives a
12 MP output, above the large-image threshold). The command's setting is used (tuned
allocator, 1 thread). ``--no-release`` turns off the return of free pages between tiles
(:func:`gancodec.allocator.release_between_tiles`) to show what the heap keeps without it.
Prints one line per logged tile and the peak RSS (``VmHWM``) at the end. Linux with glibc only.
"""

from __future__ import annotations

import argparse
import ctypes
import tempfile
import time
from pathlib import Path


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="1000x750", help="input WxH")
    p.add_argument("--image", default="../shared/data/kodak/kodim23.png")
    p.add_argument("--every", type=int, default=1, help="log every N head tiles")
    p.add_argument("--no-release", action="store_true", help="keep free pages between tiles")
    args = p.parse_args()

    import torch
    from PIL import Image

    from gancodec import allocator, tiling
    from gancodec.evaluation.bench import _read_status_kb
    from gancodec.zoo import load_enhancer

    allocator.tune_allocator()
    torch.set_num_threads(1)
    if args.no_release:
        tiling.release_between_tiles = lambda: None
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    w, h = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="heap-between-tiles-"))
    src = work / "in.png"
    Image.open(args.image).convert("RGB").resize((w, h), Image.LANCZOS).save(src, compress_level=1)

    model = load_enhancer("sr-x4-lite")
    trunk, count, start = model.net.trunk, [0], time.perf_counter()

    def logged_trunk(x: torch.Tensor) -> torch.Tensor:
        count[0] += 1
        if count[0] % args.every == 0:  # before this tile: what the previous ones left
            info = libc.mallinfo2()
            rss = _read_status_kb("VmRSS") // 1024
            print(f"tile {count[0]:4d}  {time.perf_counter() - start:6.0f} s  RSS {rss} MB  "
                  f"heap {info.arena >> 20} MB: in use {info.uordblks >> 20}, free {info.fordblks >> 20}; "
                  f"mapped {info.hblkhd >> 20} MB", flush=True)
        return trunk(x)

    model.net.trunk = logged_trunk
    model.run_file(src, work / "out.png", max_pixels=None)
    print(f"{count[0]} head tiles, peak RSS {_read_status_kb('VmHWM') // 1024} MB")


if __name__ == "__main__":
    main()
