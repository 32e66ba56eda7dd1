"""Inpainting: masks, both training stages, resume, export, the runtime's guarantees, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gancodec import inpaint_masks as M
from gancodec.cli import main

TINY = ["--width", "8", "--blocks", "1", "--batch-size", "2", "--crop", "32", "--no-progress", "--device", "cpu"]


# -- masks -------------------------------------------------------------------------------------------
def test_random_masks_are_seeded_and_capped():
    a = [M.random_mask(64, 96, np.random.default_rng(3)) for _ in range(2)]
    assert np.array_equal(a[0], a[1])
    rng = np.random.default_rng(0)
    masks = [M.random_mask(64, 64, rng, kind=k) for k in M.KINDS for _ in range(30)]
    areas = np.array([m.mean() for m in masks])
    assert all(m.dtype == bool and m.shape == (64, 64) for m in masks)
    assert (areas > 0).all() and (areas <= M.MAX_AREA).all()
    assert len({m.tobytes() for m in masks}) > 140  # different draws, not one mask repeated
    with pytest.raises(ValueError):
        M.random_mask(8, 8, rng, kind="blob")


def test_eval_masks_fall_in_their_buckets_and_are_fixed():
    masks = M.eval_masks(96, 128, seed=1)
    again = M.eval_masks(96, 128, seed=1)
    assert [(k, b) for k, b, _ in masks] == [(k, b) for k, b, _ in again]
    assert all(np.array_equal(x[2], y[2]) for x, y in zip(masks, again))
    for kind, b, mask in masks:
        lo, hi = M.BUCKETS[b]
        assert lo < mask.mean() <= hi and M.bucket_of(mask.mean()) == b, (kind, b)
    kinds = {(k, b) for k, b, _ in masks}
    for kind in ("thin", "thick", "box"):
        assert all((kind, b) in kinds for b in range(len(M.BUCKETS))), kind
    assert {b for k, b in kinds if k == "scratch"} == {0, 1}
    # limiting the kinds of a quick run leaves the other masks as they were
    boxes = M.eval_masks(96, 128, kinds=("box",), seed=1)
    assert all(np.array_equal(m, n) for (_, _, m), (_, _, n) in zip(boxes, [x for x in masks if x[0] == "box"]))


def test_mask_pool_draws_training_batches():
    pool = M.MaskPool(32, np.random.default_rng(0), count=8)
    batch = pool.draw(5)
    assert batch.shape == (5, 32, 32) and batch.dtype == bool
    assert all(0 < m.mean() <= M.MAX_AREA for m in batch)


# -- a tiny model through both stages ----------------------------------------------------------------
@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from skimage import data

    d = tmp_path_factory.mktemp("clean")
    img = data.astronaut()
    for i in range(2):
        Image.fromarray(img[i * 100 : i * 100 + 64, :64]).save(d / f"{i}.png")
    return d


@pytest.fixture(scope="module")
def trained(tmp_path_factory, folder):
    """Fidelity run, GAN run from it (resumed once), both exported into one model folder."""
    root = tmp_path_factory.mktemp("inpaint-runs")
    fid, gan, out = root / "fid", root / "gan", root / "zoo" / "inpaint-tiny"
    data = ["--data", str(folder)]
    assert main(["train", "inpaint", *data, "--steps", "2", "--out", str(fid), *TINY]) == 0
    gan_args = ["train", "inpaint", *data, "--stage", "gan", "--init", str(fid), "--out", str(gan),
                "--r1-every", "2", *TINY]
    assert main([*gan_args, "--steps", "2"]) == 0
    assert main([*gan_args, "--steps", "3", "--resume"]) == 0
    for run in (fid, gan):
        assert main(["train", "export", str(run), "--out", str(out)]) == 0
    return {"fid": fid, "gan": gan, "model": out}


def test_training_logs_and_resume(trained):
    import csv

    rows = list(csv.DictReader(open(trained["gan"] / "log.csv")))
    assert [int(r["step"]) for r in rows] == [2, 3]  # the resumed run went on from step 2
    for r in rows:
        assert all(np.isfinite(float(v)) for v in r.values()), r
        assert {"d_loss", "g_adv", "fm", "r1", "l1_hole", "l1_known"} <= set(r)
    assert torch.load(trained["gan"] / "checkpoint.pt", weights_only=False)["step"] == 3
    assert (trained["fid"] / "samples").is_dir()


def test_gan_stage_needs_init(folder, tmp_path, capsys):
    assert main(["train", "inpaint", "--data", str(folder), "--stage", "gan", "--steps", "1",
                 "--out", str(tmp_path / "g"), *TINY]) == 2


def test_train_step_is_autocast_safe():
    """The trainer runs steps under bf16 autocast where the hardware has bf16 units."""
    from gancodec.models.inpaint import InpaintConfig
    from gancodec.training.inpaint_task import InpaintTask

    torch.manual_seed(0)
    task = InpaintTask(InpaintConfig(width=4, blocks=1), stage="gan", disc_width=8, disc_layers=2, r1_every=1)
    nets = task.networks()
    opts = task.optimizers(nets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scalars = task.train_step(torch.rand(2, 3, 16, 16), nets, opts, 0)
    assert all(np.isfinite(v) for v in scalars.values()) and scalars["r1"] >= 0


def test_refinement_branch_starts_from_the_init_networks_output(folder, tmp_path, capsys):
    """--refine N on an --init run without the branch: same output to the bit at step 0, and the
    branch is saved; a run whose branch has another width is refused."""
    from gancodec.models.inpaint import InpaintConfig
    from gancodec.training.run import _with_refinement

    torch.manual_seed(0)
    plain = InpaintConfig(width=4, blocks=1, refine=0).build().eval()
    config, grown = _with_refinement(plain.config, plain, 6)
    x, m = torch.rand(2, 3, 16, 24), (torch.rand(2, 1, 16, 24) > 0.7).float()
    with torch.no_grad():
        assert torch.equal(plain(x, m), grown.eval()(x, m)) and config.refine == 6
    base, grown_run = tmp_path / "base", tmp_path / "grown"
    data = ["--data", str(folder)]
    assert main(["train", "inpaint", *data, "--steps", "1", "--refine", "0", "--out", str(base), *TINY]) == 0
    assert main(["train", "inpaint", *data, "--steps", "1", "--init", str(base), "--refine", "4",
                 "--out", str(grown_run), *TINY]) == 0
    state = torch.load(grown_run / "checkpoint.pt", weights_only=False)
    assert state["config"]["refine"] == 4 and "refine.body.0.weight" in state["nets"]["generator"]
    assert main(["train", "inpaint", *data, "--steps", "1", "--init", str(grown_run), "--refine", "8",
                 "--out", str(tmp_path / "bad"), *TINY]) == 2
    assert "already has a 4-channel refinement branch" in capsys.readouterr().err


def test_generator_any_stride_multiple():
    from gancodec.models.inpaint import InpaintConfig

    net = InpaintConfig(width=4, blocks=1).build().eval()
    x, m = torch.rand(1, 3, 24, 40), torch.zeros(1, 1, 24, 40)
    m[..., 5:9, 7:20] = 1
    with torch.no_grad():
        y = net(x, m)
    assert y.shape == x.shape
    assert torch.equal(y[m.expand_as(y) == 0], x[m.expand_as(x) == 0])  # composited


# -- runtime -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model(trained):
    from gancodec.zoo import load_inpainter

    return load_inpainter(str(trained["model"]))


@pytest.fixture()
def image() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[::2, ::2][:200, :248])  # 200×248, not a multiple of 8


def test_export_load_and_realism(trained, model, image):
    from gancodec.zoo import load_enhancer

    assert set(model.weights) == {"fidelity", "gan"}
    mask = np.zeros(image.shape[:2], bool)
    mask[50:90, 60:120] = True
    outs = [model.run(image, mask, realism=r) for r in (0.0, 0.5, 1.0)]
    assert not np.array_equal(outs[0], outs[2])
    with pytest.raises(Exception, match="not a restoration"):
        load_enhancer(str(trained["model"]))


def test_pixels_outside_the_mask_are_untouched(model, image):
    rng = np.random.default_rng(0)
    mask = M.random_mask(*image.shape[:2], rng, kind="medium") | M.scratch_mask(*image.shape[:2], 2, rng)
    out = model.run(image, mask)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.array_equal(out[~mask], image[~mask])
    assert not np.array_equal(out[mask], image[mask])
    grown = model.run(image, mask, dilate_px=3)
    from gancodec.inpainting import dilate

    big = dilate(mask, 3)
    assert big.sum() > mask.sum() and np.array_equal(grown[~big], image[~big])


def test_crops_match_the_whole_image(model, image):
    """A crop that reaches every border is the whole image: identical result. A small hole
    filled from a crop differs from the whole-image fill only slightly (the Fourier branch sees
    the crop, not the image), and pixels beyond the crop cannot change it."""
    from gancodec.inpainting import crop_plan

    mask = np.zeros(image.shape[:2], bool)
    mask[100:110, 120:130] = True
    whole = image.copy()
    whole[mask] = model.fill(image, mask)[mask]
    assert crop_plan(mask, margin=500) == [(0, 0, *image.shape[:2])]
    model.margin = 500
    try:
        assert np.array_equal(model.run(image, mask), whole)
        model.margin = 32
        (t, l, b, r), = crop_plan(mask, margin=32)
        assert (b - t, r - l) == (74, 74)
        cropped = model.run(image, mask)
        far = image.copy()
        far[:, :l] = 0
        far[:t] = 255
        assert np.array_equal(model.run(far, mask)[mask], cropped[mask])
    finally:
        model.margin = type(model).margin
    diff = np.abs(cropped[mask].astype(int) - whole[mask].astype(int))
    assert diff.mean() < 12 and np.array_equal(cropped[~mask], image[~mask])


def test_crop_plan_merges_close_holes():
    from gancodec.inpainting import crop_plan

    mask = np.zeros((400, 400), bool)
    mask[10:20, 10:20] = True
    mask[30:40, 30:40] = True  # close: merged into one crop
    mask[300:310, 300:310] = True  # far: its own crop
    plan = crop_plan(mask, margin=50)
    assert len(plan) == 2
    covered = np.zeros_like(mask)
    for t, l, b, r in plan:
        assert not covered[t:b, l:r].any()  # crops never overlap
        covered[t:b, l:r] = True
    assert covered[mask].all()


@pytest.mark.parametrize("specks", [40, 20000])
def test_crop_plan_of_many_specks(specks):
    """A mask of thousands of scattered specks (a noisy user mask, dust) is planned in one pass
    per merge round: crops cover every hole pixel and never overlap."""
    from gancodec.inpainting import crop_plan

    rng = np.random.default_rng(specks)
    mask = np.zeros((1500, 2000), bool)
    mask[rng.integers(0, 1500, specks), rng.integers(0, 2000, specks)] = True
    plan = crop_plan(mask, margin=16)
    covered = np.zeros(mask.shape, np.uint8)
    for t, l, b, r in plan:
        covered[t:b, l:r] += 1
        assert mask[t:b, l:r].any()
    assert covered.max() == 1 and covered[mask].all()
    if specks == 40:  # far apart: most specks keep a crop of their own, 33 px on a side
        assert len(plan) > 20 and max(b - t for t, _, b, _ in plan) < 200


def test_big_holes_are_filled_on_a_downscaled_copy(model, image):
    mask = np.zeros(image.shape[:2], bool)
    mask[40:160, 50:200] = True
    model.work_size = 96
    try:
        out = model.run(image, mask)
    finally:
        model.work_size = type(model).work_size
    assert np.array_equal(out[~mask], image[~mask]) and not np.array_equal(out[mask], image[mask])


def test_python_api_forms(model, image, tmp_path):
    import gancodec

    mask = np.zeros(image.shape[:2], np.uint8)
    mask[20:40, 30:60] = 255
    a = gancodec.inpaint(image, mask, model=model)
    Image.fromarray(image).save(tmp_path / "im.png")
    Image.fromarray(mask).save(tmp_path / "m.png")
    b = gancodec.inpaint(str(tmp_path / "im.png"), tmp_path / "m.png", model=model)
    c = gancodec.inpaint(Image.fromarray(image), Image.fromarray(mask), model=model)
    assert np.array_equal(a, b) and np.array_equal(a, c)
    gancodec.inpaint_to_file(tmp_path / "im.png", mask, tmp_path / "d.png", model=model)  # in rows
    assert np.array_equal(np.asarray(Image.open(tmp_path / "d.png")), a)
    grey = gancodec.inpaint(image[..., 0], mask > 0, model=model)
    assert grey.shape == image.shape[:2] and np.array_equal(grey[mask == 0], image[..., 0][mask == 0])
    rgba = np.dstack([image, np.full(image.shape[:2], 200, np.uint8)])
    out = gancodec.inpaint(rgba, mask, model=model)
    assert out.shape == rgba.shape and np.array_equal(out[..., 3], rgba[..., 3])
    assert np.array_equal(gancodec.inpaint(image, np.zeros_like(mask), model=model, allow_empty=True), image)
    # a caller's array is never filled in place; pixels read from a file are (same result)
    before = image.copy()
    from_array = gancodec.inpaint(image, mask, model=model)
    assert np.array_equal(image, before)
    Image.fromarray(image).save(tmp_path / "in.png")
    assert np.array_equal(gancodec.inpaint(tmp_path / "in.png", mask, model=model), from_array)


# -- command line ------------------------------------------------------------------------------------
@pytest.fixture()
def files(image, tmp_path):
    Image.fromarray(image).save(tmp_path / "in.png")
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[60:80, 100:140] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return tmp_path, mask > 0


def _out(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_cli_mask_forms(model, trained, image, files):
    tmp, hole = files
    m = ["--model", str(trained["model"])]
    assert main(["inpaint", str(tmp / "in.png"), "-o", str(tmp / "a.png"), "--mask", str(tmp / "mask.png"), *m]) == 0
    a = _out(tmp / "a.png")
    assert np.array_equal(a[~hole], image[~hole])
    # an alpha mask: opaque strokes on a transparent layer (colour ignored)
    rgba = np.zeros((*hole.shape, 4), np.uint8)
    rgba[hole] = (0, 0, 0, 255)
    Image.fromarray(rgba).save(tmp / "alpha.png")
    assert main(["inpaint", str(tmp / "in.png"), "-o", str(tmp / "b.png"), "--mask", str(tmp / "alpha.png"), *m]) == 0
    assert np.array_equal(_out(tmp / "b.png"), a)
    # boxes: the same rectangle as the mask file
    assert main(["inpaint", str(tmp / "in.png"), "-o", str(tmp / "c.png"), "--box", "100,60,40,20", *m]) == 0
    assert np.array_equal(_out(tmp / "c.png"), a)
    # scratches: seeded, outside untouched
    args = ["inpaint", str(tmp / "in.png"), "--scratches", "3", "--seed", "5", *m]
    assert main([*args, "-o", str(tmp / "d.png")]) == 0 and main([*args, "-o", str(tmp / "e.png")]) == 0
    d = _out(tmp / "d.png")
    scratches = M.scratch_mask(*hole.shape, 3, np.random.default_rng(5))
    assert np.array_equal(d, _out(tmp / "e.png")) and np.array_equal(d[~scratches], image[~scratches])


def test_cli_folder_mode_survives_a_broken_file(trained, image, files, capsys):
    tmp, hole = files
    src, masks, out = tmp / "src", tmp / "masks", tmp / "out"
    src.mkdir()
    masks.mkdir()
    for name in ("a", "c"):
        Image.fromarray(image).save(src / f"{name}.jpg", quality=95)
        Image.fromarray(hole.astype(np.uint8) * 255).save(masks / f"{name}.png")
    (src / "b.png").write_bytes(b"not an image")
    Image.fromarray(hole.astype(np.uint8) * 255).save(masks / "b.png")
    Image.fromarray(image).save(src / "d.png")  # no mask for d
    code = main(["inpaint", "--input", str(src), "--mask", str(masks), "-o", str(out),
                 "--model", str(trained["model"])])
    err = capsys.readouterr().err
    assert code != 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]
    assert "b.png" in err and "d.png" in err and "2 of 4" in err
    jpeg = np.asarray(Image.open(src / "a.jpg"))
    assert np.array_equal(_out(out / "a.png")[~hole], jpeg[~hole])


def test_cli_bad_inputs(trained, image, files, capsys):
    tmp, hole = files
    m = ["--model", str(trained["model"])]
    src, out = str(tmp / "in.png"), str(tmp / "o.png")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp / "small.png")
    Image.fromarray(np.zeros(image.shape[:2], np.uint8)).save(tmp / "empty.png")
    Image.fromarray(np.full(image.shape[:2], 255, np.uint8)).save(tmp / "full.png")
    (tmp / "junk.png").write_bytes(b"junk")
    cases = [
        ["--mask", str(tmp / "small.png")],  # size mismatch
        ["--mask", str(tmp / "empty.png")],  # empty mask
        ["--mask", str(tmp / "full.png")],  # covers everything
        ["--mask", str(tmp / "junk.png")],  # unreadable mask
        ["--mask", str(tmp / "missing.png")],
        ["--box", "1,2,3"],
        ["--box", "5000,5000,10,10"],
        ["--box", "10,10,-5,10"],
        ["--scratches", "0"],
        ["--mask", str(tmp / "mask.png"), "--realism", "2"],
        ["--mask", str(tmp / "mask.png"), "--dilate", "-1"],
        ["--box", "1,1,2,2", "--max-pixels", "1000"],  # above the pixel limit, from the header
    ]
    for extra in cases:
        capsys.readouterr()
        assert main(["inpaint", src, "-o", out, *extra, *m]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("gancodec: error:") and err.count("\n") == 1, (extra, err)
    for args in (["inpaint", str(tmp / "junk.png"), "-o", out, "--box", "1,1,2,2", *m],
                 ["inpaint", src, "-o", out, "--box", "1,1,2,2", "--model", str(tmp)],
                 ["inpaint", src, "-o", str(tmp / "nodir" / "o.png"), "--box", "1,1,2,2", *m]):
        assert main(args) == 2, args
    assert not (tmp / "o.png").exists()
    assert main(["inpaint", src, "-o", out, "--mask", str(tmp / "empty.png"), "--allow-empty", *m]) == 0
    assert np.array_equal(_out(out), image)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_files_are_streamed_in_rows_in_and_out(model, image, tmp_path, monkeypatch, mode):
    """From a PNG to a PNG, the image is read in rows as the crops move down and written as
    rows become final: every row is read once, never more than a crop's rows at a time, and the
    output is the in-memory inpainting's (greyscale stays greyscale; the ICC profile is kept)."""
    from gancodec import inpainting
    from gancodec.imageio import StreamedRGB
    from gancodec.inpainting import inpaint_file, inpaint_image

    monkeypatch.setattr(inpainting, "_PASS_ROWS", 16)  # rows no crop touches, read and written at a time
    monkeypatch.setattr(model, "margin", 6)
    monkeypatch.setattr(model, "margin_ratio", 0.25)
    tall = np.ascontiguousarray(np.concatenate([image, image[::-1]])[:, :120])  # 400×120
    mask = np.zeros(tall.shape[:2], bool)
    for top in (3, 120, 131, 250, 390):  # at the top, two that merge, the middle, the bottom
        mask[top : top + 8, 20:50] = True
    src, icc = tmp_path / "in.png", b"a profile, carried byte for byte"
    Image.fromarray(tall).convert(mode).save(src, icc_profile=icc)
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    asked, written = [], []
    real_rows = StreamedRGB.rows
    monkeypatch.setattr(StreamedRGB, "rows", lambda self, a0, a1: (asked.append((a0, a1)), real_rows(self, a0, a1))[1])
    from gancodec import pngstream

    real_write = pngstream.PngWriter.write
    monkeypatch.setattr(pngstream.PngWriter, "write", lambda self, rows: (written.append(len(rows)),
                                                                           real_write(self, rows))[1])
    out = tmp_path / "out.png"
    inpaint_file(model, src, tmp_path / "mask.png", out, dilate_px=1)
    assert [a for a, _ in asked] == sorted(a for a, _ in asked) and sum(b - a for a, b in asked) == 400
    assert max(b - a for a, b in asked) < 60 and sum(written) == 400 and len(written) > 5
    got = Image.open(out)
    assert got.mode == mode and got.info.get("icc_profile") == icc
    expected = inpaint_image(model, Image.open(src), tmp_path / "mask.png", dilate_px=1)
    assert np.array_equal(np.asarray(got), expected)
    assert not np.array_equal(expected, np.asarray(Image.open(src)))


def test_a_rotated_large_photo_is_inpainted_upright(model, image, tmp_path, monkeypatch):
    """A large file stored sideways (EXIF orientation 6), turned as its rows are read: the mask
    is the upright image's size and the output the upright image's inpainting."""
    from gancodec import vipsstream
    from gancodec.inpainting import inpaint_file, inpaint_image

    if vipsstream._pyvips() is None:
        pytest.skip("pyvips / libvips not loadable")
    monkeypatch.setattr(vipsstream, "STREAM_PIXELS", 100)
    stored = np.ascontiguousarray(image[:, :120])
    exif = Image.Exif()
    exif[0x0112] = 6
    src = tmp_path / "sideways.tif"
    Image.fromarray(stored).save(src, exif=exif.tobytes())
    upright = np.rot90(stored, -1)
    mask = np.zeros(upright.shape[:2], bool)
    mask[30:50, 60:90] = True
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    out = tmp_path / "out.png"
    inpaint_file(model, src, tmp_path / "mask.png", out)
    expected = inpaint_image(model, np.ascontiguousarray(upright), mask)
    assert np.array_equal(np.asarray(Image.open(out)), expected)
