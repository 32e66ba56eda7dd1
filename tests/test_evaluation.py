"""The evaluation harness (bench, plot, compare, report) end to end on two small images.

Everything runs on crops of scikit-image's sample photos and the untrained tiny codec from
conftest, so no ../shared data or trained weights are needed; the one Kodak check skips
without ../shared.
"""

from __future__ import annotations

import argparse
import io
import json
import math

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from gancodec.errors import UserError
from gancodec.evaluation import bdrate, codecs, realism
from gancodec.evaluation.bench import list_images, parse_settings, run_bench
from gancodec.evaluation.cli import add_subcommands, main
from gancodec.evaluation.compare import auto_crops, match_size, run_compare
from gancodec.evaluation.reference import load_reference
from gancodec.evaluation.results import RESULTS, load_records, load_summary
from gancodec.imageio import load_rgb_array
from gancodec.metrics import psnr

from .conftest import SHARED_DATA

SETTINGS = {
    "jpeg": [10, 50, 90],
    "webp": [30, 70],
    "avif": [30, 60],
    "jxl": [30, 70],
    "jpeg2000": [0.5, 1.5],
    "gancodec": [1, 4],
    "gancodec-gan": [1, 4],
}


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    """Two small natural images (176×208: large enough for 5-scale MS-SSIM)."""
    from skimage import data

    folder = tmp_path_factory.mktemp("images")
    Image.fromarray(np.ascontiguousarray(data.astronaut()[30:206, 120:328])).save(folder / "astronaut.png")
    Image.fromarray(np.ascontiguousarray(data.chelsea()[60:236, 150:358])).save(folder / "chelsea.png")
    return folder


@pytest.fixture(scope="module")
def model_dir(request):
    """The tiny codec's folder, or None when the learned codec cannot be loaded (then it is left out)."""
    try:
        import gancodec

        folder = request.getfixturevalue("tiny_model_dir")
        gancodec.load_model(str(folder))
        return str(folder)
    except Exception:
        return None


@pytest.fixture(scope="module")
def codec_names(model_dir):
    names = ["jpeg", "webp", "avif", "jxl", "jpeg2000", "png"]
    return (["gancodec", "gancodec-gan"] if model_dir else []) + names


@pytest.fixture(scope="module")
def bench(tmp_path_factory, image_dir, model_dir, codec_names):
    out = tmp_path_factory.mktemp("bench")
    settings = {k: v for k, v in SETTINGS.items() if k in codec_names}
    summary = run_bench(
        image_dir,
        out,
        codec_names,
        settings=settings,
        model=model_dir or codecs.DEFAULT_MODEL,
        progress=False,
        command="test",
        log=lambda m: None,
    )
    return out, summary


def _pillow(rgb: np.ndarray, fmt: str, **params) -> tuple[bytes, np.ndarray]:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **params)
    data = buf.getvalue()
    return data, np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


# -- BD-rate -------------------------------------------------------------------------------------
RATES = [0.12, 0.25, 0.45, 0.8, 1.3]
PSNRS = [27.1, 29.6, 31.8, 34.0, 36.3]


@pytest.mark.parametrize("method", bdrate.METHODS)
@pytest.mark.parametrize("factor", [0.8, 1.25, 0.5])
def test_bd_rate_of_a_constant_rate_factor_is_exactly_that_factor(method, factor):
    got = bdrate.bd_rate(RATES, PSNRS, [r * factor for r in RATES], PSNRS, method=method)
    assert got == pytest.approx((factor - 1) * 100, abs=1e-9)


@pytest.mark.parametrize("method", bdrate.METHODS)
def test_bd_quality_of_a_constant_shift_is_that_shift(method):
    assert bdrate.bd_quality(RATES, PSNRS, RATES, [q + 0.5 for q in PSNRS], method) == pytest.approx(0.5)


def test_bd_rate_properties():
    test_r, test_q = [0.1, 0.2, 0.4, 0.7, 1.1], [27.0, 29.8, 32.4, 34.6, 36.0]
    a = bdrate.bd_rate(RATES, PSNRS, test_r, test_q)
    b = bdrate.bd_rate(test_r, test_q, RATES, PSNRS)
    assert (1 + a / 100) * (1 + b / 100) == pytest.approx(1, abs=0.02)  # swapping roles inverts the ratio
    order = [3, 0, 4, 1, 2]  # point order does not matter
    shuffled = [RATES[i] for i in order], [PSNRS[i] for i in order]
    assert bdrate.bd_rate(*shuffled, test_r, test_q) == pytest.approx(a)
    assert math.isnan(bdrate.bd_rate(RATES, PSNRS, RATES, [q + 20 for q in PSNRS]))  # no common range
    assert math.isnan(bdrate.bd_rate(RATES, PSNRS, [0.3], [30.0]))  # one point is not a curve


def test_rd_hull_drops_points_that_are_not_on_the_curve():
    r, q = bdrate.rd_hull([0.4, 0.1, 0.2, 0.3, 0.5, float("nan")], [30, 25, 28, 27.5, 31, 40])
    assert r.tolist() == [0.1, 0.2, 0.4, 0.5] and q.tolist() == [25, 28, 30, 31]


def test_bd_rate_matrix():
    table = bdrate.bd_rate_matrix({"a": (RATES, PSNRS), "b": ([r * 0.9 for r in RATES], PSNRS)})
    assert table["a"]["a"] is None and table["b"]["a"] == pytest.approx(-10)
    assert table["a"]["b"] == pytest.approx(100 / 0.9 - 100, abs=1e-3)


# -- realism -------------------------------------------------------------------------------------
def test_realism_measures_rank_blur_and_are_zero_for_a_copy(photo):
    feats = realism.patch_features(photo)
    assert feats.shape == (64, len(realism.FEATURE_NAMES))
    assert realism.hf_ratio(photo, photo) == pytest.approx(1.0)
    assert realism.kid(feats, feats) == pytest.approx(0.0, abs=1e-12)
    kids, ratios = [], []
    for sigma in (0.6, 1.2, 2.5):
        blurred = gaussian_filter(photo.astype(float), (sigma, sigma, 0))
        blurred = np.clip(blurred + 0.5, 0, 255).astype(np.uint8)
        kids.append(realism.patch_kid(photo, blurred, feats))
        ratios.append(realism.hf_ratio(photo, blurred))
    assert kids == sorted(kids) and kids[0] > 0.1
    assert ratios == sorted(ratios, reverse=True) and ratios[0] < 0.7
    rng = np.random.default_rng(0)
    noisy = np.clip(photo + rng.normal(0, 10, photo.shape), 0, 255).astype(np.uint8)
    assert realism.hf_ratio(photo, noisy) > 1.0  # added energy shows up as a ratio above 1
    tiny = realism.patch_features(photo[:20, :20])  # smaller than one patch
    assert tiny.shape[0] == 0 and math.isnan(realism.kid(tiny, tiny))


def test_lpips_is_reported_unavailable_rather_than_downloaded():
    reason = realism.lpips_unavailable()
    assert reason is None or reason.startswith("LPIPS not available")


# -- codecs --------------------------------------------------------------------------------------
def test_every_classical_codec_round_trips_or_says_why_not(photo):
    for name in ("jpeg", "webp", "avif", "jxl", "jpeg2000", "png"):
        codec = codecs.make_codec(name)
        reason = codec.why_unavailable()
        if reason:
            assert isinstance(reason, str) and reason
            continue
        small, big = (codec.encode(photo, s) for s in (codec.settings()[0], codec.settings()[-1]))
        assert codec.decode(big).shape == photo.shape
        assert len(small) <= len(big)  # the knob runs from small files to big ones
    assert np.array_equal(codecs.make_codec("png").decode(codecs.make_codec("png").encode(photo, 6)), photo)


def test_jpeg2000_setting_is_the_rate(photo):
    codec = codecs.make_codec("jpeg2000")
    if codec.why_unavailable():
        pytest.skip(codec.why_unavailable())
    for bpp in (0.5, 1.0):
        got = 8 * len(codec.encode(photo, bpp)) / (photo.shape[0] * photo.shape[1])
        assert got == pytest.approx(bpp, rel=0.1)


def test_unknown_codec_names_are_user_errors():
    with pytest.raises(UserError, match="unknown codec 'bpg'"):
        codecs.parse_codec_list("jpeg,bpg")
    assert codecs.parse_codec_list(None) == list(codecs.CODEC_NAMES)
    with pytest.raises(UserError):
        parse_settings(["jpeg:10"])
    assert parse_settings(["jpeg=50,10", "avif=30"]) == {"jpeg": [10.0, 50.0], "avif": [30.0]}


# -- bench ---------------------------------------------------------------------------------------
def test_bench_writes_every_table(bench, image_dir, codec_names):
    out, summary = bench
    for name in ("results.jsonl", "per_image.csv", "summary.csv", "summary.json", "summary.md"):
        assert (out / name).is_file(), name
    assert [c["name"] for c in summary["codecs"]] == codec_names and summary["skipped"] == {}
    settings = {c["name"]: len(c["settings"]) for c in summary["codecs"]}
    assert len(load_records(out)) == 2 * sum(settings.values())
    assert summary["complete"] and all(r["n"] == 2 and r["complete"] for r in summary["rows"])
    assert json.loads((out / "summary.json").read_text()) == summary
    header = (out / "per_image.csv").read_text().splitlines()[0].split(",")
    assert {"bpp", "psnr", "ms_ssim", "hf_ratio", "kid", "encode_s", "decode_s", "peak_rss_mb"} <= set(header)
    for rec in load_records(out):
        assert rec["bpp"] == pytest.approx(8 * rec["bytes"] / (rec["width"] * rec["height"]), rel=1e-6)
        assert rec["encode_s"] >= 0 and rec["decode_s"] >= 0 and rec["peak_rss_mb"] > 10
        if rec["codec"] == "png":
            assert rec["exact"] and rec["psnr"] is None and rec["hf_ratio"] == 1.0
        else:
            assert 0 < rec["ms_ssim"] <= 1 and rec["psnr"] > 0
    png = [r for r in summary["rows"] if r["codec"] == "png"][0]
    assert png["psnr"] is None and png["lossless_images"] == 2
    bd = summary["bd_rate"]["psnr"]
    assert "png" not in bd and bd["avif"]["jpeg"] < 0  # AVIF beats JPEG on PSNR at any sane rate
    assert "BD-rate on PSNR" in (out / "summary.md").read_text()


def test_bench_agrees_with_a_direct_pillow_encode(bench, image_dir):
    out, _ = bench
    rgb = load_rgb_array(image_dir / "astronaut.png")
    recs = {(r["codec"], r["setting"]): r for r in load_records(out) if r["image"] == "astronaut.png"}
    for name, fmt, q, extra in [("jpeg", "JPEG", 50, {}), ("webp", "WEBP", 70, {}),
                                ("avif", "AVIF", 60, {"speed": 6, "max_threads": 1})]:
        if ("jpeg", 50.0) not in recs or (name, float(q)) not in recs:
            continue
        data, decoded = _pillow(rgb, fmt, quality=q, **extra)
        rec = recs[(name, float(q))]
        assert rec["bytes"] == len(data), name
        assert rec["psnr"] == pytest.approx(psnr(rgb, decoded), abs=1e-5), name
    if ("avif", 60.0) in recs:  # AVIF with Pillow's plain defaults differs only by the thread count
        data, decoded = _pillow(rgb, "AVIF", quality=60)
        assert recs[("avif", 60.0)]["bytes"] == pytest.approx(len(data), rel=0.03)
        assert recs[("avif", 60.0)]["psnr"] == pytest.approx(psnr(rgb, decoded), abs=0.1)


def test_learned_codec_entries_share_one_bitstream(bench, model_dir):
    if model_dir is None:
        pytest.skip("the learned codec cannot be loaded here")
    out, _ = bench
    recs = load_records(out)
    mse = {(r["image"], r["setting"]): r for r in recs if r["codec"] == "gancodec"}
    gan = {(r["image"], r["setting"]): r for r in recs if r["codec"] == "gancodec-gan"}
    assert mse.keys() == gan.keys() and len(mse) == 4
    for key in mse:
        assert mse[key]["bytes"] == gan[key]["bytes"] and mse[key]["encode_s"] == gan[key]["encode_s"]


def test_bench_resumes_and_skips_what_it_has(tmp_path, image_dir):
    out = tmp_path / "out"
    kw = dict(settings={"jpeg": [20, 60], "png": [6]}, progress=False, log=lambda m: None)
    first = run_bench(image_dir, out, "jpeg,png", **kw)
    assert first["run"]["new_records"] == 6
    again = run_bench(image_dir, out, "jpeg,png", **kw)
    assert again["run"]["new_records"] == 0 and again["run"]["reused_records"] == 6
    assert again["rows"] == first["rows"]
    # an interrupted run: the journal lost its last two records and ends in a torn line
    lines = (out / RESULTS).read_text().splitlines(keepends=True)
    (out / RESULTS).write_text("".join(lines[:-2]) + lines[-2][:25])
    resumed = run_bench(image_dir, out, "jpeg,png", **kw)
    assert resumed["run"]["new_records"] == 2 and resumed["run"]["reused_records"] == 4
    assert len(load_records(out)) == 6 and resumed["complete"]
    # a wider sweep only measures the new setting
    wider = run_bench(image_dir, out, "jpeg,png", **{**kw, "settings": {"jpeg": [20, 40, 60], "png": [6]}})
    assert wider["run"]["new_records"] == 2


def test_bench_in_two_processes_matches_one(tmp_path, image_dir, model_dir):
    names = "jpeg,gancodec" if model_dir else "jpeg"
    kw = dict(settings={"jpeg": [40], **({"gancodec": [2.0]} if model_dir else {})},
              model=model_dir or codecs.DEFAULT_MODEL, progress=False, log=lambda m: None)
    one = run_bench(image_dir, tmp_path / "one", names, jobs=1, **kw)
    two = run_bench(image_dir, tmp_path / "two", names, jobs=2, **kw)
    key = ("codec", "setting", "bytes", "psnr", "ms_ssim", "hf_ratio", "kid")
    assert [[r[k] for k in key] for r in one["rows"]] == [[r[k] for k in key] for r in two["rows"]]


def test_a_codec_that_cannot_run_is_skipped_not_a_crash(tmp_path, image_dir, monkeypatch):
    monkeypatch.setattr(codecs.JPEGXL, "_register", lambda self: "JPEG XL needs pillow-jxl-plugin (test)")
    codecs._probe_cached.cache_clear()
    messages = []
    try:
        summary = run_bench(image_dir, tmp_path / "out", "jxl,jpeg,gancodec", settings={"jpeg": [50]},
                            model=str(tmp_path / "no-such-model"), progress=False, log=messages.append)
    finally:
        codecs._probe_cached.cache_clear()
    assert set(summary["skipped"]) == {"jxl", "gancodec"}
    assert "pillow-jxl-plugin" in summary["skipped"]["jxl"]
    assert [c["name"] for c in summary["codecs"]] == ["jpeg"]
    assert any(m.startswith("skipped jxl") for m in messages)
    with pytest.raises(UserError, match="none of the requested codecs"):
        run_bench(image_dir, tmp_path / "out2", "gancodec", model=str(tmp_path / "nothing"),
                  progress=False, log=lambda m: None)


def test_a_failing_setting_is_reported_and_retried_on_the_next_run(tmp_path, image_dir, monkeypatch):
    real_encode = codecs.JPEG.encode

    def flaky(self, rgb, setting):
        if setting == 35:  # not the setting the availability probe uses
            raise OSError("encoder exploded")
        return real_encode(self, rgb, setting)

    monkeypatch.setattr(codecs.JPEG, "encode", flaky)
    kw = dict(settings={"jpeg": [20, 35]}, progress=False, log=lambda m: None)
    codecs._probe_cached.cache_clear()
    summary = run_bench(image_dir, tmp_path / "o", "jpeg", **kw)
    assert len(summary["errors"]) == 2 and "encoder exploded" in summary["errors"][0]["error"]
    assert not summary["complete"] and [r["n"] for r in summary["rows"]] == [2]
    monkeypatch.setattr(codecs.JPEG, "encode", real_encode)
    summary = run_bench(image_dir, tmp_path / "o", "jpeg", **kw)
    assert summary["complete"] and summary["run"]["new_records"] == 2 and not summary["errors"]


def test_bench_user_errors(tmp_path, image_dir):
    with pytest.raises(UserError, match="data not found"):
        list_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        list_images(tmp_path / "empty")
    with pytest.raises(UserError, match="outside"):
        run_bench(image_dir, tmp_path / "o", "jpeg", settings={"jpeg": [500]}, progress=False,
                  log=lambda m: None)


# -- compare -------------------------------------------------------------------------------------
def test_match_size_finds_the_largest_file_within_budget(photo):
    jpeg = codecs.make_codec("jpeg")
    target = len(jpeg.encode(photo, 40)) + 50
    setting, data, over, _ = match_size(jpeg, photo, target)
    assert len(data) <= target and not over
    assert len(jpeg.encode(photo, setting + 1)) > target
    setting, data, over, _ = match_size(jpeg, photo, 10)  # impossible budget: smallest file, flagged
    assert over and setting == 1
    assert len(auto_crops(photo)) == 2


def test_compare_writes_a_grid_at_one_budget(tmp_path, image_dir, model_dir, codec_names):
    out = tmp_path / "grid.png"
    result = run_compare(image_dir / "astronaut.png", target_bpp=0.6, codecs=",".join(codec_names),
                         output=out, model=model_dir or codecs.DEFAULT_MODEL, log=lambda m: None)
    assert out.is_file() and out.with_suffix(".json").is_file()
    names = [p["codec"] for p in result["panels"]]
    assert "png" not in names and "jpeg" in names
    for p in result["panels"]:
        assert p["bytes"] <= result["target_bytes"] or p["over_budget"]
    by_name = {p["codec"]: p for p in result["panels"]}
    if model_dir:
        assert by_name["gancodec"]["bytes"] == by_name["gancodec-gan"]["bytes"]
    with Image.open(out) as grid:
        assert grid.width > 700 and grid.height > 300


# -- plot, report and the command line -----------------------------------------------------------
@pytest.fixture()
def reference_dir(tmp_path):
    folder = tmp_path / "reference"
    (folder / "compressai-kodak").mkdir(parents=True)
    (folder / "hific").mkdir()
    results = {"bpp": [0.2, 0.5, 1.0], "psnr-rgb": [28, 32, 36], "ms-ssim-rgb": [0.9, 0.95, 0.98]}
    (folder / "compressai-kodak" / "bpg.json").write_text(json.dumps({"name": "BPG", "results": results}))
    (folder / "hific" / "data.csv").write_text(
        ",dataset,bpp,PSNR,MS-SSIM,LPIPS\n0,kodak,0.18,27.5,0.937,0.068\n1,kodak,0.35,29.6,0.964,0.043\n"
        "2,div2k,0.3,30,0.97,0.03\n")
    return folder


def test_reference_curves_load_and_filter_by_dataset(reference_dir):
    curves = {c.name: c for c in load_reference(reference_dir, "kodak")}
    assert set(curves) == {"BPG", "HiFiC"} and curves["HiFiC"].bpp == [0.18, 0.35]
    assert curves["BPG"].label == "BPG (published)" and curves["BPG"].measures["psnr"] == [28, 32, 36]
    assert {c.name for c in load_reference(reference_dir, "div2k")} == {"HiFiC"}


def test_plot_and_report_commands(bench, reference_dir, capsys):
    out, _ = bench
    assert main(["plot", str(out), "--reference", str(reference_dir), "--reference-dataset", "kodak"]) == 0
    plots = json.loads(capsys.readouterr().out)["plots"]
    for stem in ("rd-psnr", "rd-msssim", "rd-hf-ratio", "rd-kid"):
        assert (out / "plots" / f"{stem}.png").is_file() and (out / "plots" / f"{stem}.svg").is_file()
    assert len(plots) == 8
    assert main(["report", str(out), "--reference", str(reference_dir), "--reference-dataset", "kodak"]) == 0
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 4
    assert "BD-rate on PSNR" in page and "against published curves" in page and "BPG" in page
    assert 'src="http' not in page and "<link" not in page  # self-contained


def test_cli_bench_and_errors(tmp_path, image_dir, capsys):
    out = tmp_path / "o"
    args = ["bench", "--data", str(image_dir), "--codecs", "jpeg", "-o", str(out), "--settings", "jpeg=30,70",
            "--no-progress", "--grid-bpp", "0.8"]
    assert main(args) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["new_records"] == 4 and info["codecs"] == ["jpeg"]
    summary = load_summary(out)
    assert summary["grids"] and (out / summary["grids"][0]["path"]).is_file()
    assert main(["bench", "--data", str(tmp_path / "nope"), "-o", str(out)]) == 2
    assert main(["bench", "--data", str(image_dir), "--codecs", "bpg", "-o", str(out)]) == 2
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    assert main(["compare", str(image_dir / "astronaut.png"), "--bytes", "1000", "--codecs", "nope"]) == 2
    assert "error: unknown codec" in capsys.readouterr().err


def test_add_subcommands_plugs_into_another_parser():
    parser = argparse.ArgumentParser(prog="gancodec")
    sub = parser.add_subparsers(dest="command", required=True)
    add_subcommands(sub)
    for argv in (["bench", "--data", "d", "-o", "o", "--jobs", "2"], ["plot", "o"], ["report", "o"],
                 ["compare", "img.png", "--bpp", "0.3"]):
        args = parser.parse_args(argv)
        assert callable(args.handler)
    with pytest.raises(SystemExit):
        parser.parse_args(["compare", "img.png"])  # a budget is required


# -- the real data, when it is there -------------------------------------------------------------
def test_harness_matches_pillow_on_a_kodak_image():
    path = SHARED_DATA / "kodak" / "kodim23.png"
    if not path.is_file():
        pytest.skip("../shared/data/kodak is not available")
    rgb = load_rgb_array(path)
    for name, fmt, extra in [("jpeg", "JPEG", {}), ("webp", "WEBP", {}),
                             ("avif", "AVIF", {"speed": 6, "max_threads": 1})]:
        codec = codecs.make_codec(name)
        if codec.why_unavailable():
            continue
        data, decoded = _pillow(rgb, fmt, quality=50, **extra)
        ours = codec.encode(rgb, 50)
        assert ours == data, name
        assert psnr(rgb, codec.decode(ours)) == pytest.approx(psnr(rgb, decoded)), name
