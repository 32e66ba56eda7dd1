"""Restoration and super-resolution: degradations, both training stages, export, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gancodec.cli import main
from gancodec.metrics import psnr
from gancodec.training import degradations

TINY = ["--width", "8", "--blocks", "1", "--batch-size", "2", "--crop", "32", "--no-progress"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from skimage import data

    d = tmp_path_factory.mktemp("clean")
    img = data.astronaut()
    for i in range(2):
        Image.fromarray(img[i * 100 : i * 100 + 96, :96]).save(d / f"{i}.png")
    return d


@pytest.mark.parametrize("task", ["jpeg", "denoise", "auto"])
def test_degradations_change_the_image_plausibly(photo, task):
    rng = np.random.default_rng(0)
    out = degradations.degrade(photo, task, rng)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert 15 < psnr(photo, out) < 60


def test_jpeg_degradation_is_pillow_jpeg(photo):
    import io

    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="JPEG", quality=20)
    assert np.array_equal(degradations.jpeg(photo, 20), np.asarray(Image.open(buf)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, folder):
    """Tiny restoration and ×2 SR models through both stages and export."""
    root = tmp_path_factory.mktemp("runs")
    models = {}
    for what, extra in (("restore", []), ("sr", ["--scale", "2"])):
        fid, gan = root / f"{what}-fid", root / f"{what}-gan"
        data = ["--data", str(folder)]
        assert main(["train", what, *data, "--steps", "2", "--out", str(fid), *extra, *TINY]) == 0
        assert main(["train", what, *data, "--stage", "gan", "--init", str(fid), "--steps", "2",
                     "--out", str(gan), *TINY]) == 0
        out = root / "zoo" / f"{what}-tiny"
        for run in (fid, gan):
            assert main(["train", "export", str(run), "--out", str(out)]) == 0
        models[what] = out
    return models


def test_restore_cli_and_realism_blend(trained, tmp_path, photo):
    src = tmp_path / "in.jpg"
    Image.fromarray(photo).save(src, quality=15)
    for realism in ("0", "0.5", "1"):
        out = tmp_path / f"out{realism}.png"
        assert main(["restore", str(src), "-o", str(out), "--model", str(trained["restore"]),
                     "--realism", realism, "--task", "jpeg"]) == 0
        assert Image.open(out).size == Image.open(src).size


def test_strength_zero_is_identity(trained, photo):
    from gancodec.zoo import load_enhancer

    model = load_enhancer(str(trained["restore"]))
    assert np.array_equal(model.run(photo, strength=0.0), photo)


def test_upscale_cli(trained, tmp_path, photo):
    src = tmp_path / "small.png"
    Image.fromarray(photo[:40, :30]).save(src)
    out = tmp_path / "big.png"
    assert main(["upscale", str(src), "-o", str(out), "--scale", "2", "--model", str(trained["sr"])]) == 0
    assert Image.open(out).size == (60, 80)


@pytest.mark.parametrize("kind", ["restore", "sr"])
def test_tiled_matches_untiled(trained, kind, photo):
    """Tiles read from and write to uint8 arrays (memory bounded by the tile); SR runs its
    full-resolution tail in tiles of its own. Neither leaves a seam."""
    import torch

    from gancodec.zoo import load_enhancer

    model = load_enhancer(str(trained[kind]))
    image = photo[:160, :144]
    model.set_realism(0.0)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        y = model.net(x, "auto", 1.0) if kind == "restore" else model.net(x)
    whole = (y[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    for tile, tail_tile in [(256, 64), (64, 64), (64, 5)]:
        model.tile, model.sr_tail_tile = tile, tail_tile
        try:
            tiled = model.run(image)
        finally:
            model.tile, model.sr_tail_tile = 256, 64
        assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1, (tile, tail_tile)


def test_bad_inputs(trained, tmp_path, photo, capsys):
    one = tmp_path / "one.png"
    Image.fromarray(photo[:1, :1]).save(one)
    cases = [
        ["upscale", str(one), "-o", str(tmp_path / "o.png"), "--scale", "2", "--model", str(trained["sr"])],
        ["upscale", str(one), "-o", str(tmp_path / "o.png"), "--scale", "3", "--model", str(trained["sr"])],
        ["upscale", str(one), "-o", str(tmp_path / "o.png"), "--scale", "4", "--model", str(trained["sr"])],
        ["restore", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o.png"), "--model", str(trained["restore"])],
        ["restore", str(one), "-o", str(tmp_path / "nodir" / "o.png"), "--model", str(trained["restore"])],
        ["restore", str(one), "-o", str(tmp_path / "o.png"), "--model", str(trained["sr"])],
        ["restore", str(one), "-o", str(tmp_path / "o.png"), "--model", str(trained["restore"]), "--realism", "2"],
    ]
    for args in cases:
        capsys.readouterr()
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("gancodec: error:") and err.count("\n") == 1, err
    assert not (tmp_path / "o.png").exists()


def test_enhance_ddp_free_smoke():
    """The generators are fully convolutional: any size in, scale × size out."""
    from gancodec.models.rrdb import RRDBNet
    from gancodec.models.unet import RestorationUNet

    assert RRDBNet(4, nf=8, blocks=1, gc=4)(torch.rand(1, 3, 5, 7)).shape == (1, 3, 20, 28)
    assert RestorationUNet(width=8)(torch.rand(1, 3, 5, 7), "jpeg").shape == (1, 3, 5, 7)


def _shipped(name: str):
    from gancodec.zoo import available_models, load_enhancer

    if name not in available_models():
        pytest.skip(f"shipped {name} weights are not in the package")
    return load_enhancer(name)


def test_shipped_restoration_removes_jpeg_artefacts(photo):
    """Trained behaviour: at JPEG quality 10 both restoration models get closer to the original."""
    model = _shipped("restore-lite")
    jpeg = degradations.jpeg(photo, 10)
    for realism in (0.0, 1.0) if "gan" in model.weights else (0.0,):
        assert psnr(photo, model.run(jpeg, realism=realism, task="jpeg")) > psnr(photo, jpeg) + 0.3


@pytest.mark.parametrize("scale", [2, 4])
def test_shipped_super_resolution_beats_bicubic(photo, scale):
    model = _shipped(f"sr-x{scale}-lite")
    low = degradations.bicubic_down(photo, scale)
    bicubic = np.asarray(Image.fromarray(low).resize(photo.shape[1::-1], Image.BICUBIC))
    out = model.run(low)
    assert out.shape == photo.shape
    assert psnr(photo, out) > psnr(photo, bicubic) + 0.3


def test_python_api(trained, photo, tmp_path):
    import gancodec

    out = gancodec.restore(photo[:40, :48], task="jpeg", model=str(trained["restore"]))
    assert out.shape == (40, 48, 3) and out.dtype == np.uint8
    assert gancodec.upscale(photo[:20, :24, 0], scale=2, model=str(trained["sr"])).shape == (40, 48, 3)
    with pytest.raises(gancodec.UserError):
        gancodec.upscale(photo, scale=3, model=str(trained["sr"]))
    Image.fromarray(photo[:40, :48]).save(tmp_path / "in.png")  # file to file: the same pixels
    gancodec.restore_to_file(tmp_path / "in.png", tmp_path / "r.png", task="jpeg", model=str(trained["restore"]))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "r.png")), out)
    gancodec.upscale_to_file(tmp_path / "in.png", tmp_path / "u.png", scale=2, model=str(trained["sr"]))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "u.png")),
                          gancodec.upscale(photo[:40, :48], scale=2, model=str(trained["sr"])))


def test_jpeg_training_quality_is_log_uniform():
    rng = np.random.default_rng(1)
    q = np.array([degradations.jpeg_quality(rng, 10, 60) for _ in range(20000)])
    assert q.min() == 10 and q.max() == 60
    # log-uniform: [10, 20) is one of log2(61/10) ≈ 2.6 octaves, so ~38 % of draws (uniform: 20 %)
    assert 0.34 < (q < 20).mean() < 0.42


@pytest.mark.parametrize("kind", ["restore", "sr"])
def test_self_ensemble_is_tiled_without_seams(trained, kind, photo):
    """The ×8 geometric self-ensemble runs per tile; tiled, it equals the ensemble of the whole image."""
    import torch

    from gancodec.enhance import geometric_ensemble
    from gancodec.zoo import load_enhancer

    model = load_enhancer(str(trained[kind]))
    image = photo[:100, :90]
    model.set_realism(0.0)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    net = (lambda t: model.net(t, "auto", 1.0)) if kind == "restore" else model.net
    with torch.no_grad():
        y = geometric_ensemble(net)(x)
    whole = (y[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    model.tile = 64
    try:
        tiled = model.run(image, self_ensemble=True)
    finally:
        model.tile = 256
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1
    assert not np.array_equal(tiled, model.run(image))  # it is not the plain network


@pytest.mark.parametrize("kind", ["restore", "sr"])
def test_files_are_streamed_in_rows_in_and_out(trained, kind, photo, tmp_path, monkeypatch):
    """From a PNG file to a PNG file, the input is read in bands as the tiles move down and the
    output written band by band as rows of tiles complete: neither image is held whole, and the
    pixels are those of the in-memory run. The input's ICC profile is carried to the output."""
    from gancodec.imageio import StreamedRGB
    from gancodec.zoo import load_enhancer

    model = load_enhancer(str(trained[kind]))
    monkeypatch.setattr(model, "tile", 32)
    monkeypatch.setattr(StreamedRGB, "band_bytes", 7 * (1 + 3 * 90))  # bands of 7 rows
    image = np.ascontiguousarray(np.tile(photo, (2, 1, 1))[:300, :90])
    src = tmp_path / "in.png"
    icc = b"not really a profile, but carried byte for byte"
    Image.fromarray(image).save(src, icc_profile=icc)
    held, bands = [], []
    real_rows = StreamedRGB.rows
    monkeypatch.setattr(StreamedRGB, "rows", lambda self, a0, a1: (
        real_rows(self, a0, a1), held.append(sum(len(b) for _, b in self._held)))[0])
    from gancodec import pngstream

    real_write = pngstream.PngWriter.write
    monkeypatch.setattr(pngstream.PngWriter, "write", lambda self, rows: (bands.append(len(rows)),
                                                                           real_write(self, rows))[1])
    out = tmp_path / "out.png"
    how = {"task": "jpeg"} if kind == "restore" else {}
    model.run_file(src, out, **how)
    scale = 1 if kind == "restore" else 2
    tile = 32
    # a row of tiles, its margins and a band of 7 rows at either end, never 300
    assert held and max(held) <= tile + 2 * (model.margin + model.sr_tail_margin) + 2 * 7
    assert max(bands) == scale * tile and sum(bands) == scale * 300
    got = Image.open(out)
    assert got.info.get("icc_profile") == icc
    assert np.array_equal(np.asarray(got), model.run(image, **how))
    jpg = tmp_path / "out.jpg"  # other formats: the result is made whole, then saved by Pillow
    model.run_file(src, jpg, **how)
    assert Image.open(jpg).size == (90 * scale, 300 * scale) and Image.open(jpg).info.get("icc_profile") == icc


def test_damaged_or_unwritable_files_leave_no_output(trained, photo, tmp_path, capsys):
    """A damaged input found mid-way, or an unknown output suffix, is one line and no file."""
    src = tmp_path / "in.png"
    Image.fromarray(np.tile(photo, (2, 1, 1))).save(src)
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0xFF
    src.write_bytes(bytes(data))
    for out in ("o.png", "o.jpg", "o.nope"):
        capsys.readouterr()
        assert main(["restore", str(src), "-o", str(tmp_path / out), "--model", str(trained["restore"])]) == 2
        err = capsys.readouterr().err
        assert err.startswith("gancodec: error:") and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]
