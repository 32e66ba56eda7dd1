"""The library's allocator setting holds only while a call runs and stays out of the host's way."""

from __future__ import annotations

import threading
import time

import numpy as np

from gancodec import allocator


def test_scope_is_nested_and_undone(tiny_codec, monkeypatch):
    monkeypatch.setattr(allocator, "_process_tuned", False)
    monkeypatch.setattr(allocator, "RELEASE_AFTER_S", 0)  # undone as the last call ends
    monkeypatch.delenv("GANCODEC_ALLOCATOR", raising=False)
    seen = []
    real = allocator._keep_freed_blocks
    monkeypatch.setattr(allocator, "_keep_freed_blocks", lambda libc: seen.append(1) or real(libc))
    with allocator.reuse_large_buffers():
        with allocator.reuse_large_buffers():
            assert allocator._scope_depth == 2
        data = tiny_codec.compress(np.zeros((20, 20, 3), np.uint8), quality=1)  # nests a third time
        tiny_codec.decompress(data)
    assert allocator._scope_depth == 0 and not allocator._scope_applied
    assert len(seen) == (1 if allocator._libc() is not None else 0)  # applied once, for the outer scope


def test_memory_goes_back_once_calls_stop(tiny_codec, monkeypatch):
    """Calls in a row keep the setting (and their buffers) from one to the next; the memory goes
    back RELEASE_AFTER_S after the last one, or at once with release_memory()."""
    calls = []

    class FakeLibc:
        def mallopt(self, option, value):
            calls.append((option, value))
            return 1

        def malloc_trim(self, pad):
            calls.append(("trim", pad))
            return 1

    monkeypatch.setattr(allocator, "_libc", lambda: FakeLibc())
    monkeypatch.setattr(allocator, "_process_tuned", False)
    monkeypatch.delenv("GANCODEC_ALLOCATOR", raising=False)
    monkeypatch.setattr(allocator, "RELEASE_AFTER_S", 60)
    data = tiny_codec.compress(np.zeros((20, 20, 3), np.uint8), quality=1)
    tiny_codec.decompress(data)
    assert allocator._scope_applied and ("trim", 0) not in calls  # kept between the calls
    allocator.release_memory()
    assert not allocator._scope_applied and calls[-1] == ("trim", 0) and allocator._release_timer is None
    monkeypatch.setattr(allocator, "RELEASE_AFTER_S", 0.05)
    calls.clear()
    tiny_codec.decompress(data)
    deadline = time.monotonic() + 10
    while allocator._scope_applied and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not allocator._scope_applied and calls[-1] == ("trim", 0)


def test_host_settings_are_left_alone(monkeypatch):
    monkeypatch.setattr(allocator, "_process_tuned", False)
    monkeypatch.setenv("GANCODEC_ALLOCATOR", "off")
    with allocator.reuse_large_buffers():
        assert not allocator._scope_applied
    monkeypatch.delenv("GANCODEC_ALLOCATOR")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    with allocator.reuse_large_buffers():
        assert not allocator._scope_applied


def test_concurrent_calls_share_one_scope(tiny_codec):
    data = tiny_codec.compress(np.zeros((30, 30, 3), np.uint8), quality=1)
    threads = [threading.Thread(target=tiny_codec.decompress, args=(data,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allocator._scope_depth == 0


def test_large_images_map_their_large_blocks(monkeypatch):
    """A large image's call maps blocks of 32 MB and more and trims the heap's top (no heap
    fragmentation, no kept free memory); afterwards a tuned process keeps freed blocks again,
    and an untuned one gets glibc's threshold back."""
    calls = []

    class FakeLibc:
        def mallopt(self, option, value):
            calls.append((option, value))
            return 1

        def malloc_trim(self, pad):
            calls.append(("trim", pad))
            return 1

    monkeypatch.setattr(allocator, "_libc", lambda: FakeLibc())
    monkeypatch.delenv("GANCODEC_ALLOCATOR", raising=False)
    for tuned in (True, False):
        calls.clear()
        monkeypatch.setattr(allocator, "_process_tuned", tuned)
        with allocator.reuse_large_buffers(pixels=allocator.LARGE_IMAGE_PIXELS + 1):
            assert (allocator._M_MMAP_THRESHOLD, allocator._LARGE_BLOCK) in calls
            assert (allocator._M_MMAP_MAX, allocator._GLIBC_MMAP_MAX) in calls
            # the heap's free top is returned while it runs, even in a tuned process
            assert (allocator._M_TRIM_THRESHOLD, allocator._GLIBC_TRIM_THRESHOLD) in calls
        assert allocator._large_depth == 0
        if tuned:  # back to keeping every freed block
            assert calls[-2:] == [(allocator._M_MMAP_MAX, 0), (allocator._M_TRIM_THRESHOLD, allocator._KEEP_ALL)]
        else:
            assert calls[-1] == ("trim", 0)
    calls.clear()
    with allocator.reuse_large_buffers(pixels=1000):  # small: the reuse scope, as before
        pass
    assert (allocator._M_MMAP_MAX, 0) in calls


def test_tiles_of_a_large_image_give_free_pages_back_between_them(monkeypatch):
    """Between the tiles of a large image's call the heap's free pages go back (its high-water
    mark is not carried from tile to tile); a small image's tiles keep them for reuse."""
    import torch

    from gancodec.tiling import run_tiled, run_tiled_two_stage

    trims = []

    class FakeLibc:
        def mallopt(self, option, value):
            return 1

        def malloc_trim(self, pad):
            trims.append(pad)
            return 1

    monkeypatch.setattr(allocator, "_libc", lambda: FakeLibc())
    monkeypatch.delenv("GANCODEC_ALLOCATOR", raising=False)
    monkeypatch.setattr(allocator, "_process_tuned", True)
    x = torch.rand(1, 3, 32, 48)
    for pixels, tiles_expected in ((allocator.LARGE_IMAGE_PIXELS + 1, 6), (1000, 0)):
        trims.clear()
        with allocator.reuse_large_buffers(pixels):
            entry = len(trims)  # the large scope trims once as it starts
            run_tiled(lambda t: t * 2, x, 1, 16, 4)  # 2 × 3 tiles
            assert len(trims) - entry == tiles_expected
            before = len(trims)
            # two stages: once per head tile, not per tail tile
            up = lambda t: torch.nn.functional.interpolate(t, scale_factor=2)  # noqa: E731
            run_tiled_two_stage(lambda t: t, up, x, 2, 16, 4, 8, 1)
            assert len(trims) - before == tiles_expected
