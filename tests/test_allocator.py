"""The library's allocator setting holds only while a call runs and stays out of the host's way."""

from __future__ import annotations

import threading

import numpy as np

from gancodec import allocator


def test_scope_is_nested_and_undone(tiny_codec, monkeypatch):
    monkeypatch.setattr(allocator, "_process_tuned", False)
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
