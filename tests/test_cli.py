"""The command line as a user meets it: outputs, JSON info, and clean failures on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import gancodec
from gancodec.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gancodec.cli", *args], capture_output=True, text=True)


@pytest.fixture()
def image_file(tmp_path, photo):
    path = tmp_path / "in.png"
    Image.fromarray(photo).save(path)
    return path


@pytest.fixture()
def gcz_file(tmp_path, image_file, tiny_model_dir):
    out = tmp_path / "in.gcz"
    assert main(["compress", str(image_file), "-o", str(out), "--model", str(tiny_model_dir), "-q", "2"]) == 0
    return out


def test_compress_decompress_info(tmp_path, gcz_file, tiny_model_dir, capsys):
    png = tmp_path / "out.png"
    assert main(["decompress", str(gcz_file), "-o", str(png), "--model", str(tiny_model_dir)]) == 0
    assert Image.open(png).size == (256, 256)
    capsys.readouterr()
    assert main(["info", str(gcz_file)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["width"] == 256 and info["model"] == "tiny" and info["quality"] == 2.0
    assert info["bytes"] == gcz_file.stat().st_size
    assert sum(info["streams"].values()) < info["bytes"]


def _corruptions(data: bytes) -> dict[str, bytes]:
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    rng = np.random.default_rng(0)
    return {
        "empty": b"",
        "truncated": data[: len(data) - 7],
        "header only": data[:12],
        "bit flip": bytes(flipped),
        "random": rng.integers(0, 256, 2000, dtype=np.uint8).tobytes(),
        "random with magic": data[:4] + rng.integers(0, 256, 2000, dtype=np.uint8).tobytes(),
        "png": b"\x89PNG\r\n\x1a\n" + data[8:],
        "other version": data[:4] + b"\x07" + data[5:],
    }


def test_malformed_files_are_refused_cleanly(tmp_path, gcz_file, tiny_model_dir, capsys):
    data = gcz_file.read_bytes()
    for name, bad in _corruptions(data).items():
        path = tmp_path / "bad.gcz"
        path.write_bytes(bad)
        out = tmp_path / "bad.png"
        capsys.readouterr()
        assert main(["decompress", str(path), "-o", str(out), "--model", str(tiny_model_dir)]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("gancodec: error:") and err.count("\n") == 1, (name, err)
        assert not out.exists(), name
        assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]
        assert main(["info", str(path)]) == 2
    # and once through a real process: exit status and no traceback
    result = run_cli("decompress", str(path), "-o", str(out), "--model", str(tiny_model_dir))
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_file_from_other_weights_is_refused(tmp_path, gcz_file, tiny_model_dir):
    from gancodec.models.codec import CodecConfig, HiFiCLite
    from gancodec.zoo.export import export_model

    from .conftest import TINY_CONFIG

    other = tmp_path / "tiny"  # same name, different weights -> different hash
    export_model(HiFiCLite(CodecConfig(**TINY_CONFIG)), other, name="tiny")
    with pytest.raises(gancodec.ModelMismatchError, match="made by model tiny@"):
        gancodec.decompress(gcz_file.read_bytes(), model=str(other))


def test_user_mistakes_get_one_line_errors(tmp_path, image_file, tiny_model_dir, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    model = ["--model", str(tiny_model_dir)]
    cases = [
        ("compress", str(tmp_path / "missing.png"), "-o", str(tmp_path / "a.gcz"), *model),
        ("compress", str(text), "-o", str(tmp_path / "a.gcz"), *model),
        ("compress", str(image_file), "-o", str(tmp_path / "no-dir" / "a.gcz"), *model),
        ("compress", str(image_file), "-o", str(tmp_path / "a.gcz"), "-q", "99", *model),
        ("compress", str(image_file), "-o", str(tmp_path / "a.gcz"), "--model", "no-such-model"),
        ("decompress", str(tmp_path / "missing.gcz"), "-o", str(tmp_path / "a.png")),
        ("info", str(image_file)),
    ]
    for args in cases:
        capsys.readouterr()
        assert main(list(args)) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("gancodec: error:") and err.count("\n") == 1, err
    assert not (tmp_path / "a.gcz").exists()


def test_decompress_to_jpeg_with_alpha_is_refused(tmp_path, tiny_model_dir, photo):
    rgba = np.dstack([photo, np.full(photo.shape[:2], 128, np.uint8)])
    src = tmp_path / "rgba.gcz"
    src.write_bytes(gancodec.compress(rgba, quality=1, model=str(tiny_model_dir)))
    result = run_cli("decompress", str(src), "-o", str(tmp_path / "x.jpg"), "--model", str(tiny_model_dir))
    assert result.returncode == 2 and "transparency" in result.stderr
    assert not (tmp_path / "x.jpg").exists()


def test_compress_refine_writes_a_file_that_decodes_and_bad_step_counts_give_one_line(tmp_path, image_file,
                                                                                     tiny_model_dir, capsys):
    out = tmp_path / "refined.gcz"
    assert main(["compress", str(image_file), "-o", str(out), "--model", str(tiny_model_dir), "-q", "2",
                 "--refine", "2", "--no-progress"]) == 0
    capsys.readouterr()
    photos, folder = tmp_path / "photos", tmp_path / "batch"
    photos.mkdir()
    (photos / "in.png").write_bytes(image_file.read_bytes())
    assert main(["compress", str(photos), "-o", str(folder), "--model", str(tiny_model_dir), "-q", "2",
                 "--refine", "2", "--no-progress"]) == 0
    assert (folder / "in.gcz").read_bytes() == out.read_bytes()  # folders refine too (same seed, same bytes)
    capsys.readouterr()
    png = tmp_path / "refined.png"
    assert main(["decompress", str(out), "-o", str(png), "--model", str(tiny_model_dir)]) == 0
    assert Image.open(png).size == (256, 256)
    for bad in ("-1", "2.5", "many", "100000"):
        result = run_cli("compress", str(image_file), "-o", str(tmp_path / "x.gcz"), "--refine", bad)
        assert result.returncode == 2 and "Traceback" not in result.stderr and "--refine" in result.stderr, bad
        assert not (tmp_path / "x.gcz").exists()
