"""What a large compress holds at its peak: the live heap (every malloc, Python's and native,
through memray), against the resident memory the kernel counts.

    pip install memray   # a profiler, not a dependency of gancodec
    python benchmarks/heap_peak.py IMAGE [--threads 1] [--top 8]

Runs ``gancodec.compress(IMAGE, quality=2)`` in this process under ``memray.Tracker`` and prints
the live heap's peak, the allocation sites alive at that moment (largest first) and the
process's peak RSS. If the heap's peak stays put while the RSS peak grows with the image, what
grows is memory the allocator holds free, not arrays the code keeps.
"""

from __future__ import annotations

import argparse
import collections
import resource
import tempfile
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("image")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--top", type=int, default=8)
    args = p.parse_args()
    import memray
    import torch

    import gancodec

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "compress.bin"
        with memray.Tracker(trace):
            gancodec.compress(args.image, quality=2, max_pixels=None)
        reader = memray.FileReader(trace)
        sites: collections.Counter[str] = collections.Counter()
        for record in reader.get_high_watermark_allocation_records(merge_threads=True):
            frames = record.stack_trace(max_stacks=3)
            sites[" < ".join(f"{fn} ({Path(file).name}:{line})" for fn, file, line in frames)] += record.size
        print(f"live heap peak {reader.metadata.peak_memory / 2**20:.0f} MB; at that moment:")
        for site, size in sites.most_common(args.top):
            print(f"  {size / 2**20:7.1f} MB  {site}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MB")


if __name__ == "__main__":
    main()
