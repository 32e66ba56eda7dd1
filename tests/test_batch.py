"""Whole folders: one bad file does not stop the rest, resume, shard, jobs, summary."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from gancodec.batch import collect, parse_shard
from gancodec.cli import main
from gancodec.errors import UserError


@pytest.fixture()
def folder(tmp_path, photo):
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    for i, rel in enumerate(["a.png", "b.jpg", "sub/c.png", "sub/d.png"]):
        Image.fromarray(np.ascontiguousarray(np.roll(photo[:40, :48], i, axis=0))).save(root / rel)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (root / "notes.txt").write_text("not an image, not picked up")
    (root / ".hidden.png").write_bytes(b"ignored")
    return root


def _summary(capsys) -> tuple[dict, str]:
    cap = capsys.readouterr()
    return json.loads(cap.out.strip().splitlines()[-1]), cap.err


def test_folder_with_a_broken_file_then_resume(tmp_path, folder, tiny_model_dir, capsys):
    out = tmp_path / "out"
    args = ["compress", str(folder), "-o", str(out), "--model", str(tiny_model_dir), "-q", "1", "--no-progress"]
    assert main(args) == 1  # some failed
    summary, err = _summary(capsys)
    assert summary | {"seconds": 0} == {"files": 5, "done": 4, "skipped": 0, "failed": 1, "seconds": 0,
                                        "bytes_in": summary["bytes_in"], "bytes_out": summary["bytes_out"]}
    assert "broken.png" in err and err.count("\n") == 1
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert made == ["a.gcz", "b.gcz", "sub/c.gcz", "sub/d.gcz"]  # no partial file for the failure
    # resume: what exists is skipped, a removed output is redone
    (out / "sub" / "c.gcz").unlink()
    assert main(args) == 1
    summary, _ = _summary(capsys)
    assert (summary["done"], summary["skipped"], summary["failed"]) == (1, 3, 1)
    # decompress the folder back
    pngs = tmp_path / "pngs"
    assert main(["decompress", str(out), "-o", str(pngs), "--model", str(tiny_model_dir), "--no-progress"]) == 0
    summary, _ = _summary(capsys)
    assert summary["done"] == 4 and summary["failed"] == 0
    assert Image.open(pngs / "sub" / "d.png").size == (48, 40)


def test_shards_partition_the_collection(tmp_path, folder):
    jobs = collect([str(folder)], {".png", ".jpg"}, tmp_path / "o", ".gcz")
    assert [j.rel for j in jobs] == sorted(j.rel for j in jobs)
    parts = [jobs[k::3] for k in range(3)]
    assert sorted(j.rel for p in parts for j in p) == [j.rel for j in jobs]
    assert parse_shard("2/3") == (2, 3) and parse_shard(None) == (0, 1)
    for bad in ("3/3", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(UserError):
            parse_shard(bad)


def test_shard_and_jobs_on_the_command_line(tmp_path, folder, tiny_model_dir, capsys):
    out = tmp_path / "out"
    base = ["compress", str(folder), "-o", str(out), "--model", str(tiny_model_dir), "-q", "1", "--no-progress"]
    assert main([*base, "--shard", "0/2"]) == 1  # broken.png is in shard 0 (sorted: a, b, broken, sub/c, sub/d)
    s0, _ = _summary(capsys)
    assert main([*base, "--shard", "1/2", "--jobs", "2"]) == 0
    s1, _ = _summary(capsys)
    assert (s0["files"], s1["files"]) == (3, 2) and s1["done"] == 2
    assert len(list(out.rglob("*.gcz"))) == 4


def test_outputs_that_would_collide_are_refused(tmp_path, photo, tiny_model_dir, capsys):
    a, b = tmp_path / "x" / "same.png", tmp_path / "y" / "same.jpg"
    for p in (a, b):
        p.parent.mkdir()
        Image.fromarray(photo[:16, :16]).save(p)
    assert main(["compress", str(a), str(b), "-o", str(tmp_path / "out"), "--model", str(tiny_model_dir)]) == 2
    assert "would both be written" in capsys.readouterr().err
