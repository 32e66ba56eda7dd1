"""The codec end to end: sizes, colour modes, rate control, cross-process bit-exactness."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import gancodec
from gancodec.bitstream import Container
from gancodec.metrics import psnr
from gancodec.models.integer import ExactSynthesis


@pytest.mark.parametrize("shape", [(1, 1, 3), (17, 33, 3), (513, 769, 3)])
def test_round_trip_any_size(tiny_codec, shape):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    data = gancodec.compress(img, quality=2, model=tiny_codec)
    header = Container.from_bytes(data).header
    assert (header.height, header.width) == shape[:2]
    for decoder in ("mse", "gan"):
        out = gancodec.decompress(data, decoder=decoder, model=tiny_codec)
        assert out.shape == shape and out.dtype == np.uint8


def test_greyscale_round_trips_as_greyscale(tiny_codec, photo):
    grey = photo.mean(axis=2).astype(np.uint8)
    out = gancodec.decompress(gancodec.compress(grey, quality=3, model=tiny_codec), model=tiny_codec)
    assert out.shape == grey.shape and out.ndim == 2


def test_alpha_is_stored_losslessly(tiny_codec, photo):
    rgba = np.dstack([photo, (np.arange(photo.shape[1]) % 256).astype(np.uint8)[None].repeat(photo.shape[0], 0)])
    out = gancodec.decompress(gancodec.compress(rgba, quality=3, model=tiny_codec), model=tiny_codec)
    assert out.shape == rgba.shape
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])


def test_pil_modes(tiny_codec, tmp_path, photo):
    from PIL import Image

    grey = photo[..., 0]
    ramp = np.broadcast_to(np.arange(grey.shape[1], dtype=np.uint8), grey.shape)
    images = {
        "L": Image.fromarray(grey),
        "LA": Image.fromarray(np.dstack([grey, ramp])),  # semi-transparent: alpha kept
        "P": Image.fromarray(photo).convert("P"),
        "I;16": Image.fromarray(grey.astype(np.uint16) * 257),
    }
    for mode, channels in (("L", 1), ("LA", 2), ("P", 3), ("I;16", 1)):
        img = images[mode]
        path = tmp_path / f"img_{mode.replace(';', '')}.png"
        img.save(path)
        out = gancodec.decompress(gancodec.compress(path, quality=1, model=tiny_codec), model=tiny_codec)
        assert (out.shape[2] if out.ndim == 3 else 1) == channels, mode


def test_quality_controls_rate(shipped_codec, photo):
    sizes = [len(gancodec.compress(photo, quality=q, model=shipped_codec)) for q in (1, 3.5, 6)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_bad_quality_is_a_user_error(tiny_codec, photo):
    for q in (0, 7, float("nan")):
        with pytest.raises(gancodec.UserError):
            gancodec.compress(photo, quality=q, model=tiny_codec)


def test_tiled_synthesis_matches_whole(tiny_codec, photo):
    """Tiles with margins reproduce the untiled transforms (no seams)."""
    from gancodec.tiling import run_tiled

    y = tiny_codec.analyse(np.tile(photo, (2, 2, 1)))  # 512×512 -> 32×32 latents
    whole = tiny_codec.net.g_s(y)
    codec = tiny_codec
    codec.tile, codec.tail_tile = 8, 3
    try:
        tiled = codec.synthesise(y, exact=False)
        assert torch.allclose(whole, tiled, atol=1e-5)
        exact_whole = ExactSynthesis(codec.net.g_s)(y)
        assert torch.equal(exact_whole, codec.synthesise(y))  # fixed point: tiles change nothing
    finally:  # back to the class's values (an instance attribute would shadow later class patches)
        del codec.tile, codec.tail_tile
    x = torch.from_numpy(np.tile(photo, (2, 2, 1))).permute(2, 0, 1)[None].float() / 255
    assert torch.allclose(tiny_codec.net.g_a(x), run_tiled(tiny_codec.net.g_a, x, 1 / 16, 128, 64), atol=1e-5)


def test_hyper_windows_equal_the_whole_run(shipped_codec, photo):
    """The decoder runs the integer hyper-synthesis on bands and on each tile's window, never on
    the whole latent; with ``hyper_margin`` z units of context every window is exactly the whole run's."""
    codec = shipped_codec
    y = codec.analyse(np.tile(photo, (2, 3, 1)))  # 512×768 -> z of 8×12
    gain, _ = codec._gains(2000)
    z_int = torch.round(codec.net.h_a((y.double() * gain).float())).double()
    means, indices = codec.hyper(z_int)
    h, w = means.shape[-2:]
    rng = np.random.default_rng(0)
    for _ in range(40):
        a0, b0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        a1, b1 = int(rng.integers(a0 + 1, h + 1)), int(rng.integers(b0 + 1, w + 1))
        m, i = codec._hyper_window(z_int, a0, a1, b0, b1)
        assert torch.equal(m, means[..., a0:a1, b0:b1]) and torch.equal(i, indices[..., a0:a1, b0:b1])


def test_bands_and_tiles_change_no_byte(tiny_codec, photo, monkeypatch):
    """Memory is bounded by bands and tiles (the whole latent is only ever held as int32
    symbols); their sizes change neither the file nor the decoded pixels."""
    img = np.tile(photo, (2, 2, 1))[:500, :470]
    data = tiny_codec.compress(img, quality=2)
    pixels = tiny_codec.decompress(data)
    codec_type = type(tiny_codec)
    monkeypatch.setattr(codec_type, "hyper_band", 1)
    monkeypatch.setattr(codec_type, "hyper_cols", 1)  # column windows too  # exact: the file cannot change
    assert tiny_codec.compress(img, quality=2, progress=True) == data
    monkeypatch.setattr(codec_type, "tile", 5)  # the analysis is float, so tiles only for decoding
    monkeypatch.setattr(codec_type, "tail_tile", 3)
    assert np.array_equal(tiny_codec.decompress(data, progress=True), pixels)
    monkeypatch.setattr(codec_type, "keep_means_elements", 0)  # large-image path: means per window
    assert np.array_equal(tiny_codec.decompress(data), pixels)


def test_large_image_layout_in_bands(tiny_codec, photo, monkeypatch):
    """Without a context model too, a file in bands (version 3, a large image's layout) decodes
    to the one-stream file's pixels, tiles straddling the bands, the memory of a few bands."""
    img = np.tile(photo, (2, 1, 1))[:200]
    one = tiny_codec.compress(img, quality=2)
    codec_type = type(tiny_codec)
    monkeypatch.setattr(codec_type, "band_pixels", 0)
    monkeypatch.setattr(codec_type, "band_rows", 5)
    data = tiny_codec.compress(img, quality=2)
    assert one[4] == 1 and data[4] == 3
    monkeypatch.setattr(codec_type, "tile", 3)
    monkeypatch.setattr(codec_type, "keep_means_elements", 0)
    assert np.array_equal(tiny_codec.decompress(data), tiny_codec.decompress(one))


def test_banded_fixed_point_ops_equal_one_shot(monkeypatch):
    """The exact synthesis runs transposed convolutions and inverse GDN on bands of rows (for
    speed); the integer sums make the result identical to the one-shot operation."""
    import torch.nn.functional as F

    from gancodec.layers import GDN
    from gancodec.models.integer import _FixedConv, _FixedIGDN

    torch.manual_seed(0)
    for (h, w), (k, stride, pad, out_pad) in [((1, 1), (5, 2, 2, 1)), ((9, 5), (5, 2, 2, 1)),
                                              ((7, 11), (3, 2, 1, 1)), ((6, 4), (4, 2, 1, 0))]:
        fixed = _FixedConv.of(torch.nn.ConvTranspose2d(6, 5, k, stride, pad, out_pad))
        a = torch.randint(-5000, 5000, (2, 6, h, w)).double()
        one_shot = F.conv_transpose2d(a, fixed.weight, fixed.bias, fixed.stride, fixed.padding, fixed.output_padding)
        for band in (1, 7, 10_000):
            monkeypatch.setattr(_FixedConv, "BAND_POSITIONS", band)
            assert torch.equal(fixed.accumulate(a), one_shot)
    igdn = _FixedIGDN(GDN(6, inverse=True))
    a = torch.randint(-50_000, 50_000, (1, 6, 9, 13)).double()
    monkeypatch.setattr(_FixedIGDN, "BAND_POSITIONS", 10_000)
    whole = igdn(a)
    monkeypatch.setattr(_FixedIGDN, "BAND_POSITIONS", 13)
    assert torch.equal(igdn(a), whole)


DECODE_SCRIPT = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(int(sys.argv[3]))
    import gancodec
    out = gancodec.decompress(open(sys.argv[1], "rb").read(), decoder=sys.argv[4], model=sys.argv[2])
    sys.stdout.buffer.write(out.tobytes())
""")


def _decode_in_fresh_process(path, model, threads, decoder) -> bytes:
    result = subprocess.run(
        [sys.executable, "-c", DECODE_SCRIPT, str(path), str(model), str(threads), decoder],
        capture_output=True, check=True,
    )
    return result.stdout


@pytest.mark.parametrize("which", ["tiny", "shipped"])
def test_bit_exact_across_processes_and_threads(which, tiny_model_dir, tmp_path, photo, request):
    if which == "shipped":
        codec = request.getfixturevalue("shipped_codec")
        model = str(codec.folder)
    else:
        codec = gancodec.load_model(str(tiny_model_dir))
        model = str(tiny_model_dir)
    path = tmp_path / "img.gcz"
    path.write_bytes(gancodec.compress(photo, quality=2.5, model=codec))
    for decoder in codec.decoders:
        reference = codec.decompress(path.read_bytes(), decoder=decoder).tobytes()
        for threads in (1, 2):
            assert _decode_in_fresh_process(path, model, threads, decoder) == reference


def test_exact_synthesis_matches_the_float_network(photo, shipped_codec):
    """The fixed-point decoder is the float network to well within one 8-bit step."""
    codec = shipped_codec
    y_hat = codec.decode_latent(Container.from_bytes(codec.compress(photo, quality=3)))
    for decoder in codec.decoders:
        exact = codec.synthesise(y_hat, decoder)
        fast = codec.synthesise(y_hat, decoder, exact=False).double()
        assert (exact - fast).abs().max().item() < 0.5 / 255
        assert (exact * 2**12 == torch.round(exact * 2**12)).all()  # on the fixed-point grid


def test_realism_blends_the_two_decoders_exactly(photo, shipped_codec, tmp_path):
    from gancodec.cli import main

    codec = shipped_codec
    data = codec.compress(photo, quality=1)
    mse, gan = codec.decompress(data, "mse"), codec.decompress(data, "gan")
    assert np.array_equal(codec.decompress(data, realism=0), mse)
    assert np.array_equal(codec.decompress(data, realism=1), gan)
    half = codec.decompress(data, realism=0.5)
    assert not np.array_equal(half, mse) and not np.array_equal(half, gan)
    lo, hi = np.minimum(mse, gan).astype(int), np.maximum(mse, gan).astype(int)
    assert np.mean((half >= lo - 1) & (half <= hi + 1)) > 0.99  # between the two, nearly everywhere
    fast = np.abs(codec.decompress(data, exact=False, realism=0.5).astype(int) - half)
    # An anchored GAN image sums three decoders' rounded pixels, each of which may flip by one.
    assert fast.max() <= (3 if codec.anchored else 1) and np.mean(fast > 1) < 0.01
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(gancodec.UserError, match="realism"):
            codec.decompress(data, realism=bad)
    (tmp_path / "a.gcz").write_bytes(data)
    assert main(["decompress", str(tmp_path / "a.gcz"), "-o", str(tmp_path / "a.png"), "--realism", "0.5"]) == 0
    assert np.array_equal(gancodec.imageio.load_rgb_array(tmp_path / "a.png"), half)


def _tiny_model_with_distinct_gan_decoder(seed: int):
    """The tiny test codec with a GAN decoder that decodes visibly differently from its MSE one."""
    from gancodec.models.codec import CodecConfig, HiFiCLite

    from .conftest import TINY_CONFIG

    torch.manual_seed(seed)
    model = HiFiCLite(CodecConfig(**TINY_CONFIG))
    model.add_gan_decoder()
    with torch.no_grad():
        for p in model.g_s_gan.parameters():
            p.mul_(1 + 0.5 * torch.rand_like(p))
    return model


def test_pixel_blend_models_blend_the_decoders_images(photo, tmp_path):
    """A model exported with realism_blend "pixels" decodes --realism r as the rounded integer
    blend of its two decoders' pixels, exactly; its ends are the decoders; the float path agrees
    to one level; and a model without the key keeps blending weights."""
    from gancodec.zoo.export import export_model

    model = _tiny_model_with_distinct_gan_decoder(seed=1)
    export_model(model, tmp_path / "pixels", name="tiny-pixels", realism_blend="pixels")
    export_model(model, tmp_path / "weights", name="tiny-pixels")
    pixels, weights = gancodec.load_model(str(tmp_path / "pixels")), gancodec.load_model(str(tmp_path / "weights"))
    assert (pixels.realism_blend, weights.realism_blend) == ("pixels", "weights")
    data = pixels.compress(photo[:80, :96], quality=2)
    mse, gan = pixels.decompress(data, "mse"), pixels.decompress(data, "gan")
    assert not np.array_equal(mse, gan)
    assert np.array_equal(pixels.decompress(data, realism=0), mse)
    assert np.array_equal(pixels.decompress(data, realism=1), gan)
    for r in (0.001, 0.3, 0.5):
        k = round(1000 * r)
        want = ((mse.astype(np.int64) * (1000 - k) + gan.astype(np.int64) * k + 500) // 1000).astype(np.uint8)
        assert np.array_equal(pixels.decompress(data, realism=r), want)
    fast = pixels.decompress(data, exact=False, realism=0.5)
    assert np.abs(fast.astype(int) - pixels.decompress(data, realism=0.5)).max() <= 1
    assert not np.array_equal(weights.decompress(data, realism=0.5), pixels.decompress(data, realism=0.5))
    with pytest.raises(gancodec.UserError, match="realism blend"):
        export_model(model, tmp_path / "bad", realism_blend="average")


def test_anchored_gan_decoder_adds_its_texture_to_the_new_mse_image(photo, tmp_path):
    """`gancodec train anchor`: a model whose MSE decoder was retrained after its GAN decoder,
    anchored to the MSE decoder the GAN one was trained against, decodes exactly as before with
    the MSE decoder, and with the GAN decoder as clip(MSE + GAN − anchor's MSE) in 8-bit pixels;
    --realism blends the MSE and that anchored image; refused where it cannot apply."""
    import json

    from gancodec.cli import main
    from gancodec.models.codec import CodecConfig, HiFiCLite
    from gancodec.zoo.export import anchor_gan_decoder, export_model

    from .conftest import TINY_CONFIG

    model = _tiny_model_with_distinct_gan_decoder(seed=2)
    export_model(model, tmp_path / "old", name="tiny-a", realism_blend="pixels")
    with torch.no_grad():  # the MSE decoder "retrained" after the GAN decoder
        for p in model.g_s.parameters():
            p.mul_(1 + 0.2 * torch.rand_like(p))
    export_model(model, tmp_path / "new", name="tiny-a", realism_blend="pixels")
    assert main(["train", "anchor", str(tmp_path / "new"), "--anchor", str(tmp_path / "old"),
                 "--out", str(tmp_path / "anchored"), "--model-version", "9.9"]) == 0
    old, new = gancodec.load_model(str(tmp_path / "old")), gancodec.load_model(str(tmp_path / "new"))
    anchored = gancodec.load_model(str(tmp_path / "anchored"))
    assert anchored.anchored and not new.anchored and anchored.version == "9.9"
    assert anchored.weights_hash != new.weights_hash and anchored.decoders == ["mse", "gan"]
    assert json.loads((tmp_path / "anchored" / "config.json").read_text())["gan_anchor"].startswith("MSE synthesis")

    img = photo[:80, :96]
    data, data_new, data_old = (m.compress(img, quality=2) for m in (anchored, new, old))
    # One bitstream: only the header's model hash differs.
    assert Container.from_bytes(data).streams == Container.from_bytes(data_new).streams
    mse = anchored.decompress(data, "mse")
    assert np.array_equal(mse, new.decompress(data_new, "mse"))
    raw_gan, old_mse = new.decompress(data_new, "gan"), old.decompress(data_old, "mse")
    want = np.clip(mse.astype(np.int32) + raw_gan - old_mse, 0, 255).astype(np.uint8)
    gan = anchored.decompress(data, "gan")
    assert np.array_equal(gan, want) and not np.array_equal(gan, raw_gan)
    assert np.array_equal(anchored.decompress(data, realism=1), gan)
    assert np.array_equal(anchored.decompress(data, realism=0), mse)
    k = 300
    blend = ((mse.astype(np.int64) * (1000 - k) + gan.astype(np.int64) * k + 500) // 1000).astype(np.uint8)
    assert np.array_equal(anchored.decompress(data, realism=0.3), blend)
    fast = anchored.decompress(data, "gan", exact=False)  # three rounded images: each may flip by one
    assert np.abs(fast.astype(int) - gan).max() <= 3
    # The float synthesis of the anchored image clamps as the 8-bit one does.
    y_hat = anchored.decode_latent(Container.from_bytes(data))
    assert np.abs(torch.round(anchored.synthesise(y_hat, "gan").clamp(0, 1) * 255)[0].permute(1, 2, 0).numpy()
                  [:80, :96] - gan).max() <= 3
    # Greyscale and alpha files go through the same blend.
    grey = img.mean(axis=2).astype(np.uint8)
    assert anchored.decompress(anchored.compress(grey, quality=2), "gan").shape == grey.shape
    rgba = np.dstack([img, np.full(img.shape[:2], 7, np.uint8)])
    decoded = anchored.decompress(anchored.compress(rgba, quality=2), "gan", realism=None)
    assert decoded.shape == rgba.shape and (decoded[..., 3] == 7).all()
    # Rows streamed to a file are the same pixels.
    (tmp_path / "a.gcz").write_bytes(data)
    assert main(["decompress", str(tmp_path / "a.gcz"), "-o", str(tmp_path / "a.png"), "--decoder", "gan",
                 "--model", str(tmp_path / "anchored")]) == 0
    assert np.array_equal(gancodec.imageio.load_rgb_array(tmp_path / "a.png"), gan)

    with pytest.raises(gancodec.UserError, match="anchored already"):
        anchor_gan_decoder(tmp_path / "anchored", tmp_path / "old", tmp_path / "twice")
    with pytest.raises(gancodec.UserError, match="its own model"):
        anchor_gan_decoder(tmp_path / "new", tmp_path / "new", tmp_path / "self")
    with pytest.raises(gancodec.UserError, match="only as pixels"):
        export_model(anchored.net, tmp_path / "weights-blend")
    (tmp_path / "sr").mkdir()  # a model folder, but not a codec's
    (tmp_path / "sr" / "config.json").write_text("{}")
    (tmp_path / "sr" / "fidelity.safetensors").write_bytes(b"")
    with pytest.raises(gancodec.UserError, match="not a codec model"):
        anchor_gan_decoder(tmp_path / "new", tmp_path / "sr", tmp_path / "z")
    mse_only = HiFiCLite(CodecConfig(**TINY_CONFIG))
    export_model(mse_only, tmp_path / "mse-only", name="tiny-b")
    with pytest.raises(gancodec.UserError, match="no GAN decoder"):
        anchor_gan_decoder(tmp_path / "mse-only", tmp_path / "old", tmp_path / "x")
    export_model(HiFiCLite(CodecConfig(**{**TINY_CONFIG, "res_blocks": 2})), tmp_path / "deeper", name="tiny-c")
    with pytest.raises(gancodec.UserError, match="not shaped like"):
        anchor_gan_decoder(tmp_path / "new", tmp_path / "deeper", tmp_path / "y")
    config = json.loads((tmp_path / "anchored" / "config.json").read_text())
    del config["realism_blend"]
    (tmp_path / "anchored" / "config.json").write_text(json.dumps(config))
    with pytest.raises(gancodec.UserError, match="realism_blend 'pixels'"):
        gancodec.codec.Codec("bad", tmp_path / "anchored")


def test_blended_parameters_are_the_decoders_blend(tiny_codec):
    """The training blend is the decoder's: its ends are the two networks, gradients reach both,
    and at every realism the exact (fixed-point) blend decodes what the float blend does."""
    from gancodec.models.codec import blended_parameters

    net = copy.deepcopy(tiny_codec.net).requires_grad_(True)
    if net.g_s_gan is None:
        net.add_gan_decoder()
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.g_s_gan.parameters():
            p.mul_(1 + 0.2 * torch.rand_like(p))
    y = torch.randn(1, net.config.latent_channels, 3, 4)
    call = torch.func.functional_call
    for r, end in ((0.0, net.g_s), (1.0, net.g_s_gan)):
        out = call(net.g_s_gan, blended_parameters(net.g_s, net.g_s_gan, r), (y,))
        assert torch.allclose(out, end(y), atol=1e-5)
    out = call(net.g_s_gan, blended_parameters(net.g_s, net.g_s_gan, 0.3), (y,))
    out.square().sum().backward()
    assert all(p.grad is not None for p in net.g_s.parameters())
    assert all(p.grad is not None for p in net.g_s_gan.parameters())
    with torch.no_grad():
        exact = ExactSynthesis(net.g_s).blended(ExactSynthesis(net.g_s_gan), 300)(y.double())
        assert (exact - out.detach().double()).abs().max().item() < 0.5 / 255


def test_api_defaults_to_the_shipped_model(photo, shipped_codec):
    data = gancodec.compress(photo[:64, :64], quality=1)
    assert gancodec.decompress(data).shape == (64, 64, 3)


def test_target_bpp_lands_within_ten_percent(photo, shipped_codec):
    codec = shipped_codec
    pixels = photo.shape[0] * photo.shape[1]
    for target in (0.25, 0.4, 0.6):  # inside the shipped model's range on this image (v0.6: 0.17-0.72)
        data = gancodec.compress(photo, target_bpp=target, model=codec)
        assert abs(8 * len(data) / pixels - target) <= 0.1 * target


def test_shipped_model_beats_jpeg_at_equal_bytes(photo, shipped_codec):
    """Sanity check of the shipped weights: at JPEG's own size, our MSE decoder is better."""
    from gancodec.demo import _decode_jpeg, jpeg_at_bytes

    codec = shipped_codec
    data = codec.compress(photo, quality=1)
    jpeg, _ = jpeg_at_bytes(photo, len(data))
    assert psnr(photo, codec.decompress(data)) > psnr(photo, _decode_jpeg(jpeg))


def test_files_written_before_metadata_streams_decode_bit_exactly():
    """Version-1 files written by the shipped model before format version 2 existed (commit
    9ae3103) decode to the same pixels, byte for byte. Files of other releases are left to
    tests/test_versions.py, which decodes every fixture through the installed release that wrote it."""
    import hashlib
    import json
    from pathlib import Path

    folder = Path(__file__).parent / "data" / "gcz-v1"
    expected = json.loads((folder / "decoded-sha256.json").read_text())
    if "hific-lite" not in gancodec.available_models():
        pytest.skip("shipped hific-lite weights are not in the package")
    codec = gancodec.load_model("hific-lite")
    checked = 0
    for key, digest in expected.items():
        name, decoder = key.split(":")
        data = (folder / name).read_bytes()
        header = Container.from_bytes(data).header
        if header.weights_hash != codec.weights_hash:
            continue  # written by another release
        checked += 1
        assert data[4] in (1, 3)  # one y stream, or in bands (astronaut-v0.8-bands.gcz)
        how = {"realism": float(decoder[8:])} if decoder.startswith("realism=") else {"decoder": decoder}
        assert hashlib.sha256(codec.decompress(data, **how).tobytes()).hexdigest() == digest, key
    if not checked:
        pytest.skip("the shipped hific-lite weights are not the ones these files were made with")


def test_large_images_analyse_in_smaller_tiles(tiny_codec, photo, monkeypatch):
    """Above LARGE_IMAGE_PIXELS the analysis runs in smaller tiles (less memory); with its margin
    covering the receptive field the latent is the same, up to float rounding."""
    from gancodec import codec as codec_module

    img = np.tile(photo, (2, 2, 1))[:300, :280]
    whole = tiny_codec.analyse(img)
    monkeypatch.setattr(codec_module, "LARGE_IMAGE_PIXELS", 1000)
    monkeypatch.setattr(type(tiny_codec), "large_analysis_tile", 5)
    tiles = []
    real = codec_module.run_tiled
    monkeypatch.setattr(codec_module, "run_tiled", lambda *a, **k: tiles.append(a[3]) or real(*a, **k))
    tiled = tiny_codec.analyse(img)
    assert tiles == [5 * 16]
    assert torch.allclose(tiled, whole, atol=1e-5, rtol=1e-5)


def test_large_images_keep_their_latent_on_disk_with_the_same_bytes(tiny_codec, photo, monkeypatch):
    """Above SPILL_LATENT_PIXELS the encoder's latent lives in a temporary file (DiskTensor);
    the file it writes is the in-memory encoder's, byte for byte, at a quality and at a bpp."""
    from gancodec import codec as codec_module
    from gancodec.tiling import DiskTensor

    img = np.tile(photo, (2, 2, 1))[:300, :280]
    in_memory = [tiny_codec.compress(img, quality=2), tiny_codec.compress(img, target_bpp=0.5)]
    made = []
    real_init = DiskTensor.__init__
    monkeypatch.setattr(DiskTensor, "__init__", lambda self, *a, **k: made.append(self) or real_init(self, *a, **k))
    monkeypatch.setattr(codec_module, "SPILL_LATENT_PIXELS", 1000)
    on_disk = [tiny_codec.compress(img, quality=2), tiny_codec.compress(img, target_bpp=0.5)]
    assert on_disk == in_memory
    assert len(made) == 2 and all(t._store._file.closed for t in made)  # closed (and so deleted) after use


@pytest.mark.parametrize("mode", ["RGB", "L", "P"])
def test_large_pngs_are_read_as_the_analysis_moves_down(tiny_codec, photo, monkeypatch, tmp_path, mode):
    """Above LARGE_IMAGE_PIXELS a plain PNG is never read whole: its rows are read as the
    analysis's tiles move down and dropped once passed; the file is the one its pixels give."""
    from PIL import Image

    from gancodec import codec as codec_module
    from gancodec.imageio import StreamedRGB

    img = Image.fromarray(np.tile(photo, (2, 2, 1))[:300, :280]).convert(mode)
    path = tmp_path / "large.png"
    img.save(path)
    monkeypatch.setattr(codec_module, "LARGE_IMAGE_PIXELS", 1000)
    monkeypatch.setattr(type(tiny_codec), "large_analysis_tile", 5)
    monkeypatch.setattr(StreamedRGB, "band_bytes", 7 * (1 + 280 * len(img.getbands())))  # bands of 7 rows
    held = []
    real_rows = StreamedRGB.rows
    monkeypatch.setattr(StreamedRGB, "rows", lambda self, a0, a1: (
        real_rows(self, a0, a1), held.append(sum(len(b) for _, b in self._held)))[0])
    streamed = tiny_codec.compress(str(path), quality=2)
    assert held and max(held) <= 5 * 16 + 2 * 64 + 7  # a tile row, its margins and one band, never 300
    pixels = np.asarray(img.convert("L" if mode == "L" else "RGB"))
    assert streamed == tiny_codec.compress(pixels, quality=2)
    assert streamed == tiny_codec.compress(Image.open(path), quality=2)  # a PIL image is not streamed
    if mode == "RGB":  # damaged image data is found as it is read: a one-line error
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(gancodec.UserError, match="cannot read image"):
            tiny_codec.compress(str(path), quality=2)


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_in_place_at_inference_gives_the_same_values(inverse):
    """Without autograd GDN works in place (a large tile's analysis holds two activations fewer);
    the values are those of the autograd path, bit for bit."""
    from gancodec.layers import GDN

    gdn = GDN(16, inverse=inverse)
    x = torch.randn(2, 16, 33, 35)
    with torch.no_grad():
        fast = gdn(x)
    assert torch.equal(fast, gdn(x).detach()) and not torch.equal(fast, x)


def test_disk_tensor_gives_back_what_was_written():
    from gancodec.tiling import DiskTensor, run_tiled

    x = torch.randn(1, 5, 37, 29)
    with DiskTensor(5, 37, 29) as store:
        run_tiled(lambda t: t, x, 1, 8, 2, sink=store)
        assert torch.equal(store.window(0, 37, 0, 29), x)
        assert torch.equal(store.window(3, 20, 7, 11), x[..., 3:20, 7:11])


def test_no_room_for_the_latent_file_is_a_user_error(tiny_codec, photo, monkeypatch, tmp_path):
    import tempfile

    from gancodec import codec as codec_module

    monkeypatch.setattr(codec_module, "SPILL_LATENT_PIXELS", 1000)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    with pytest.raises(gancodec.UserError, match="temporary file"):
        tiny_codec.compress(photo, quality=2)
