"""Process-wide memory allocator settings: for the command-line tool, the trainer, and (scoped
to each call) the library.

Decoding and training allocate many short-lived tensors of tens to hundreds of MB. glibc serves
each of those with a fresh ``mmap`` and unmaps it on free, so the next one page-faults its way
in again, and a large share of the time goes to the kernel. Keeping freed blocks in the heap
for reuse removes that cost (``benchmarks/codec_speed_memory.py --default-allocator`` shows the
difference).

* :func:`tune_allocator` sets this for the whole process; resident memory then stays at its
  high-water mark until exit, which suits a command or a training run (the ``gancodec``
  command calls it).
* :func:`reuse_large_buffers` is what ``Codec.compress`` / ``decompress`` use, so a program
  using the library gets the command's speed without keeping the memory: the setting holds
  while calls run (nested and concurrent calls share one scope), and once no call has run for
  :data:`RELEASE_AFTER_S` seconds glibc's default values come back and the freed memory is
  returned to the system (``malloc_trim``). The delay is jemalloc's idea (freed pages decay
  instead of going back at once): a program that codes images in a loop keeps its buffers
  from one call to the next instead of page-faulting them in again every call (that cost the
  library 1.2× the command's time), and a program that makes one call gets its memory back a
  second later. :func:`release_memory` gives it back at once. One trace remains: glibc stops
  moving its mmap threshold on its own once a value was set, so it stays where it was (128 KiB
  unless the program had raised it). It stays out of the way where the host has a say: after
  :func:`tune_allocator`, when ``MALLOC_*`` / ``GLIBC_TUNABLES`` malloc settings are in the
  environment, with ``GANCODEC_ALLOCATOR=off``, and on anything but glibc.
* **Large images** (``pixels`` above :data:`LARGE_IMAGE_PIXELS`) are the exception, even in a
  tuned process: a heap that keeps every freed block fragments under the many tile-sized blocks
  of a large image (peak RSS of a 48 MP compress varied between runs and reached 2.4 GB, against
  1.5 GB with glibc's defaults), while the page faults it saves are a few per cent of a large
  image's compute. For the duration of such a call, blocks of 32 MB and more (glibc's largest
  mmap threshold) are mapped and returned on free again; smaller ones stay in the heap, whose
  free top goes back to the system as in an untuned process (glibc's trim threshold). The tiling
  loops also give the heap's free pages back between tiles (:func:`release_between_tiles`):
  a tile's many feature maps of a few to 32 MB leave holes in the heap that the trim of its top
  does not return (``upscale`` ×4 to 12 MP: resident memory between tiles rose from 330 to
  554 MB over 12 tiles and stays at ~290 MB with the release; ``benchmarks/heap_between_tiles.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import threading
from collections.abc import Iterator

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
_LARGE_BLOCK = 32 * 1024 * 1024  # glibc's maximum mmap threshold on 64-bit (HEAP_MAX_SIZE / 2)
_GLIBC_MMAP_THRESHOLD = 128 * 1024
LARGE_IMAGE_PIXELS = 8_000_000
_GLIBC_MMAP_MAX = 65536  # glibc's defaults (malloc.c: DEFAULT_MMAP_MAX, DEFAULT_TRIM_THRESHOLD)
_GLIBC_TRIM_THRESHOLD = 128 * 1024
_KEEP_ALL = 2**31 - 1  # a trim threshold that never trims

#: idle seconds after the last library call before the heap setting is undone and memory returned
RELEASE_AFTER_S = 1.0

_lock = threading.Lock()
_process_tuned = False
_scope_depth = 0
_scope_applied = False
_large_depth = 0
_release_timer: threading.Timer | None = None


@functools.cache
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt, trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return libc


def _keep_freed_blocks(libc) -> bool:
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_ALL))


def tune_allocator() -> bool:
    """Serve large blocks from the reusable heap instead of per-allocation mmap (glibc only),
    for the rest of the process. Returns whether the setting was applied."""
    global _process_tuned
    libc = _libc()
    if libc is None:
        return False
    with _lock:
        _process_tuned = _keep_freed_blocks(libc)
        return _process_tuned


def _host_has_a_say() -> bool:
    if os.environ.get("GANCODEC_ALLOCATOR", "").lower() in ("off", "0", "no"):
        return True
    return any(k.startswith("MALLOC_") for k in os.environ) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "")


@contextlib.contextmanager
def _map_large_blocks() -> Iterator[None]:
    """Blocks of 32 MB and more mapped and returned on free while the block runs (large images)."""
    global _large_depth
    libc = _libc()
    if libc is None or _host_has_a_say() and not _process_tuned:
        yield
        return
    with _lock:
        _large_depth += 1
        if _large_depth == 1:
            libc.mallopt(_M_MMAP_THRESHOLD, _LARGE_BLOCK)
            libc.mallopt(_M_MMAP_MAX, _GLIBC_MMAP_MAX)
            # and the top of the heap goes back to the system as it frees (a tuned process keeps
            # it: the entropy windows' float64 temporaries stayed resident through a large compress)
            libc.mallopt(_M_TRIM_THRESHOLD, _GLIBC_TRIM_THRESHOLD)
            libc.malloc_trim(0)  # what a tuned heap kept (e.g. from reading the image) goes back first
    try:
        yield
    finally:
        with _lock:
            _large_depth -= 1
            if _large_depth == 0:
                if _process_tuned:  # back to keeping every freed block
                    libc.mallopt(_M_MMAP_MAX, 0)
                    libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_ALL)
                else:
                    libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_MMAP_THRESHOLD)
                    libc.malloc_trim(0)


@contextlib.contextmanager
def reuse_large_buffers(pixels: int = 0) -> Iterator[None]:
    """Keep freed large blocks for reuse while the block runs; give them back after. For an
    image of more than :data:`LARGE_IMAGE_PIXELS` ``pixels``, map its large blocks instead."""
    global _scope_depth, _scope_applied
    if pixels > LARGE_IMAGE_PIXELS:
        with _map_large_blocks():
            yield
        return
    with _lock:
        _scope_depth += 1
        _cancel_release()  # a call within the delay finds the previous call's buffers still there
        # (re)applied on every outermost entry: a large image's call in between changes the setting
        if _scope_depth == 1 and not _process_tuned and not _host_has_a_say():
            libc = _libc()
            _scope_applied = libc is not None and _keep_freed_blocks(libc)
    try:
        yield
    finally:
        with _lock:
            _scope_depth -= 1
            if _scope_depth == 0 and _scope_applied:
                _schedule_release()


def release_memory() -> None:
    """Undo the library's heap setting now and return the memory its calls freed to the system
    (what otherwise happens :data:`RELEASE_AFTER_S` seconds after the last call). No effect while a
    call runs, or on a process tuned with :func:`tune_allocator`."""
    with _lock:
        _cancel_release()
        if _scope_depth == 0 and _scope_applied:
            _release_locked()


def _cancel_release() -> None:
    global _release_timer
    if _release_timer is not None:
        _release_timer.cancel()
        _release_timer = None


def _schedule_release() -> None:
    global _release_timer
    _cancel_release()
    if RELEASE_AFTER_S <= 0:
        _release_locked()
        return
    _release_timer = threading.Timer(RELEASE_AFTER_S, _release_if_idle)
    _release_timer.daemon = True  # never keeps the interpreter alive
    _release_timer.start()


def _release_if_idle() -> None:
    with _lock:
        if _scope_depth == 0 and _scope_applied:  # a call that started meanwhile keeps the setting
            _release_locked()


def _release_locked() -> None:
    """glibc's defaults back and the freed memory returned (the caller holds ``_lock``)."""
    global _scope_applied, _release_timer
    libc = _libc()
    libc.mallopt(_M_MMAP_MAX, _GLIBC_MMAP_MAX)
    libc.mallopt(_M_TRIM_THRESHOLD, _GLIBC_TRIM_THRESHOLD)
    libc.malloc_trim(0)  # the memory the calls used goes back to the system
    _scope_applied = False
    _release_timer = None


def return_free_memory() -> None:
    """Give the heap's free pages back to the system now (glibc's ``malloc_trim``, which also
    releases whole free pages inside the heap). A large image's compress calls it once Pillow's
    decoded copy is freed: Pillow allocates in 16 MB blocks, below the 32 MB mapped for large
    images, so without it those 4 bytes a pixel stayed resident through the analysis."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def release_between_tiles() -> None:
    """Between two tiles of a large image's call (inside :func:`reuse_large_buffers` with more
    than :data:`LARGE_IMAGE_PIXELS`): :func:`return_free_memory`, so what the process holds
    when a tile starts is what it uses, not the high-water mark of earlier tiles. Elsewhere
    nothing: a small image's buffers stay for reuse, and a host with its own malloc settings
    keeps them."""
    if _large_depth > 0:
        return_free_memory()
