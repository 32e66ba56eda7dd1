"""The fuzz harness in CI: a few thousand hostile inputs, each an image or our error, quickly."""

from __future__ import annotations

import random

import pytest

from gancodec.bitstream import Container
from gancodec.errors import CorruptFileError, UserError
from gancodec.fuzz import fuzz, mutate, run_case, seed_corpus


def test_seed_corpus_decodes(tiny_codec):
    corpus = seed_corpus(tiny_codec)
    assert {Container.from_bytes(d).header.mode.name for d in corpus} == {"RGB", "GREY", "RGBA", "GREY_ALPHA"}
    assert any(Container.from_bytes(d).icc_profile for d in corpus)
    for data in corpus:
        assert run_case(tiny_codec, data, max_pixels=128 * 128) == "decoded"


def test_mutations_are_deterministic(tiny_codec):
    corpus = seed_corpus(tiny_codec)
    a = [mutate(random.Random(3), corpus) for _ in range(50)]
    b = [mutate(random.Random(3), corpus) for _ in range(50)]
    assert a == b


def test_fuzz_tiny_model(tiny_codec):
    """Every input ends decoded or refused by our error, each within seconds and bounded memory."""
    result = fuzz([tiny_codec], cases=2500, seed=0)
    assert result["bugs"] == [], result["bugs"][:5]
    assert set(result["outcomes"]) <= {"decoded", "refused"}
    assert result["outcomes"]["decoded"] > 100 and result["outcomes"]["refused"] > 1000  # both paths exercised
    assert result["max_case_cpu_seconds"] < 30  # generous: a shared CI core can be slow; a hang is not
    assert result["max_case_peak_rss_mb"] < result["rss_at_start_mb"] + 1024


def test_fuzz_shipped_model(shipped_codec):
    result = fuzz([shipped_codec], cases=150, seed=1)
    assert result["bugs"] == [], result["bugs"][:5]
    assert result["max_case_cpu_seconds"] < 20


def test_found_by_fuzzing_ans_data_ending_in_a_zero_word(tiny_codec):
    """constriction refuses such data with a ValueError at construction: now our error."""
    data = seed_corpus(tiny_codec)[1]
    c = Container.from_bytes(data)
    streams = list(c.streams)
    streams[2] = streams[2][:-4] + b"\0\0\0\0"
    with pytest.raises(CorruptFileError):
        tiny_codec.decompress(Container(c.header, streams).to_bytes())


def test_a_case_past_its_time_bound_is_reported(tiny_codec):
    """The hang detector itself: a bound far too small turns a normal decode into a report."""
    data = seed_corpus(tiny_codec)[6]
    assert run_case(tiny_codec, data, max_pixels=None, case_seconds=0.001) == "bug:CaseTimeout"


def test_a_timeout_inside_a_handler_of_every_exception_is_still_a_timeout(tiny_codec, monkeypatch):
    """The timer fires wherever the case is: in a handler that maps any ``Exception`` to our
    refusal (as the entropy decoder's does around constriction), it must still be a timeout."""
    def spins_under_a_broad_handler(*args, **kwargs):
        try:
            while True:
                pass
        except Exception:  # noqa: BLE001 - the kind of handler the timer must get past
            raise UserError("refused") from None

    monkeypatch.setattr(tiny_codec, "decompress", spins_under_a_broad_handler)
    data = seed_corpus(tiny_codec)[1]
    assert run_case(tiny_codec, data, max_pixels=None, case_seconds=0.05) == "bug:CaseTimeout"
