"""The streaming PNG writer and the row-band decoder behind `gancodec decompress -o X.png`."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from gancodec.cli import main
from gancodec.pngstream import PngWriter, paeth_filter


def _image(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = np.linspace(0, 255, w)[None, :, None] + np.linspace(0, 60, h)[:, None, None]
    img = smooth + rng.normal(0, 20, (h, w, c))
    return np.clip(img, 0, 255).astype(np.uint8)


def _write(img: np.ndarray, bands: list[int], **meta) -> bytes:
    buf = io.BytesIO()
    png = PngWriter(buf, img.shape[1], img.shape[0], img.shape[2], **meta)
    r = 0
    for n in bands:
        png.write(img[r : r + n])
        r += n
    png.write(img[r:])
    png.close()
    return buf.getvalue()


@pytest.mark.parametrize("channels,mode", [(1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")])
def test_every_channel_count_reads_back_exactly(channels, mode):
    img = _image(37, 53, channels)
    with Image.open(io.BytesIO(_write(img, [1, 7, 0, 13]))) as out:
        assert out.mode == mode
        assert np.array_equal(np.asarray(out).reshape(img.shape), img)


def test_band_sizes_change_no_byte():
    img = _image(64, 40, 3, seed=1)
    one = _write(img, [])
    assert _write(img, [1] * 63) == one and _write(img, [5, 30]) == one


def test_paeth_matches_the_spec_on_a_few_pixels():
    rows = np.array([[[10], [20], [30]], [[40], [25], [35]]], dtype=np.uint8)  # 2 rows, 3 grey pixels
    out = paeth_filter(rows, None)
    assert out[:, 0].tolist() == [4, 4]
    # row 0: only left neighbours (up = up-left = 0): predictor = left
    assert out[0, 1:].tolist() == [10, 10, 10]
    # row 1, pixel 1: a=40 b=20 c=10, p=50, pa=10 pb=30 pc=40 → a → 25-40 = -15 mod 256
    assert out[1, 1:].tolist() == [30, (25 - 40) % 256, (35 - 30) % 256]


def test_metadata_chunks_are_read_by_pillow():
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "Maker"
    data = _write(_image(8, 8, 3), [], icc_profile=icc, exif=exif.tobytes())  # with or without the prefix
    with Image.open(io.BytesIO(data)) as out:
        assert out.info["icc_profile"] == icc and out.getexif()[0x010F] == "Maker"


def test_misuse_is_refused():
    buf = io.BytesIO()
    png = PngWriter(buf, 4, 2, 3)
    with pytest.raises(ValueError, match="rows must be uint8"):
        png.write(np.zeros((1, 5, 3), np.uint8))
    png.write(np.zeros((1, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="1 of 2 rows"):
        png.close()
    with pytest.raises(ValueError, match="more rows"):
        png.write(np.zeros((2, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="1 to 4 channels"):
        PngWriter(io.BytesIO(), 4, 2, 5)


@pytest.mark.parametrize("kind", ["RGB", "L", "RGBA"])
def test_row_bands_equal_the_whole_decode(tiny_codec, photo, monkeypatch, tmp_path, tiny_model_dir, kind):
    """decompress_rows hands over every row once, in order, in bands of 16·tile rows, and the
    streamed PNG of the command holds exactly the pixels of decompress()."""
    img = Image.fromarray(np.tile(photo, (3, 2, 1))[:150, :90]).convert(kind)
    if kind == "RGBA":  # a real alpha plane (an opaque one is not stored)
        img.putalpha(Image.fromarray(np.tile(np.arange(90, dtype=np.uint8), (150, 1))))
    data = tiny_codec.compress(img, quality=2)
    whole = tiny_codec.decompress(data)
    monkeypatch.setattr(tiny_codec, "tile", 2)  # 32-row bands
    seen = []
    got = np.zeros_like(whole.reshape(150, 90, -1))
    tiny_codec.decompress_rows(data, lambda r0, rows: seen.append((r0, rows.shape[0])) or
                               got.__setitem__(slice(r0, r0 + rows.shape[0]), rows))
    assert seen == [(0, 32), (32, 32), (64, 32), (96, 32), (128, 22)]
    assert np.array_equal(got.reshape(whole.shape), whole)
    gcz, png = tmp_path / "a.gcz", tmp_path / "a.png"
    gcz.write_bytes(data)
    assert main(["decompress", str(gcz), "-o", str(png), "--model", str(tiny_model_dir)]) == 0
    with Image.open(png) as out:
        assert out.mode == kind and np.array_equal(np.asarray(out), whole)


def test_decompress_to_file_streams_png_and_saves_other_formats(tiny_codec, photo, tmp_path):
    import gancodec

    img = Image.fromarray(photo[:70, :50])
    img.info["icc_profile"] = b""  # none
    data = tiny_codec.compress(img, quality=2)
    whole = tiny_codec.decompress(data)
    for name in ("a.png", "a.tiff"):
        gancodec.decompress_to_file(data, tmp_path / name, model=tiny_codec)
        with Image.open(tmp_path / name) as out:
            assert np.array_equal(np.asarray(out), whole)
    with pytest.raises(gancodec.UserError):
        gancodec.decompress_to_file(data[:40], tmp_path / "bad.png", model=tiny_codec)
    assert not (tmp_path / "bad.png").exists() and len(list(tmp_path.iterdir())) == 2  # nothing half-written


def test_a_decode_failing_midway_leaves_no_file(tiny_codec, photo, tmp_path, monkeypatch):
    import gancodec
    from gancodec.errors import CorruptFileError

    data = tiny_codec.compress(photo[:70, :50], quality=2)
    real = type(tiny_codec).decompress_rows

    def fail_after_first_band(self, data, write, *args, **kwargs):
        def write_then_fail(r0, rows):
            write(r0, rows)
            raise CorruptFileError("damaged")
        return real(self, data, write_then_fail, *args, **kwargs)

    monkeypatch.setattr(type(tiny_codec), "decompress_rows", fail_after_first_band)
    with pytest.raises(CorruptFileError):
        gancodec.decompress_to_file(data, tmp_path / "out.png", model=tiny_codec)
    assert list(tmp_path.iterdir()) == []


# -- the streaming reader ----------------------------------------------------------------------------
def _pillow_file(tmp_path, mode: str, seed: int = 1, **save) -> tuple:
    img = _image(97, 131, 4, seed)
    pil = {"RGB": lambda: Image.fromarray(img[..., :3]), "RGBA": lambda: Image.fromarray(img),
           "L": lambda: Image.fromarray(img[..., 0]), "LA": lambda: Image.fromarray(img[..., :2], "LA"),
           "P": lambda: Image.fromarray(img[..., :3]).quantize(200)}[mode]()
    path = tmp_path / f"{mode}.png"
    pil.save(path, **save)
    return path, Image.open(path)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P"])
def test_reader_bands_equal_pillows_decode(tmp_path, mode):
    """Any band size, any of Pillow's filters, and the first row of a band filtered against the
    previous band's last: the pixels are Pillow's to the bit, and the bands keep the mode."""
    from gancodec.pngstream import read_bands, read_layout

    path, ref = _pillow_file(tmp_path, mode, **({"transparency": 7} if mode == "P" else {}))
    layout = read_layout(path)
    assert layout.streamable
    for band_bytes in (1, 500, 10_000, 1 << 24):
        bands = list(read_bands(path, layout, band_bytes))
        assert {b.mode for b in bands} == {ref.mode}
        assert np.array_equal(np.concatenate([np.asarray(b) for b in bands]), np.asarray(ref))
        if mode == "P":  # the palette and its transparency travel with every band
            assert np.array_equal(np.concatenate([np.asarray(b.convert("RGBA")) for b in bands]),
                                  np.asarray(ref.convert("RGBA")))
    ours = tmp_path / "ours.png"  # our writer: Paeth everywhere, many IDAT chunks
    img = _image(300, 211, 3)
    ours.write_bytes(_write(img, [7, 100]))
    assert np.array_equal(np.concatenate([np.asarray(b) for b in read_bands(ours, read_layout(ours), 4000)]), img)


def test_undecoded_png_is_read_like_a_decoded_one(tmp_path):
    """open_image(decode=False) + to_rgb_alpha streams plain PNGs and hands anything else to
    Pillow (16-bit, 4-bit palette); both give what the decoded path gives."""
    from gancodec.imageio import open_image, to_rgb_alpha
    from gancodec.pngstream import read_layout

    cases = [_pillow_file(tmp_path, m)[0] for m in ("RGBA", "LA", "P")]
    deep = tmp_path / "deep.png"
    Image.fromarray(_image(40, 50, 1)[..., 0].astype(np.uint16) * 257).save(deep)
    packed = tmp_path / "packed.png"
    Image.fromarray(_image(40, 50, 3)).quantize(16).save(packed, bits=4)
    for path in (*cases, deep, packed):
        lazy = open_image(path, decode=False)
        streams = read_layout(path).streamable
        assert bool(lazy.tile) == streams  # left undecoded only when it can stream
        want_alpha = lazy.mode in ("RGBA", "LA")
        got = to_rgb_alpha(lazy, want_alpha)
        ref = to_rgb_alpha(open_image(path), want_alpha)
        assert np.array_equal(got[0], ref[0]) and (got[1] is None or np.array_equal(got[1], ref[1]))
    assert not read_layout(deep).streamable and not read_layout(packed).streamable


def test_exif_after_the_image_data_still_rotates(tmp_path):
    """An eXIf chunk after IDAT (where Pillow finds it only while decoding) is honoured."""
    from gancodec.imageio import open_image, to_rgb_array

    img = _image(30, 50, 3)
    exif = Image.Exif()
    exif[0x0112] = 6
    body = _write(img, [])
    iend = body.rindex(b"IEND") - 4
    path = tmp_path / "rotated.png"
    path.write_bytes(body[:iend] + _chunk(b"eXIf", exif.tobytes()[6:]) + body[iend:])
    lazy = open_image(path, decode=False)
    assert lazy.size == (30, 50)
    assert np.array_equal(to_rgb_array(lazy), np.rot90(img, -1))


def _chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@pytest.mark.parametrize("damage", ["idat-crc", "truncated", "short-data", "extra-data", "header-crc"])
def test_damaged_png_is_refused_with_one_line(tmp_path, damage):
    from gancodec.errors import UserError
    from gancodec.imageio import load_rgb_array

    body = bytearray(_write(_image(64, 64, 3), [16]))
    first_idat = body.index(b"IDAT")
    if damage == "idat-crc":
        body[first_idat + 40] ^= 0x10
    elif damage == "truncated":
        body = body[: first_idat + 200]
    elif damage == "header-crc":
        body[20] ^= 1  # inside IHDR's data
    else:
        import struct
        import zlib

        length = struct.unpack(">I", body[first_idat - 4 : first_idat])[0]
        raw = zlib.decompress(bytes(body[first_idat + 4 : first_idat + 4 + length]))
        raw = raw[:-65] if damage == "short-data" else raw + raw[:65]
        end = body.rindex(b"IEND") - 4
        body = body[: first_idat - 4] + _chunk(b"IDAT", zlib.compress(raw)) + body[end:]
    path = tmp_path / f"{damage}.png"
    path.write_bytes(bytes(body))
    with pytest.raises(UserError, match="cannot read image"):
        load_rgb_array(path)
