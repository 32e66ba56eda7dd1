"""Hostile and oversized inputs: every crafted file is refused with our error, at once.

Each attack of issue 15 has a small crafted file here: a valid ``.gcz`` whose header claims a
huge size with its CRC recomputed, a PNG header claiming 20000×20000, a forged alpha plane,
forged escape values and a model name that is a path.
"""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

import gancodec
from gancodec.bitstream import Container
from gancodec.cli import main
from gancodec.errors import CorruptFileError, UserError
from gancodec.fuzz import _header_offsets, recrc
from gancodec.imageio import open_image
from gancodec.limits import DEFAULT_MAX_PIXELS, ImageTooLargeError


@pytest.fixture()
def small_gcz(tiny_codec, photo) -> bytes:
    return tiny_codec.compress(photo[:40, :56], quality=2)


def with_size(data: bytes, width: int, height: int) -> bytes:
    """The attacker's edit: new declared size, CRC recomputed."""
    b = bytearray(data)
    struct.pack_into("<II", b, _header_offsets(data)["width"], width, height)
    return recrc(bytes(b))


@pytest.mark.parametrize("size", [(65535, 65535), (20000, 20000), (13500, 13500)])
def test_huge_declared_size_is_refused_before_decoding(tiny_codec, small_gcz, size):
    data = with_size(small_gcz, *size)
    assert Container.from_bytes(data).header.width == size[0]  # a well-formed container
    t = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="above the limit"):
        tiny_codec.decompress(data)
    assert time.perf_counter() - t < 1.0  # refused from the header, nothing allocated


def test_limit_is_the_callers(tiny_codec, small_gcz, photo):
    with pytest.raises(ImageTooLargeError):
        tiny_codec.decompress(small_gcz, max_pixels=1000)
    assert tiny_codec.decompress(small_gcz, max_pixels=40 * 56).shape == (40, 56, 3)
    assert gancodec.decompress(small_gcz, model=tiny_codec, max_pixels=None).shape == (40, 56, 3)
    with pytest.raises(ImageTooLargeError):
        gancodec.compress(photo, model=tiny_codec, max_pixels=100)
    with pytest.raises(UserError):
        tiny_codec.decompress(small_gcz, max_pixels=-5)


@pytest.mark.parametrize("value", [False, True, -1, 1.5, "100"])
def test_max_pixels_must_be_a_whole_number(value):
    # False == 0, but it is no request for "no limit": it must not switch the limit off
    from gancodec.limits import resolve

    with pytest.raises(UserError):
        resolve(value)
    assert resolve(0) is None and resolve(None) is None and resolve(7) == 7


def test_cli_refuses_a_size_attack_in_one_line(tmp_path, tiny_model_dir, small_gcz, capsys):
    bad = tmp_path / "bomb.gcz"
    bad.write_bytes(with_size(small_gcz, 65535, 65535))
    out = tmp_path / "bomb.png"
    assert main(["decompress", str(bad), "-o", str(out), "--model", str(tiny_model_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gancodec: error:") and "above the limit" in err and err.count("\n") == 1
    assert not out.exists()
    # a smaller one passes the default but not a lowered limit
    bad.write_bytes(with_size(small_gcz, 300, 200))
    assert main(["decompress", str(bad), "-o", str(out), "--model", str(tiny_model_dir),
                 "--max-pixels", "50000"]) == 2
    assert "above the limit" in capsys.readouterr().err


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width × height (IHDR and its CRC rewritten)."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    b = bytearray(buf.getvalue())
    struct.pack_into(">II", b, 16, width, height)  # IHDR data starts after signature + length + type
    struct.pack_into(">I", b, 29, zlib.crc32(bytes(b[12:29])))
    return bytes(b)


def test_huge_png_is_refused_with_our_error(tmp_path, tiny_model_dir, capsys):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_claiming(20000, 20000))
    with pytest.raises(ImageTooLargeError, match="400.0 MP, above the limit"):
        open_image(path)
    # Pillow's own check must not fire first, whatever the limit we are given
    saved = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = 1000
        with pytest.raises(ImageTooLargeError, match="20000×20000 = 400.0 MP, above the limit"):
            open_image(path, max_pixels=399_999_999)
        assert Image.MAX_IMAGE_PIXELS >= 399_999_999 // 2  # raised so that ours decides
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    out = tmp_path / "x.gcz"
    assert main(["compress", str(path), "-o", str(out), "--model", str(tiny_model_dir)]) == 2
    err = capsys.readouterr().err
    assert "above the limit" in err and err.count("\n") == 1 and not out.exists()


def test_default_limit_is_pillows():
    assert DEFAULT_MAX_PIXELS == 2 * 89_478_485


def _rebuild(data: bytes, **streams: bytes) -> bytes:
    c = Container.from_bytes(data)
    names = ["z", "z_esc", "y", "y_esc", "alpha"]
    new = [streams.get(n, s) for n, s in zip(names, c.streams)]
    return Container(c.header, new, dict(c.extensions)).to_bytes()


def test_forged_alpha_plane_is_refused_unread(tiny_codec, photo):
    rgba = np.dstack([photo[:40, :56], np.full((40, 56), 7, np.uint8)])
    data = tiny_codec.compress(rgba, quality=1)
    for png in (_png_claiming(20000, 20000), _png_claiming(56, 41), b"\x89PNG\r\n\x1a\nrubbish", b""):
        with pytest.raises(CorruptFileError, match="alpha"):
            tiny_codec.decompress(_rebuild(data, alpha=png))


def test_forged_escape_values_are_refused(tiny_codec, small_gcz):
    c = Container.from_bytes(small_gcz)
    # z escapes beyond anything the encoder writes would overflow the exact hyper-synthesis
    for values in ([2**31 - 1], [-(2**31)], [5, 6, 7]):
        forged = _rebuild(small_gcz, z_esc=c.streams[1] + struct.pack(f"<{len(values)}i", *values))
        with pytest.raises(CorruptFileError):
            tiny_codec.decompress(forged)


def test_model_name_in_a_file_is_not_a_path(tmp_path, tiny_model_dir, small_gcz, capsys):
    """Without --model, the file's model name is looked up among installed models only."""
    if len(str(tiny_model_dir).encode()) > 255:
        pytest.skip("temporary path too long for a model name")
    c = Container.from_bytes(small_gcz)
    c.header.model = str(tiny_model_dir)
    path = tmp_path / "path-name.gcz"
    path.write_bytes(Container(c.header, c.streams).to_bytes())
    assert main(["decompress", str(path), "-o", str(tmp_path / "x.png")]) == 2
    assert "not installed" in capsys.readouterr().err
