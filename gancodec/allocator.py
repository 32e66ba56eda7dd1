"""Process-wide memory allocator settings for the command-line tool and the trainer.

Decoding and training allocate many short-lived tensors of tens to hundreds of MB. glibc serves
each of those with a fresh ``mmap`` and unmaps it on free, so the next one page-faults its way
in again, and a large share of the time goes to the kernel. Keeping freed blocks in the heap
for reuse removes that cost (``benchmarks/codec_speed_memory.py --default-allocator`` shows the
difference); the process's resident memory then
stays at its high-water mark until it exits, which suits a command or a training run. A library
user who wants the same can call :func:`tune_allocator` once.
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def tune_allocator() -> bool:
    """Serve large blocks from the reusable heap instead of per-allocation mmap (glibc only).
    Returns whether the setting was applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
