"""Large JPEGs and TIFFs read in rows through libvips: the pixels are Pillow's, the image is never
whole, a damaged file is one line, and anything libvips should not read goes to Pillow as before."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

import gancodec
from gancodec import vipsstream
from gancodec.imageio import StreamedRGB, load_rgb_array, open_image, streamed_rgb

pytestmark = pytest.mark.skipif(vipsstream._pyvips() is None, reason="pyvips / libvips not loadable")


@pytest.fixture
def small_threshold(monkeypatch):
    """Every JPEG counts as large, so small files exercise the large-image path."""
    monkeypatch.setattr(vipsstream, "STREAM_PIXELS", 100)


def _save(photo: np.ndarray, path, mode: str = "RGB", **params) -> None:
    img = Image.fromarray(photo)
    (img.convert("L") if mode == "L" else img).save(path, **params)


@pytest.mark.parametrize("suffix, mode, params", [
    (".jpg", "RGB", {"quality": 90, "subsampling": 0}),   # 4:4:4
    (".jpg", "RGB", {"quality": 60, "subsampling": 2}),   # 4:2:0: the chroma upsampling must be Pillow's
    (".jpg", "RGB", {"quality": 80, "progressive": True}),
    (".jpg", "L", {"quality": 85}),
    (".tif", "RGB", {"compression": "raw"}),              # one strip: the band is the image
    (".tif", "RGB", {"compression": "tiff_lzw"}),         # strips of 42 rows: bands start on them
    (".tif", "L", {"compression": "tiff_adobe_deflate"}),
    (".tif", "RGB", {"compression": "jpeg"}),
])
def test_rows_are_pillows_pixels(photo, tmp_path, small_threshold, suffix, mode, params):
    path = tmp_path / f"photo{suffix}"
    _save(photo, path, mode, **params)
    ref = np.asarray(Image.open(path).convert("RGB"))
    img = open_image(path, None, decode=False)
    assert img.tile, "a large upright JPEG is left undecoded for the row reader"
    assert np.array_equal(load_rgb_array(path, None), ref)
    rows = streamed_rgb(open_image(path, None, decode=False))
    assert rows is not None and rows.shape == ref.shape
    h = ref.shape[0]
    got = np.concatenate([rows.rows(r, min(r + 37, h)) for r in range(0, h, 37)])
    assert np.array_equal(got, ref)


@pytest.mark.parametrize("suffix, params", [(".jpg", {}), (".tif", {"compression": "tiff_lzw"})])
def test_bands_are_held_not_the_image(photo, tmp_path, small_threshold, monkeypatch, suffix, params):
    """Bands of about band_bytes, started on the file's strips (libvips refuses to go back into
    one): a few are held, never the image."""
    path = tmp_path / f"photo{suffix}"
    _save(photo, path, **params)
    h, w = photo.shape[:2]
    align = vipsstream._alignment(Image.open(path))
    assert align < h // 2
    monkeypatch.setattr(StreamedRGB, "band_bytes", 10 * 3 * w)  # asks for 10 rows: gets one strip's worth
    rows = streamed_rgb(open_image(path, None, decode=False))
    parts, held = [], []
    for r in range(0, h, 8):
        parts.append(rows.rows(r, min(r + 8, h)))
        held.append(sum(len(b) for _, b in rows._held))
    got = np.concatenate(parts)
    assert max(held) <= 2 * align
    assert np.array_equal(got, np.asarray(Image.open(path).convert("RGB")))
    rows.close()


def test_what_libvips_should_not_read_goes_to_pillow(photo, tmp_path, small_threshold, monkeypatch):
    path = tmp_path / "photo.jpg"
    _save(photo, path)
    monkeypatch.setattr(vipsstream, "STREAM_PIXELS", photo.shape[0] * photo.shape[1])  # not above it
    assert not open_image(path, None, decode=False).tile
    monkeypatch.setattr(vipsstream, "STREAM_PIXELS", 100)
    Image.fromarray(photo).convert("CMYK").save(tmp_path / "cmyk.jpg")
    assert not open_image(tmp_path / "cmyk.jpg", None, decode=False).tile
    monkeypatch.setattr(vipsstream, "_pyvips", lambda: None)  # no libvips: Pillow, same pixels
    assert not open_image(path, None, decode=False).tile
    assert np.array_equal(load_rgb_array(path, None), np.asarray(Image.open(path).convert("RGB")))


def test_truncated_jpeg_is_one_line(photo, tmp_path, small_threshold):
    path = tmp_path / "cut.jpg"
    _save(photo, path, quality=95)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(gancodec.UserError, match="cannot read image"):
        load_rgb_array(path, None)
    with pytest.raises(gancodec.UserError, match="cannot read image"):
        rows = streamed_rgb(open_image(path, None, decode=False))
        rows.rows(0, photo.shape[0])


def test_compress_streams_a_large_jpeg(tiny_codec, photo, tmp_path, small_threshold, monkeypatch):
    """compress reads a large JPEG's rows as the analysis moves down; the file is the one the
    decoded pixels give."""
    from gancodec import codec as codec_module

    path = tmp_path / "large.jpg"
    _save(np.tile(photo, (2, 2, 1))[:300, :280], path, quality=90)
    monkeypatch.setattr(codec_module, "LARGE_IMAGE_PIXELS", 1000)
    monkeypatch.setattr(type(tiny_codec), "large_analysis_tile", 5)
    read = []
    real_rows = StreamedRGB.rows
    monkeypatch.setattr(StreamedRGB, "rows", lambda self, a0, a1: (read.append(a1), real_rows(self, a0, a1))[1])
    streamed = tiny_codec.compress(str(path), quality=2)
    assert read, "the JPEG was streamed"
    assert streamed == tiny_codec.compress(np.asarray(Image.open(path).convert("RGB")), quality=2)


def test_tiled_tiff_bands_start_on_its_tiles(photo, tmp_path, small_threshold, monkeypatch):
    """A tiled TIFF (libvips writes one) is read in bands of whole tile rows: Pillow's pixels."""
    pyvips = vipsstream._pyvips()
    path = tmp_path / "tiled.tif"
    pyvips.Image.new_from_array(photo, interpretation="srgb").tiffsave(
        str(path), tile=True, tile_width=32, tile_height=32, compression="deflate")
    assert vipsstream._alignment(Image.open(path)) == 32
    monkeypatch.setattr(StreamedRGB, "band_bytes", 10 * 3 * photo.shape[1])
    rows = streamed_rgb(open_image(path, None, decode=False))
    h = photo.shape[0]
    got = np.concatenate([rows.rows(r, min(r + 8, h)) for r in range(0, h, 8)])
    assert np.array_equal(got, np.asarray(Image.open(path).convert("RGB")))
    assert np.array_equal(load_rgb_array(path, None), photo)


def _sixteen_bit(photo: np.ndarray, path, grey: bool) -> np.ndarray:
    """``photo`` widened to 16 bits with low bytes of its own (a raw converter's export) and saved
    at ``path``; returns the 16-bit samples."""
    deep = photo.astype(np.uint16) * 256 + photo[::-1]
    if grey:
        deep = deep[..., 1]
        Image.fromarray(deep).save(path)  # mode I;16
    else:
        vipsstream._pyvips().Image.new_from_array(deep, interpretation="rgb16").write_to_file(str(path))
    return deep


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("grey", [False, True])
def test_sixteen_bit_files_stream_as_pillow_reads_them(photo, tmp_path, small_threshold, suffix, grey):
    """16-bit RGB (Pillow keeps the high byte) and greyscale (scaled from the full 16-bit range)
    PNGs and TIFFs: the streamed rows equal the decoded image's."""
    path = tmp_path / f"deep{suffix}"
    deep = _sixteen_bit(photo, path, grey)
    decoded = gancodec.imageio.to_rgb_array(open_image(path, None, decode=True))
    expected = np.rint(deep / 65535 * 255).astype(np.uint8) if grey else (deep >> 8).astype(np.uint8)
    assert np.array_equal(decoded[..., 0], expected if grey else expected[..., 0])
    img = open_image(path, None, decode=False)
    assert img.tile, "a large 16-bit file is left undecoded for the row reader"
    assert np.array_equal(gancodec.imageio.to_rgb_array(img), decoded)
    rows = streamed_rgb(open_image(path, None, decode=False))
    assert rows is not None
    h = decoded.shape[0]
    assert np.array_equal(np.concatenate([rows.rows(r, min(r + 37, h)) for r in range(0, h, 37)]), decoded)


def test_a_dark_sixteen_bit_grey_image_stays_dark(tmp_path):
    """A 16-bit greyscale image is scaled from 65535 whatever its content: one whose values are
    all below 256 is nearly black, not read as if it were 8-bit."""
    Image.fromarray(np.full((20, 30), 200, np.uint16)).save(tmp_path / "dark.png")
    assert load_rgb_array(tmp_path / "dark.png", None).max() == 1  # 200 / 65535 · 255 = 0.78


def test_a_rotated_sixteen_bit_png_is_turned_as_it_is_read(photo, tmp_path, small_threshold):
    """EXIF orientation 6 in a 16-bit PNG's chunks: turned upright as its rows are read."""
    path = tmp_path / "rotated.png"
    deep = photo[:, :200].astype(np.uint16) * 257
    vipsstream._pyvips().Image.new_from_array(deep, interpretation="rgb16").pngsave(str(path), keep="none")
    exif = Image.Exif()
    exif[0x0112] = 6
    data = path.read_bytes()
    after_ihdr = 8 + 25
    path.write_bytes(data[:after_ihdr] + gancodec.pngstream._chunk(b"eXIf", exif.tobytes()[6:]) + data[after_ihdr:])
    turned = open_image(path, None, decode=False)
    assert turned.tile and gancodec.imageio.upright_size(turned) == (deep.shape[0], deep.shape[1])
    assert np.array_equal(gancodec.imageio.to_rgb_array(turned), np.rot90((deep >> 8).astype(np.uint8), -1))


def _rotated(photo: np.ndarray, path, orientation: int, **params) -> bytes:
    """``photo`` saved with EXIF ``orientation`` (and a GPS-ish tag of its own); returns the EXIF."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "gancodec test camera"  # Make: kept byte for byte
    Image.fromarray(photo).save(path, exif=exif.tobytes(), **params)
    return exif.tobytes()


@pytest.mark.parametrize("suffix, params", [(".jpg", {"quality": 90}), (".tif", {"compression": "tiff_lzw"}),
                                            (".png", {})])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_rotated_large_file_is_turned_as_its_rows_are_read(photo, tmp_path, small_threshold, monkeypatch,
                                                            orientation, suffix, params):
    """Every EXIF orientation, through the temporary file, in small bands: the pixels of Pillow's
    exif_transpose, the image never whole, the EXIF's orientation reset and its other tags kept
    (a JPEG's and a PNG's; Pillow gives a TIFF's tags no EXIF block). A plain PNG is read by our
    own reader, the others by libvips. Pillow gives a rotated TIFF its upright
    size before decoding it, libvips the stored one."""
    path = tmp_path / f"rotated{suffix}"
    stored = photo[:, :200]  # not square: a transposed size shows
    _rotated(stored, path, orientation, **params)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    img = open_image(path, None, decode=False)
    assert img.tile, "left undecoded, to be turned as it is read"
    assert gancodec.imageio.upright_size(img) == (expected.shape[1], expected.shape[0])
    if suffix != ".tif":
        exif = Image.Exif()
        exif.load(img.info["exif"])
        assert exif[0x0112] == 1 and exif[0x010F] == "gancodec test camera"
    loaded = open_image(path, None, decode=False)
    loaded.load()  # decoded after all (by a caller of open_image): turned once, not twice or never
    assert np.array_equal(gancodec.imageio.to_rgb_array(loaded), expected)
    monkeypatch.setattr(StreamedRGB, "band_bytes", 20 * 3 * 256)  # bands of a few dozen rows
    rows = streamed_rgb(img)
    assert rows.shape == expected.shape
    h = expected.shape[0]
    assert np.array_equal(np.concatenate([rows.rows(r, min(r + 9, h)) for r in range(0, h, 9)]), expected)
    rows.close()
    assert np.array_equal(load_rgb_array(path, None), expected)


def test_compress_turns_a_rotated_large_jpeg(tiny_codec, photo, tmp_path, small_threshold):
    """A phone's JPEG, stored sideways: compress codes it upright, the file the upright pixels
    give, and the EXIF it keeps says orientation 1."""
    from gancodec.codec import read_metadata

    path = tmp_path / "phone.jpg"
    _rotated(photo[:, :200], path, 6, quality=90)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert open_image(path, None, decode=False).tile
    assert tiny_codec.compress(str(path), quality=2) == tiny_codec.compress(upright, quality=2)
    exif = Image.Exif()
    exif.load(read_metadata(tiny_codec.compress(str(path), quality=2, keep_metadata=True))["exif"])
    assert exif[0x0112] == 1


def test_a_rotated_large_png_with_alpha_is_turned_with_its_alpha(photo, tmp_path, small_threshold):
    """A palette PNG with transparency and an RGBA one, stored turned: colour and alpha upright."""
    rgba = np.dstack([photo[:, :200], np.tile(np.arange(200, dtype=np.uint8), (photo.shape[0], 1))])
    for name, img in (("rgba", Image.fromarray(rgba)), ("palette", Image.fromarray(photo[:, :200]).quantize(16))):
        path = tmp_path / f"{name}.png"
        exif = Image.Exif()
        exif[0x0112] = 8
        img.save(path, exif=exif.tobytes(), **({"transparency": 3} if name == "palette" else {}))
        expected = ImageOps.exif_transpose(Image.open(path)).convert("RGBA")
        colour, alpha = gancodec.imageio.to_rgb_alpha(open_image(path, None, decode=False), alpha=True)
        assert np.array_equal(colour, np.asarray(expected.convert("RGB")))
        assert np.array_equal(alpha, np.asarray(expected.getchannel("A")))


def test_a_small_rotated_png_is_turned_by_pillow(photo, tmp_path):
    path = tmp_path / "small.png"
    _rotated(photo[:, :200], path, 6)
    img = open_image(path, None, decode=False)
    assert not getattr(img, "tile", None) and img.size == (256, 200)  # decoded and turned at once, as before
    assert np.array_equal(gancodec.imageio.to_rgb_array(img), np.rot90(photo[:, :200], -1))


def test_no_room_to_turn_a_photo_is_one_line(photo, tmp_path, small_threshold, monkeypatch):
    path = tmp_path / "rotated.jpg"
    _rotated(photo[:, :200], path, 6)

    def full(self, r0, c0, block):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gancodec.diskarray.DiskArray, "write", full)
    with pytest.raises(gancodec.UserError, match="temporary disk space .*No space left on device"):
        load_rgb_array(path, None)
    with pytest.raises(gancodec.UserError, match="temporary disk space"):
        streamed_rgb(open_image(path, None, decode=False)).rows(0, 10)


@pytest.mark.parametrize("deep", [False, True])
def test_a_file_libvips_turns_down_after_all_is_read_by_pillow(photo, tmp_path, small_threshold, monkeypatch, deep):
    """Left undecoded for libvips (turned, or 16-bit), then refused by it: Pillow's pixels, upright."""
    if deep:
        path = tmp_path / "deep.png"
        Image.fromarray(photo[..., 0].astype(np.uint16) * 257).save(path)
    else:
        path = tmp_path / "rotated.jpg"
        _rotated(photo[:, :200], path, 6)
    img = open_image(path, None, decode=False)
    assert img.tile
    expected = gancodec.imageio.to_rgb_array(open_image(path, None, decode=True))
    monkeypatch.setattr(gancodec.imageio, "open_rows", lambda img: None)
    assert streamed_rgb(img) is None
    assert np.array_equal(gancodec.imageio.to_rgb_array(img), expected)
