"""Every released codec version stays decodable (issue 14, "No orphaned files").

The fixtures in ``tests/data/gcz-v1/`` were written by released models (``written-by.json``
says which); ``decoded-sha256.json`` holds the SHA-256 of their decoded pixels per decoder. A
file is decoded without naming a model: the installed codec whose config name and weights hash
match the file's header is found (:func:`gancodec.zoo.find_codec`), whichever release it is.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import gancodec
from gancodec.bitstream import Container
from gancodec.cli import main
from gancodec.zoo import find_codec, installed_codecs, load_model, weights_hash

FIXTURES = Path(__file__).parent / "data" / "gcz-v1"
V04_FILE = FIXTURES / "astronaut-v0.4.gcz"


def _astronaut_crop() -> np.ndarray:
    """The image of ``astronaut-v0.4.gcz`` (96×64 RGB, written at quality 2)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[64:128, 160:256])


@pytest.fixture(scope="module", autouse=True)
def shipped_releases():
    # The releases are package data; an install without weights has nothing to check here.
    if not {"hific-lite", "hific-lite-v0.4"} <= set(gancodec.available_models()):
        pytest.skip("shipped hific-lite releases are not in the package")


def _sha(pixels: np.ndarray) -> str:
    return hashlib.sha256(pixels.tobytes()).hexdigest()


def test_every_fixture_of_every_version_decodes_bit_exactly_without_a_model():
    expected = json.loads((FIXTURES / "decoded-sha256.json").read_text())
    written_by = json.loads((FIXTURES / "written-by.json").read_text())
    assert {key.split(":")[0] for key in expected} == set(written_by)  # every fixture has its hashes
    assert {"0.4", "0.5"} <= set(written_by.values())
    for key, digest in expected.items():
        name, how = key.split(":")  # a decoder, or realism=R: a blend as its release made it
        data = (FIXTURES / name).read_bytes()
        if how.startswith("realism="):
            pixels = gancodec.decompress(data, realism=float(how.split("=")[1]))
        else:
            pixels = gancodec.decompress(data, decoder=how)
        assert _sha(pixels) == digest, key


def test_cli_decompress_finds_the_old_release(tmp_path):
    out = tmp_path / "old.png"
    assert main(["decompress", str(V04_FILE), "-o", str(out), "--decoder", "gan"]) == 0
    expected = json.loads((FIXTURES / "decoded-sha256.json").read_text())
    from PIL import Image

    assert _sha(np.asarray(Image.open(out))) == expected["astronaut-v0.4.gcz:gan"]


def test_folder_mode_decodes_files_of_several_versions(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("astronaut-v0.4.gcz", "grey.gcz"):
        shutil.copy(FIXTURES / name, src / name)
    assert main(["decompress", str(src), "-o", str(tmp_path / "out"), "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["done"] == 2


def test_info_names_the_version(capsys):
    for name, version in json.loads((FIXTURES / "written-by.json").read_text()).items():
        assert main(["info", str(FIXTURES / name)]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["model"] == "hific-lite" and info["model_version"] == version, name
        assert info["model_installed"] and Path(info["model_folder"]).name.startswith("hific-lite"), name
        # v1.0 on: the GAN decoder is anchored to v0.10's MSE decoder (docs/FORMAT.md)
        assert ("gan_anchor" in info) == (tuple(map(int, version.split("."))) >= (1, 0)), name


def test_old_release_encodes_files_as_it_did(tmp_path, capsys):
    """``--model hific-lite-v0.4`` writes what v0.4 wrote (name + hash in the header), and such a
    file comes back through the default path, decoded by the same weights."""
    src, gcz = tmp_path / "crop.png", tmp_path / "crop.gcz"
    from PIL import Image

    Image.fromarray(_astronaut_crop()).save(src)
    assert main(["compress", str(src), "-o", str(gcz), "-q", "2", "--model", "hific-lite-v0.4"]) == 0
    data = gcz.read_bytes()
    ours, theirs = Container.from_bytes(data).header, Container.from_bytes(V04_FILE.read_bytes()).header
    ours.stream_lengths = theirs.stream_lengths = []  # the analysis runs in float32: sizes may vary
    assert ours == theirs
    explicit = gancodec.decompress(data, model="hific-lite-v0.4")
    assert np.array_equal(gancodec.decompress(data), explicit)
    # the newest release is the default for new files, and still refuses the old one's files
    assert Container.from_bytes(gancodec.compress(_astronaut_crop(), quality=2)).header.weights_hash \
        == load_model("hific-lite").weights_hash != theirs.weights_hash
    with pytest.raises(gancodec.ModelMismatchError, match="made by model hific-lite@4773e21aec3c4ed4"):
        gancodec.decompress(data, model="hific-lite")


def test_a_file_of_no_installed_model_is_refused_with_what_is_installed(tmp_path, capsys):
    c = Container.from_bytes(V04_FILE.read_bytes())
    c.header.weights_hash = bytes(8)
    forged = tmp_path / "unknown.gcz"
    forged.write_bytes(Container(c.header, c.streams).to_bytes())
    with pytest.raises(gancodec.ModelMismatchError) as err:
        gancodec.decompress(forged.read_bytes())
    message = str(err.value)
    assert "hific-lite@0000000000000000" in message and "not installed" in message
    # every installed release is listed (the newest sits in hific-lite/, older ones in hific-lite-vX.Y/)
    assert "hific-lite 0.4 [hific-lite-v0.4]" in message and "hific-lite 0.5 [hific-lite" in message
    assert main(["decompress", str(forged), "-o", str(tmp_path / "x.png")]) == 2
    assert main(["info", str(forged)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model_installed"] is False and info["model_version"] is None


def test_lookup_survives_the_next_release_and_searches_gancodec_weights_first(tmp_path, monkeypatch):
    """When the next release ships, today's folder becomes hific-lite-vX.Y: its files must still be
    found. Simulated with a GANCODEC_WEIGHTS folder, which is searched before the package."""
    current = load_model("hific-lite")
    version = current.meta["version"]
    archived = tmp_path / f"hific-lite-v{version}"
    archived.mkdir()
    for f in ("config.json", "model.safetensors"):
        (archived / f).symlink_to(Path(current.folder) / f)
    monkeypatch.setenv("GANCODEC_WEIGHTS", str(tmp_path))
    entry = find_codec("hific-lite", current.weights_hash)
    assert entry.folder == archived and entry.version == version
    assert installed_codecs()[0].folder == archived
    written_by = json.loads((FIXTURES / "written-by.json").read_text())
    newest = next(name for name, v in written_by.items() if v == version)  # a file of today's release
    expected = json.loads((FIXTURES / "decoded-sha256.json").read_text())[f"{newest}:mse"]
    assert _sha(gancodec.decompress((FIXTURES / newest).read_bytes())) == expected


def test_export_stores_the_hash_and_loading_checks_it(tmp_path, tiny_model_dir, photo, monkeypatch):
    from gancodec.models.codec import CodecConfig, HiFiCLite
    from gancodec.zoo import codec_entry
    from gancodec.zoo.export import export_model

    from .conftest import TINY_CONFIG

    meta = json.loads((tiny_model_dir / "config.json").read_text())
    assert meta["weights_hash"] == weights_hash(tiny_model_dir / "model.safetensors").hex()
    released = export_model(HiFiCLite(CodecConfig(**TINY_CONFIG)), tmp_path / "tiny-v9", name="tiny", version="9.9")
    assert codec_entry(released.parent).version == "9.9"
    # a renamed folder still writes the config's name, and reads files that carry the folder's
    renamed = tmp_path / "renamed"
    shutil.copytree(tiny_model_dir, renamed)
    codec = load_model(str(renamed))
    data = codec.compress(photo[:64, :64], quality=1)
    assert Container.from_bytes(data).header.model == "tiny"
    c = Container.from_bytes(data)
    c.header.model = "renamed"
    assert codec.decompress(Container(c.header, c.streams).to_bytes()).shape == (64, 64, 3)
    # installed through GANCODEC_WEIGHTS, the tiny model's files decode without naming it
    monkeypatch.setenv("GANCODEC_WEIGHTS", str(tiny_model_dir.parent))
    assert gancodec.decompress(data).shape == (64, 64, 3)
    # a stale stored hash would send files to the wrong weights: refused when loading
    stale = tmp_path / "stale"
    shutil.copytree(tiny_model_dir, stale)
    (stale / "config.json").write_text(json.dumps(meta | {"weights_hash": "00" * 8}))
    with pytest.raises(gancodec.UserError, match="weights_hash"):
        load_model(str(stale))
