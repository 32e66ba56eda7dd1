"""Where a large compress peaks: resident memory per phase (analysis, then each coding band),
or the whole command's peak with another large-block mmap threshold.

    python benchmarks/compress_band_memory.py IMAGE [--threads 1]
    python benchmarks/compress_band_memory.py IMAGE --large-block-mb 4 [--threads 1]

Without ``--large-block-mb`` the library's ``compress`` runs in this process with
``Codec._code_band`` and ``Codec.analyse`` wrapped: after each phase it prints the resident
memory now and the peak since the previous phase (Linux: ``VmHWM``, reset through
``/proc/self/clear_refs``). With it, the ``gancodec compress`` command runs here with blocks of
that many MB and more mapped (``gancodec.allocator``; the shipped threshold is 32 MB) and the
process's peak RSS and seconds are printed. Quality 2, no pixel limit; the file is discarded.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path


def _memory() -> str:
    """'now N peak-since-last M' in MB, and the peak counter reset."""
    status = Path("/proc/self/status").read_text().splitlines()
    hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    now = int(Path("/proc/self/statm").read_text().split()[1]) * 4096 // 2**20
    Path("/proc/self/clear_refs").write_text("5")
    return f"now {now} MB, peak since last {hwm // 1024} MB"


def phases(image: str) -> None:
    import gancodec

    codec = gancodec.load_model("hific-lite")
    cls = type(codec)
    code_band, analyse = cls._code_band, cls.analyse
    count = [0]

    def banded(self, *args, **kwargs):
        print(f"before band {count[0] + 1}: {_memory()}", flush=True)
        out = code_band(self, *args, **kwargs)
        count[0] += 1
        print(f"band {count[0]} done: {_memory()}", flush=True)
        return out

    def analysed(self, *args, **kwargs):
        out = analyse(self, *args, **kwargs)
        print(f"analysis done: {_memory()}", flush=True)
        return out

    cls._code_band, cls.analyse = banded, analysed
    codec.compress(image, quality=2, max_pixels=None)
    print(f"end: {_memory()}")


def command(image: str, large_block_mb: float, threads: int) -> None:
    import gancodec.allocator as allocator
    from gancodec.cli import main as cli

    allocator._LARGE_BLOCK = int(large_block_mb * 2**20)
    out = Path("bench-memory") / "band-memory-probe.gcz"
    out.parent.mkdir(exist_ok=True)
    t = time.perf_counter()
    code = cli(["compress", image, "-o", str(out), "-q", "2", "--max-pixels", "0", "--no-progress",
                "--threads", str(threads)])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"large blocks from {large_block_mb} MB: {time.perf_counter() - t:.1f} s, peak RSS {peak} MB, exit {code}")
    out.unlink(missing_ok=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("image")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--large-block-mb", type=float, default=None)
    args = p.parse_args()
    if args.large_block_mb is not None:
        command(args.image, args.large_block_mb, args.threads)
        return
    import torch

    torch.set_num_threads(args.threads)
    phases(args.image)


if __name__ == "__main__":
    sys.exit(main())
