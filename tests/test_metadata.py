"""Photo metadata: EXIF orientation applied on reading, ICC profile (and EXIF on request)
carried through ``.gcz`` to the decoded image; files without metadata stay version 1."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageCms

import gancodec
from gancodec.bitstream import Container
from gancodec.cli import main
from gancodec.codec import read_metadata
from gancodec.imageio import open_image, reset_orientation


def _make_icc(kind: str) -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile(kind)).tobytes()


PROFILES = {kind: _make_icc(kind) for kind in ("sRGB", "LAB")}  # made once: a profile holds its creation time


def _icc(kind: str = "sRGB") -> bytes:
    return PROFILES[kind]


@pytest.fixture()
def rotated_jpeg(tmp_path, photo):
    """A phone photo stored sideways: 48 wide, 32 high, EXIF orientation 6 (rotate 90° CW)."""
    stored = np.ascontiguousarray(photo[:32, :48])
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "PhoneMaker"
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, quality=95, exif=exif.tobytes(), icc_profile=_icc())
    return path


def test_exif_orientation_applied_on_reading(rotated_jpeg):
    img = open_image(rotated_jpeg)
    assert img.size == (32, 48)  # upright: 32 wide, 48 high
    raw = Image.open(rotated_jpeg)
    np.testing.assert_array_equal(np.asarray(img), np.asarray(raw.transpose(Image.Transpose.ROTATE_270)))
    assert img.getexif().get(0x0112, 1) == 1  # not rotated twice downstream
    assert img.getexif()[0x010F] == "PhoneMaker"  # the rest of the block is kept


def test_rotated_jpeg_round_trips_upright_with_metadata(tmp_path, rotated_jpeg, tiny_model_dir, capsys):
    gcz, png = tmp_path / "phone.gcz", tmp_path / "phone.png"
    model = ["--model", str(tiny_model_dir)]
    assert main(["compress", str(rotated_jpeg), "-o", str(gcz), "--keep-metadata", *model]) == 0
    assert json.loads(capsys.readouterr().out)["width"] == 32
    assert main(["info", str(gcz)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format_version"] == 2 and {"iccp", "exif"} <= set(info["streams"])
    assert main(["decompress", str(gcz), "-o", str(png), *model]) == 0
    with Image.open(png) as out:
        assert out.size == (32, 48)
        assert out.info["icc_profile"] == _icc()
        exif = out.getexif()
        assert exif[0x010F] == "PhoneMaker" and exif.get(0x0112, 1) == 1
    # without --keep-metadata: the colour profile travels, EXIF does not
    assert main(["compress", str(rotated_jpeg), "-o", str(gcz), *model]) == 0
    meta = read_metadata(gcz.read_bytes())
    assert set(meta) == {"icc_profile"}


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_icc_profile_round_trips(tmp_path, tiny_codec, photo, mode):
    src = Image.fromarray(photo[:40, :40])
    if mode == "RGBA":  # semi-transparent, so the alpha stream is there too
        src.putalpha(Image.fromarray(np.full((40, 40), 100, np.uint8)))
    profile = _icc("sRGB")
    path = tmp_path / f"tagged_{mode}.png"
    src.save(path, icc_profile=profile)
    data = tiny_codec.compress(path, quality=2)
    assert Container.from_bytes(data).icc_profile == profile
    out = tmp_path / "out.png"
    from gancodec.imageio import save_image

    save_image(out, tiny_codec.decompress(data), **read_metadata(data))
    with Image.open(out) as img:
        assert img.info["icc_profile"] == profile and img.mode == mode


def test_profile_of_another_colour_space_is_dropped(tiny_codec, photo):
    """A CMYK (or Lab) profile would be wrong once the pixels are RGB: not carried."""
    img = Image.fromarray(photo[:16, :16])
    img.info["icc_profile"] = _icc("LAB")
    assert Container.from_bytes(tiny_codec.compress(img, quality=1)).icc_profile is None


def test_files_without_metadata_are_version_1(tiny_codec, photo):
    data = tiny_codec.compress(photo[:20, :20], quality=1)
    assert data[4] == 1 and Container.from_bytes(data).extensions == {}
    assert read_metadata(data) == {}


def test_reset_orientation_patches_in_place():
    exif = Image.Exif()
    exif[0x0112] = 8
    exif[0x0131] = "software"
    raw = exif.tobytes()  # Pillow writes the JPEG prefix
    patched = reset_orientation(raw)
    assert len(patched) == len(raw) and patched.startswith(b"Exif\x00\x00")
    back = Image.Exif()
    back.load(patched[6:])
    assert back[0x0112] == 1 and back[0x0131] == "software"
    assert reset_orientation(b"garbage") is None


def test_api_keeps_metadata_from_pil_images(tiny_codec, photo):
    img = Image.fromarray(photo[:24, :16])
    exif = Image.Exif()
    exif[0x0112] = 3  # upside down
    img.info["exif"] = exif.tobytes()
    data = gancodec.compress(img, quality=1, model=tiny_codec, keep_metadata=True)
    c = Container.from_bytes(data)
    assert (c.header.width, c.header.height) == (16, 24)
    back = Image.Exif()
    back.load(c.exif)
    assert back[0x0112] == 1


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "CMYK", "1"])
def test_rgb_arrays_are_made_in_bands_with_the_same_pixels(mode, monkeypatch):
    """to_rgb_array converts a band of rows at a time (memory); the pixels are Pillow's whole-image
    conversion's, at any band height."""
    from gancodec import imageio

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (53, 41, 3), dtype=np.uint8)).convert(mode)
    monkeypatch.setattr(imageio, "_BAND_BYTES", 3 * 41 * 7)  # 7-row bands
    out = imageio.to_rgb_array(img)
    assert out.flags.writeable and np.array_equal(out, np.asarray(img.convert("RGB")))
