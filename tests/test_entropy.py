"""Entropy coding and the integer hyperprior: lossless, exact, and strict about damage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gancodec.entropy import coder
from gancodec.entropy.coder import TableSet
from gancodec.entropy.gaussian import gaussian_pmf_tables, scale_table
from gancodec.errors import CorruptFileError
from gancodec.models.integer import ACT_BITS, WEIGHT_BITS, IntegerHyperSynthesis


@pytest.fixture(scope="module")
def tables() -> TableSet:
    return TableSet(tuple(gaussian_pmf_tables(scale_table())))


def test_round_trip_with_escapes(tables):
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(tables), 5000)
    scales = scale_table()[idx]
    symbols = np.round(rng.normal(0, scales)).astype(np.int64)
    symbols[::997] = 10_000  # far outside every table: must go through the escape stream
    stream, escapes = coder.encode(symbols, idx, tables)
    assert len(escapes) == 4 * len(symbols[::997])
    np.testing.assert_array_equal(coder.decode(stream, escapes, idx, tables), symbols)


def test_rate_is_close_to_the_ideal(tables):
    rng = np.random.default_rng(1)
    idx = rng.integers(10, 40, 20000)
    symbols = np.round(rng.normal(0, scale_table()[idx])).astype(np.int64)
    ideal = -sum(np.log2(tables.pmfs[k][s + tables.radius(k)]) for k, s in zip(idx, symbols))
    stream, _ = coder.encode(symbols, idx, tables)
    assert 8 * len(stream) < ideal * 1.01 + 64


def test_padded_tables_round_trip(tables):
    padded, radii = tables.to_padded()
    again = TableSet.from_padded(padded, radii)
    assert all(np.array_equal(a, b) for a, b in zip(tables.pmfs, again.pmfs))


def test_damaged_stream_is_detected(tables):
    idx = np.zeros(100, dtype=np.int64)
    with pytest.raises(CorruptFileError):
        coder.decode(b"\x01\x02\x03", b"", idx, tables)


def _reference_integer_hyper(z: np.ndarray, tensors: dict, layout) -> np.ndarray:
    """Pure int64 numpy version of the integer hyper-synthesis (no floats anywhere)."""
    x = z.astype(np.int64)
    act_bits = 0
    for i, (kind, k, stride) in enumerate(layout):
        w = tensors[f"h_s_int.{i}.weight"].numpy().astype(np.int64)
        b = tensors[f"h_s_int.{i}.bias"].numpy().astype(np.int64)
        c, h, wd = x.shape
        p = k // 2
        if kind == "deconv":  # w: (in, out, k, k); scatter every input onto the output
            out = np.zeros((w.shape[1], h * stride + 2 * p + k, wd * stride + 2 * p + k), dtype=np.int64)
            for ki in range(k):
                for kj in range(k):
                    contrib = np.einsum("chw,co->ohw", x, w[:, :, ki, kj])
                    out[:, ki : ki + h * stride : stride, kj : kj + wd * stride : stride] += contrib
            out = out[:, p : p + h * stride, p : p + wd * stride]
        else:  # w: (out, in, k, k)
            xp = np.pad(x, ((0, 0), (p, p), (p, p)))
            out = np.zeros((w.shape[0], h, wd), dtype=np.int64)
            for ki in range(k):
                for kj in range(k):
                    out += np.einsum("chw,oc->ohw", xp[:, ki : ki + h, kj : kj + wd], w[:, :, ki, kj])
        out += b[:, None, None]
        if i < len(layout) - 1:
            shift = WEIGHT_BITS + act_bits - ACT_BITS
            out = (np.maximum(out, 0) + (1 << (shift - 1))) >> shift  # floor(x / 2^s + 1/2)
            act_bits = ACT_BITS
        x = out
    return x


def test_integer_hyper_synthesis_is_exact(tiny_model_dir):
    from safetensors.torch import load_file

    tensors = load_file(str(tiny_model_dir / "model.safetensors"))
    hyper = IntegerHyperSynthesis(tensors, tensors["tables.y.thresholds"].numpy())
    rng = np.random.default_rng(3)
    z = rng.integers(-20, 21, (16, 3, 5))
    reference = _reference_integer_hyper(z, tensors, hyper.LAYOUT)
    results = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        means, indices = hyper(torch.from_numpy(z)[None].double())
        results.append((means.numpy().copy(), indices.numpy().copy()))
    m = reference.shape[0] // 2
    np.testing.assert_array_equal(results[0][0][0] * hyper.out_scale, reference[:m])
    expected_idx = np.searchsorted(hyper.thresholds.numpy(), reference[m:].astype(np.float64), side="right")
    np.testing.assert_array_equal(results[0][1][0], expected_idx)
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_chunking_changes_no_byte(tables, monkeypatch):
    """Large latents are coded a chunk of the raster at a time (bounded memory); the stream,
    the escapes and the decoded symbols do not depend on the chunk size."""
    rng = np.random.default_rng(3)
    idx = rng.integers(0, len(tables), 25_000).astype(np.uint8)
    symbols = np.round(rng.normal(0, scale_table()[idx])).astype(np.int32)
    symbols[::997], symbols[5::1231] = 10_000, -70_000  # escapes in several chunks
    whole = coder.encode(symbols, idx, tables)
    for chunk in (1000, 777):
        monkeypatch.setattr(coder, "CHUNK", chunk)
        assert coder.encode(symbols, idx, tables) == whole
        np.testing.assert_array_equal(coder.decode(*whole, idx, tables), symbols)
