"""The checkerboard context model: two-pass entropy coding, exact integer parameters, the
entropy training stage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gancodec.bitstream import Container
from gancodec.cli import main
from gancodec.entropy import coder
from gancodec.entropy.context import anchor_mask
from gancodec.models.codec import CodecConfig, HiFiCLite
from tests.conftest import TINY_CONFIG


@pytest.fixture(scope="module")
def context_model():
    """A tiny model whose context model really changes the non-anchors' parameters."""
    torch.manual_seed(3)
    model = HiFiCLite(CodecConfig(**TINY_CONFIG, context="checkerboard"))
    torch.nn.init.normal_(model.context.ep[-1].weight, 0.0, 0.05)
    torch.nn.init.normal_(model.context.ep[-1].bias, 0.0, 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def context_codec(context_model, tmp_path_factory):
    import gancodec
    from gancodec.zoo.export import export_model

    folder = tmp_path_factory.mktemp("zoo") / "tiny-ctx"
    export_model(context_model, folder, name="tiny-ctx")
    return gancodec.load_model(str(folder))


def test_anchor_mask_is_a_checkerboard():
    m = anchor_mask(3, 4)
    assert m.tolist() == [[True, False, True, False], [False, True, False, True], [True, False, True, False]]
    assert np.array_equal(anchor_mask(2, 3, 1, 2), anchor_mask(3, 5)[1:, 2:])


def test_passes_share_one_stream_and_escapes():
    from gancodec.entropy.coder import TableSet
    from gancodec.entropy.gaussian import gaussian_pmf_tables, scale_table

    tables = TableSet(tuple(gaussian_pmf_tables(scale_table(8))))
    rng = np.random.default_rng(0)
    first = (rng.integers(-3, 4, 500).astype(np.int32), rng.integers(0, 8, 500).astype(np.uint8))
    second = (rng.integers(-3, 4, 300).astype(np.int32), rng.integers(0, 8, 300).astype(np.uint8))
    first[0][7], second[0][9] = 5000, -7000  # escapes in both passes
    stream, escapes = coder.encode_passes([first, second], tables)
    assert coder.encode_passes([first], tables) == coder.encode(*first, tables)
    reader = coder.StreamDecoder(stream, escapes, tables)
    assert np.array_equal(reader.decode(first[1]), first[0])
    assert np.array_equal(reader.decode(second[1]), second[0])
    reader.finish()


def test_untrained_context_is_the_hyperprior():
    torch.manual_seed(0)
    plain = HiFiCLite(CodecConfig(**TINY_CONFIG)).eval()
    with_ctx = HiFiCLite(CodecConfig(**TINY_CONFIG)).eval()
    with_ctx.load_state_dict(plain.state_dict())
    with_ctx.add_context()
    x, q = torch.rand(1, 3, 128, 128), torch.tensor([2.0])
    with torch.no_grad():
        a, b = plain(x, q), with_ctx(x, q)
    assert torch.equal(a["y_likelihoods"], b["y_likelihoods"]) and torch.equal(a["x_hat"], b["x_hat"])


def test_decoder_reads_back_the_symbols_the_encoder_coded(context_codec, photo, monkeypatch):
    coded, read = [], []
    real_encode, real_decode = coder.encode_passes, coder.StreamDecoder.decode_into

    def selected(a, select):
        return np.array(a if select is None else a[..., select])

    def spy_encode(passes, tables):
        coded.extend(selected(s, rest[0] if rest else None) for s, _, *rest in passes)
        return real_encode(passes, tables)

    def spy_decode(self, out, indices, select=None):
        out = real_decode(self, out, indices, select)
        read.append(selected(out, select))
        return out

    monkeypatch.setattr(coder, "encode_passes", spy_encode)
    monkeypatch.setattr(coder.StreamDecoder, "decode_into", spy_decode)
    data = context_codec.compress(photo, quality=2)
    pixels = context_codec.decompress(data)
    assert pixels.shape == photo.shape
    # z (one pass), then y's two passes: anchors, then the rest
    assert len(coded) == 3 and len(read) == 3
    for c, r in zip(coded, read):
        assert np.array_equal(c.reshape(-1), r.reshape(-1))


@pytest.mark.parametrize("chunk", [coder.CHUNK, 7, 20, 41])  # whole planes per piece, and pieces of a plane
def test_selected_passes_code_like_gathered_copies(monkeypatch, chunk):
    """A pass given as (symbols, indices, select) is coded byte for byte as the gathered
    (symbols[..., select], indices[..., select]), and decode_into writes it back in place,
    into an int16 array widened where an escape needs it."""
    from gancodec.entropy.coder import TableSet
    from gancodec.entropy.gaussian import gaussian_pmf_tables, scale_table

    monkeypatch.setattr(coder, "CHUNK", chunk)
    tables = TableSet(tuple(gaussian_pmf_tables(scale_table(8))))
    rng = np.random.default_rng(1)
    symbols = rng.integers(-3, 4, (1, 3, 5, 6)).astype(np.int32)
    indices = rng.integers(0, 8, symbols.shape).astype(np.uint8)
    symbols[0, 1, 2, 2], symbols[0, 2, 3, 4] = 5000, -70000  # escapes, one beyond int16, in both halves
    anchors = anchor_mask(5, 6)
    gathered = [(symbols[..., anchors], indices[..., anchors]), (symbols[..., ~anchors], indices[..., ~anchors])]
    stream = coder.encode_passes([(symbols, indices, anchors), (symbols, indices, ~anchors)], tables)
    assert stream == coder.encode_passes(gathered, tables)
    reader = coder.StreamDecoder(*stream, tables)
    out = reader.decode_into(np.zeros(symbols.shape, np.int16), indices, anchors)
    assert out.dtype == np.int16 and np.array_equal(out[..., anchors], symbols[..., anchors])
    out = reader.decode_into(out, indices, ~anchors)
    reader.finish()
    assert out.dtype == np.int32 and np.array_equal(out, symbols)


def test_context_bands_and_tiles_change_no_byte(context_codec, photo, monkeypatch):
    data = context_codec.compress(photo, quality=3)
    pixels = context_codec.decompress(data)
    monkeypatch.setattr(context_codec, "hyper_band", 1)
    monkeypatch.setattr(context_codec, "hyper_cols", 1)  # column windows too
    monkeypatch.setattr(context_codec, "tile", 4)
    monkeypatch.setattr(context_codec, "tail_tile", 4)
    assert context_codec.compress(photo, quality=3) == data
    assert np.array_equal(context_codec.decompress(data), pixels)
    monkeypatch.setattr(context_codec, "keep_means_elements", 0)  # large-image path: means per window
    assert np.array_equal(context_codec.decompress(data), pixels)


def test_integer_context_follows_the_float_model(context_model, context_codec, photo):
    """The exact integer parameters are the float network's, up to fixed-point rounding."""
    x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
    q = torch.tensor([3.0])
    with torch.no_grad():
        y = context_model.g_a(x)
        gain, _ = context_model.gains(q)
        y_g = y * gain
        z = torch.round(context_model.h_a(y_g))
        means, scales = context_model.h_s(z).chunk(2, dim=1)
        y_hat = torch.round(y_g - means) + means
        anchors = torch.from_numpy(anchor_mask(*y.shape[-2:])).float()
        c_means, _ = context_model.context(y_hat * anchors, means, scales)
    symbols = torch.round(y_g - means).to(torch.int32).numpy()
    int_means, _ = context_codec._params_window(z.double(), symbols, 0, y.shape[-2], 0, y.shape[-1])
    rest = ~anchors.bool()
    assert (int_means.float() - c_means)[..., rest].abs().max() < 0.02
    assert (int_means.float() - means)[..., anchors.bool()].abs().max() < 0.01
    assert (c_means - means)[..., rest].abs().max() > 0.1  # the context really moved them


def test_entropy_stage_trains_resumes_and_exports(tmp_path, photo):
    from PIL import Image

    import gancodec

    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(photo).save(data / "a.png")
    torch.manual_seed(0)
    init = tmp_path / "init"
    init.mkdir()
    model = HiFiCLite(CodecConfig(**TINY_CONFIG))
    torch.save({"kind": "codec", "config": model.config.to_dict(), "nets": {"codec": model.state_dict()},
                "stage": "rd", "step": 0}, init / "checkpoint.pt")
    run, cache = tmp_path / "run", tmp_path / "cache.pt"
    common = ["train", "codec", "--stage", "entropy", "--data", str(data), "--crop", "64", "--batch-size", "2",
              "--cache-crops", "4", "--latent-cache", str(cache), "--out", str(run), "--no-progress",
              "--sample-every", "0", "--device", "cpu", "--precision", "fp32"]
    assert main([*common, "--init", str(init), "--steps", "2"]) == 0
    assert cache.is_file()
    assert main([*common, "--steps", "4", "--resume"]) == 0
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 4 and state["config"]["context"] == "checkerboard"
    # only the entropy model of y learned
    for k, v in state["nets"]["codec"].items():
        if k.startswith(("g_a.", "g_s.", "h_a.", "prior.")):
            assert torch.equal(v, model.state_dict()[k]), k
    assert main(["train", "export", str(run), "--out", str(tmp_path / "m")]) == 0
    codec = gancodec.load_model(str(tmp_path / "m"))
    assert codec.decompress(codec.compress(photo, quality=1)).shape == photo.shape
    assert main([*common[:-4], "--out", str(tmp_path / "x"), "--steps", "1"]) == 2  # no --init


def test_fuzzing_the_two_pass_decoder_finds_nothing(context_codec):
    """Hostile files against the context model's decoder: an image or our error, never a crash."""
    from gancodec.fuzz import fuzz

    result = fuzz([context_codec], cases=400, seed=2)
    assert result["bugs"] == [], result["bugs"][:5]
    assert result["outcomes"].get("decoded", 0) > 10 and result["outcomes"].get("refused", 0) > 100


@pytest.mark.parametrize("which", ["context", "plain"])
def test_symbols_beyond_int16_widen_instead_of_wrapping(context_codec, tiny_codec, photo, monkeypatch, which):
    """Encoder and decoder keep symbols in int16 while they fit; a latent with larger values (here
    an analysis scaled ×3,000,000, as a forged file's escapes could be) is held in int32, is
    coded to exactly the all-int32 encoder's bytes and decodes to exactly the symbols the
    all-int32 decoder reads."""
    from gancodec import codec as codec_module
    from gancodec.bitstream import Container
    from gancodec.entropy.coder import StreamDecoder

    codec = context_codec if which == "context" else tiny_codec
    normal = codec.compress(photo[:64, :64], quality=1)
    real = type(codec).analyse
    monkeypatch.setattr(type(codec), "analyse",
                        lambda self, rgb, progress=False, to_disk=False: real(self, rgb) * 3_000_000)
    large = codec.compress(photo[:64, :64], quality=1)
    kept = []  # the arrays the decoder holds the symbols in

    def spy(f):
        def wrapped(*args):
            kept.append(f(*args))
            return kept[-1]
        return wrapped

    monkeypatch.setattr(StreamDecoder, "decode_into", spy(StreamDecoder.decode_into))
    for data, dtype in ((large, np.int32), (normal, np.int16)):
        latent = codec.decode_latent(Container.from_bytes(data))
        assert kept[-1].dtype == dtype
        assert (np.abs(kept[-1]).max() > 2**15) == (dtype == np.int32)  # the test reaches the widening
        with monkeypatch.context() as m:  # the all-int32 decoder
            m.setattr(codec_module, "SYMBOL_DTYPE", np.int32)
            assert torch.equal(codec.decode_latent(Container.from_bytes(data)), latent)
            assert kept[-1].dtype == np.int32
    with monkeypatch.context() as m:  # the all-int32 encoder
        m.setattr(codec_module, "SYMBOL_DTYPE", np.int32)
        assert codec.compress(photo[:64, :64], quality=1) == large


@pytest.mark.parametrize("band_rows", [4, 6, 64])
def test_banded_file_decodes_the_same_pixels(context_codec, photo, monkeypatch, band_rows):
    """A large image's y stream in bands (version 3) holds the same symbols as the one-stream
    layout: the decoded pixels are identical, whatever the bands, tiles and means path."""
    img = np.tile(photo, (3, 1, 1))[:330]  # 21 latent rows: bands of 4 and 6 rows, one of 64
    one = context_codec.compress(img, quality=2)
    monkeypatch.setattr(context_codec, "band_pixels", 0)
    monkeypatch.setattr(context_codec, "band_rows", band_rows)
    data = context_codec.compress(img, quality=2, progress=True)
    assert data[4] == (3 if band_rows < 21 else one[4])
    if band_rows >= 21:  # one band: the version 1 file, byte for byte
        assert data == one
    pixels = context_codec.decompress(one)
    assert np.array_equal(context_codec.decompress(data), pixels)
    monkeypatch.setattr(context_codec, "tile", 3)  # windows straddle the bands
    monkeypatch.setattr(context_codec, "keep_means_elements", 0)
    assert np.array_equal(context_codec.decompress(data), pixels)
    assert np.array_equal(context_codec.decode_latent(Container.from_bytes(data)),
                          context_codec.decode_latent(Container.from_bytes(one)))


def test_banded_file_damage_is_refused(context_codec, photo, monkeypatch):
    import struct

    from gancodec.errors import CorruptFileError

    monkeypatch.setattr(context_codec, "band_pixels", 0)
    monkeypatch.setattr(context_codec, "band_rows", 4)
    data = context_codec.compress(np.tile(photo, (2, 1, 1))[:200], quality=2)
    container = Container.from_bytes(data)
    y = container.streams[2]

    def forged(new_y: bytes) -> bytes:
        c = Container.from_bytes(data)
        c.streams[2] = new_y
        return c.to_bytes()

    # each forgery has its CRC recomputed, as an attacker would
    for bad, why in [(struct.pack("<H", 3) + y[2:], "bands of 3 rows"),
                     (struct.pack("<H", 8) + y[2:], "lengths disagree"),
                     (y[:2] + struct.pack("<I", struct.unpack_from("<I", y, 2)[0] + 4) + y[6:], "lengths disagree"),
                     (y[:5], "truncated")]:
        with pytest.raises(CorruptFileError, match=why):
            context_codec.decompress(forged(bad))
