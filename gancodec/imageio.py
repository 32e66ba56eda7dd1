"""The one image I/O layer every command uses: reading, mode handling and atomic writes.

Reading normalises any Pillow-readable file to an 8-bit array and remembers whether it was
greyscale. It checks the size the file declares against a pixel limit before decoding a single
pixel (:mod:`gancodec.limits`), and applies the EXIF orientation, as photo viewers do, so a
phone photo is coded the way it is seen. Writing always goes to a temporary file in the
destination folder followed by a rename, so an interrupted or failed command never leaves a
half-written output behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import vipsstream
from .errors import UserError
from .limits import DEFAULT_MAX_PIXELS, ImageTooLargeError, check_pixels, resolve
from .orientation import TRANSPOSING, TurnError, upright_bands
from .pngstream import PngError, PngLayout, image_layout, read_bands
from .vipsstream import SIXTEEN_BIT_MODES, SIXTEEN_BIT_TO_8, StreamError, open_rows, stored_size, streamable

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
ORIENTATION_TAG = 0x0112
_TURN = "gancodec.turn"  # info of an undecoded file turned as its rows are read: its EXIF orientation
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}  # Pillow's exif_transpose


def _let_pillow_open(max_pixels: int | None) -> None:
    """Pillow refuses images above 2 × ``Image.MAX_IMAGE_PIXELS`` with its own exception while
    opening. Our limit is the one that applies (with our message), so Pillow's threshold is
    raised when it is lower than ours; it is never lowered, so a host program that set its own
    keeps at least that much room."""
    if Image.MAX_IMAGE_PIXELS is None:
        return
    limit = resolve(max_pixels)
    if limit is None:
        Image.MAX_IMAGE_PIXELS = None
    elif 2 * Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = -(-limit // 2)


def open_image(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS, decode: bool = True) -> Image.Image:
    """Open and decode an image file, upright (EXIF orientation applied). A file declaring more
    than ``max_pixels`` pixels is refused from its header, before its pixels are decoded.

    ``decode=False`` leaves a plain 8-bit PNG (:mod:`gancodec.pngstream`), or a large JPEG, TIFF
    or 16-bit PNG (:mod:`gancodec.vipsstream`), undecoded, for :func:`to_rgb_array` / :func:`to_rgb_alpha` /
    :func:`streamed_rgb` to stream band by band (never the whole image in Pillow's 4 bytes a
    pixel). A large one stored turned is turned upright as it is read; until then its ``size`` is
    the stored one (:func:`upright_size` gives the upright one). Other files are decoded as
    with ``decode=True``. A PNG's chunks are checked either way (a damaged file is refused here,
    its pixel data as it is read)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"input file not found: {path}")
    if path.is_dir():
        raise UserError(f"input is a folder, not an image: {path}")
    _let_pillow_open(max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our limit decides
            img = Image.open(path)
        check_pixels(*img.size, max_pixels, what=f"image {path}")  # header only so far
        if decode or not _left_for_rows(img):
            img.load()
            img = apply_orientation(img)
    except ImageTooLargeError:
        raise
    except Image.DecompressionBombError as exc:
        # Pillow's check ran first (it only can for images above our limit too): same refusal,
        # our wording. Its message carries the pixel count but not the sides.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        count = f"{int(found.group(1)) / 1e6:.1f} MP" if found else "too many pixels"
        limit = resolve(max_pixels)
        raise ImageTooLargeError(
            f"image {path} has {count}, above the limit of {(limit or 0) / 1e6:.1f} MP "
            "(raise it with --max-pixels or max_pixels=)"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error) as exc:
        raise UserError(f"cannot read image {path}: {exc}") from None
    return img


def _is_undecoded_png(img: Image.Image) -> bool:
    """A PNG opened from a file whose pixels Pillow has not decoded yet (its tile list is
    emptied by ``load``)."""
    return img.format == "PNG" and bool(getattr(img, "tile", None)) and bool(getattr(img, "filename", ""))


def _orientation(exif: bytes | None) -> int:
    if not exif:
        return 1
    try:
        ex = Image.Exif()
        ex.load(exif if exif.startswith(b"Exif\x00\x00") else b"Exif\x00\x00" + exif)
        return int(ex.get(ORIENTATION_TAG, 1) or 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block leaves the pixels as stored
        return 1


def _png_layout(img: Image.Image) -> PngLayout | None:
    """The layout of an undecoded PNG from its chunks, else None. Its EXIF block is put in
    ``info`` even when the file has it after the image data (where Pillow finds it only while
    decoding the whole image, which is what its ``getexif`` would do)."""
    if not _is_undecoded_png(img):
        return None
    layout = image_layout(img)
    if layout is None or (layout.width, layout.height) != img.size:
        return None
    if layout.exif is not None:
        img.info.setdefault("exif", layout.exif)
    return layout


def _plain_png_layout(img: Image.Image) -> PngLayout | None:
    """The layout of an undecoded PNG that :mod:`gancodec.pngstream` reads in rows (plain 8-bit,
    not interlaced), else None."""
    layout = _png_layout(img)
    return layout if layout is not None and layout.streamable else None


def _row_turn(img: Image.Image) -> int | None:
    """For an undecoded image read in rows (a plain 8-bit PNG by :mod:`gancodec.pngstream`, a
    large JPEG, TIFF or 16-bit PNG by libvips), the EXIF orientation its rows are turned by as
    they are read (1: upright already); None for any other image, and for a small plain PNG
    stored turned (Pillow turns its few MB faster than a temporary file would)."""
    if _TURN in img.info:
        return img.info[_TURN]
    plain_png = _plain_png_layout(img)
    if plain_png is None and not streamable(img):
        return None
    if img.format == "PNG":  # its layout is read by now
        orientation = _orientation(image_layout(img).exif)
    else:
        try:
            orientation = img.getexif().get(ORIENTATION_TAG, 1)  # as apply_orientation reads it
        except Exception:  # noqa: BLE001 - a damaged EXIF block leaves the pixels as stored
            orientation = 1
    if orientation not in range(2, 9):
        return 1
    if plain_png is not None and img.size[0] * img.size[1] <= vipsstream.STREAM_PIXELS:
        return None
    return orientation


def _left_for_rows(img: Image.Image) -> bool:
    """Whether an undecoded image is left for its rows to be read as they are needed (see
    :func:`_row_turn`). A turned one is marked to be turned as it is read, and the orientation
    in the EXIF it carries is reset now (what apply_orientation does for an image it turns)."""
    turn = _row_turn(img)
    if turn is None:
        return False
    if turn != 1 and _TURN not in img.info:
        img.info[_TURN] = turn
        raw = img.info.pop("exif", None)
        patched = reset_orientation(raw) if isinstance(raw, bytes) else None
        if patched is not None:
            img.info["exif"] = patched
    return True


def upright_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) of ``img`` as it is seen: an undecoded file left to be turned as its rows
    are read (``open_image(..., decode=False)``) has its stored size until then."""
    turn = img.info.get(_TURN)
    if turn is None or not getattr(img, "tile", None):
        return img.size
    w, h = stored_size(img)
    return (h, w) if turn in TRANSPOSING else (w, h)


def apply_orientation(img: Image.Image) -> Image.Image:
    """The image as it is meant to be seen: EXIF orientation 2..8 applied to the pixels, and
    the orientation in the kept EXIF reset to 1 so nothing downstream rotates it twice. A large
    file left undecoded to be turned as its rows are read (:func:`open_image`) is left so."""
    turn = img.info.get(_TURN)
    if turn is not None:
        if getattr(img, "tile", None):
            return img
        # decoded meanwhile: turned here (its EXIF is reset), unless Pillow turned it as it loaded
        # it (a TIFF, whose orientation tag Pillow then drops)
        turned = img.format == "TIFF" and ORIENTATION_TAG not in getattr(img, "tag_v2", {})
        upright = img if turned else img.transpose(_TRANSPOSE[turn])
        del upright.info[_TURN]
        return upright
    try:  # Pillow would decode a PNG whole to look for an EXIF block after its image data
        layout = _png_layout(img)
        if layout is not None and _orientation(layout.exif) not in range(2, 9):
            return img
    except (OSError, PngError):
        pass
    try:
        orientation = img.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - a damaged EXIF block must not make the pixels unreadable
        return img
    if orientation in (1, None) or orientation not in range(2, 9):
        return img  # upright already (and no copy of a possibly large image)
    raw_exif = img.info.get("exif")
    upright = ImageOps.exif_transpose(img)
    if isinstance(raw_exif, bytes):
        # Pillow rewrites the EXIF block without the tag; patching the original instead keeps
        # every other tag (maker notes, GPS, ...) byte for byte.
        patched = reset_orientation(raw_exif)
        if patched is not None:
            upright.info["exif"] = patched
    return upright


def reset_orientation(exif: bytes) -> bytes | None:
    """EXIF bytes (TIFF structure, with or without the JPEG ``Exif\\0\\0`` prefix) with the
    orientation of IFD0 set to 1, or None when the block cannot be parsed."""
    prefix = b"Exif\x00\x00" if exif.startswith(b"Exif\x00\x00") else b""
    tiff = bytearray(exif[len(prefix):])
    order = {b"II": "<", b"MM": ">"}.get(bytes(tiff[:2]))
    if order is None or len(tiff) < 8:
        return None
    try:
        (ifd,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        for i in range(count):
            entry = ifd + 2 + 12 * i
            tag, kind, n = struct.unpack_from(order + "HHI", tiff, entry)
            if tag == ORIENTATION_TAG and kind == 3 and n == 1:  # SHORT, stored in the entry
                struct.pack_into(order + "H", tiff, entry + 8, 1)
                return prefix + bytes(tiff)
    except struct.error:
        return None
    return prefix + bytes(tiff)  # no orientation tag: nothing to reset


def has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)


def is_greyscale(img: Image.Image) -> bool:
    return img.mode in ("1", "L", "LA", "I", "F", *SIXTEEN_BIT_MODES)


_BAND_BYTES = 1 << 24  # pixels converted per band: ~16 MB of RGB


def _to_8_bit(img: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit integer or float greyscale image as mode L. 16-bit modes are scaled from
    their full range (:data:`~gancodec.vipsstream.SIXTEEN_BIT_TO_8`, as the rows libvips
    streams are); 32-bit and float ones, whose range the mode does not say, from 65535 when a
    value is above 255, else as they are."""
    if img.mode in SIXTEEN_BIT_MODES:
        return Image.fromarray(SIXTEEN_BIT_TO_8[np.asarray(img).astype(np.uint16, copy=False)])
    arr = np.asarray(img, dtype=np.float64)
    peak = 65535.0 if arr.max() > 255 else 255.0
    return Image.fromarray(np.clip(arr / peak * 255 + 0.5, 0, 255).astype(np.uint8))


def to_rgb_array(img: Image.Image, writable: bool = True) -> np.ndarray:
    """(H, W, 3) uint8. 16-bit and float greyscale are scaled down to 8 bits. See
    :func:`to_rgb_alpha`; ``writable`` is kept for callers of earlier versions: the array is
    always the caller's own."""
    return to_rgb_alpha(img, alpha=False)[0]


def to_rgb_alpha(img: Image.Image, alpha: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W, 3) uint8 colour and, if ``alpha``, the (H, W) uint8 alpha (opaque where the image
    has none), made band by band. An undecoded plain PNG (``open_image(..., decode=False)``) is
    streamed from its file (:mod:`gancodec.pngstream`): the peak is the arrays themselves.
    Otherwise Pillow's decoded image is converted in bands: ``np.asarray`` of a whole Pillow
    image goes through ``tobytes``, which holds the pixels twice beside Pillow's own 4 bytes a
    pixel, and a mode conversion makes a whole converted image first (10 bytes a pixel or more:
    a GB for a 108 MP photo); in bands the peak is Pillow's image plus the arrays."""
    img = apply_orientation(img) if _TURN in img.info else img  # a no-op unless decoded meanwhile
    if img.mode in ("I", "F") or (img.mode in SIXTEEN_BIT_MODES and _row_turn(img) is None):
        img = _to_8_bit(img)
    w, h = upright_size(img)
    rgb = np.empty((h, w, 3), dtype=np.uint8)
    a = np.empty((h, w), dtype=np.uint8) if alpha else None
    r0 = 0
    try:
        for band in _bands(img):
            r1 = r0 + band.height
            rgb[r0:r1] = np.asarray(band if band.mode == "RGB" else band.convert("RGB"), dtype=np.uint8)
            if a is not None:
                a[r0:r1] = np.asarray(band.convert("RGBA").getchannel("A"))
            r0 = r1
    except (PngError, StreamError, TurnError, OSError) as exc:  # OSError: Pillow decoding an undecoded file now
        raise UserError(f"cannot read image {getattr(img, 'filename', '')}: {exc}") from None
    if r0 != h:
        raise UserError(f"cannot read image {getattr(img, 'filename', '')}: {r0} of {h} rows")
    return rgb, a


def _png_rows(img: Image.Image, layout: PngLayout, mode: str, turn: int, band_bytes: int) -> Iterator[np.ndarray]:
    """A plain PNG's rows as uint8 (n, W, len(mode)) arrays in ``mode``, turned upright."""
    channels = len(mode)
    stored = (np.asarray(band if band.mode == mode else band.convert(mode), dtype=np.uint8).reshape(
        band.height, band.width, channels) for band in read_bands(img.filename, layout, band_bytes))
    return upright_bands(stored, (layout.height, layout.width, channels), turn, band_bytes)


def _bands(img: Image.Image) -> Iterator[Image.Image]:
    """``img`` as Pillow images of whole rows (~16 MB each), top to bottom, upright."""
    turn = _row_turn(img)
    layout = _plain_png_layout(img) if turn is not None else None
    if layout is not None:
        if turn == 1:
            yield from read_bands(img.filename, layout)
            return
        mode = "RGBA" if has_alpha(img) or "transparency" in img.info else "RGB"
        for band in _png_rows(img, layout, mode, turn, _BAND_BYTES):
            yield Image.fromarray(band, mode)
        return
    vips_rows = open_rows(img) if turn is not None else None
    if vips_rows is not None:
        yield from vips_rows.pillow_bands(_BAND_BYTES, turn)
        return
    if _TURN in img.info:  # libvips did not open it after all: Pillow decodes and turns it
        img.load()
        img = apply_orientation(img)
    if img.mode in SIXTEEN_BIT_MODES:
        img = _to_8_bit(img)
    w, h = img.size
    rows = max(1, _BAND_BYTES // (3 * w))
    for r0 in range(0, h, rows):
        yield img.crop((0, r0, w, min(h, r0 + rows)))


class StreamedRGB:
    """The colour pixels of an image file, read top to bottom as they are asked for, never
    whole: what a large image's analysis reads instead of an (H, W, 3) array, so that compress
    holds a few bands of rows rather than 3 bytes a pixel of the image. A plain PNG is read by
    :mod:`gancodec.pngstream`, a large JPEG or TIFF by :mod:`gancodec.vipsstream` (:func:`streamed_rgb`).

    :meth:`rows` must be asked with a first row that never goes back up (the analysis's tiles
    move down the image); the bands above it are dropped. A damaged file is found as it is read
    and raises :class:`UserError`."""

    band_bytes = _BAND_BYTES  # raw bytes of the file read at a time

    def __init__(self, filename: str, size: tuple[int, int], bands: Iterator[Image.Image | np.ndarray]) -> None:
        """``bands``: the image's rows top to bottom, as Pillow images or (rows, W, 3) uint8 arrays."""
        self.shape = (size[1], size[0], 3)
        self.filename = filename
        self._bands = bands
        self._held: list[tuple[int, np.ndarray]] = []  # (first row, uint8 rows) not yet passed
        self._read = 0  # rows read from the file so far
        self._first = 0  # rows above it may have been dropped
        self._last: tuple[int, int, np.ndarray] | None = None  # the latest rows asked for

    def rows(self, a0: int, a1: int) -> np.ndarray:
        """Rows a0:a1 (within the image) as uint8 (a1 - a0, W, 3), read-only."""
        if self._last is not None and self._last[:2] == (a0, a1):
            return self._last[2]  # the tiles of one row of tiles ask for the same rows
        if not self._first <= a0 < a1 <= self.shape[0]:
            raise ValueError(f"rows {a0}:{a1} asked for, with rows from {self._first} still held")
        while self._read < a1:
            self._held.append((self._read, self._next_band()))
            self._read += len(self._held[-1][1])
        self._held = [(r, band) for r, band in self._held if r + len(band) > a0]
        self._first = a0
        parts = [band[max(a0 - r, 0) : a1 - r] for r, band in self._held if r < a1]
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        self._last = (a0, a1, out)
        return out

    def _next_band(self) -> np.ndarray:
        try:
            band = next(self._bands)
        except StopIteration:
            raise UserError(f"cannot read image {self.filename}: {self._read} of {self.shape[0]} rows") from None
        except (PngError, StreamError, TurnError) as exc:
            raise UserError(f"cannot read image {self.filename}: {exc}") from None
        if isinstance(band, np.ndarray):
            return band
        arr = np.asarray(band if band.mode == "RGB" else band.convert("RGB"), dtype=np.uint8)
        arr.flags.writeable = False
        return arr

    def close(self) -> None:
        close = getattr(self._bands, "close", None)
        if close is not None:
            close()
        self._held, self._last = [], None


def streamed_rgb(img: Image.Image) -> StreamedRGB | None:
    """``img``'s colour pixels as a :class:`StreamedRGB` when it is undecoded
    (``open_image(..., decode=False)``) and is a plain PNG with no alpha or a large JPEG, TIFF or
    16-bit PNG that libvips opens (turned upright as it is read); else None."""
    if has_alpha(img) or "transparency" in img.info:
        return None
    try:
        turn = _row_turn(img)
        layout = _plain_png_layout(img) if turn is not None else None
    except (OSError, PngError):
        return None  # the whole-image reader says what is wrong with it
    if layout is not None:
        bands = _png_rows(img, layout, "RGB", turn, StreamedRGB.band_bytes)
        return StreamedRGB(str(img.filename), upright_size(img), bands)
    vips_rows = open_rows(img) if turn is not None else None
    if vips_rows is None:
        return None
    return StreamedRGB(vips_rows.filename, upright_size(img), vips_rows.rgb_bands(StreamedRGB.band_bytes, turn))


def load_rgb_array(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    return to_rgb_array(open_image(path, max_pixels, decode=False))


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path next to ``path``, renamed onto it only if the block succeeds."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"output folder does not exist: {parent}")
    if path.is_dir():
        raise UserError(f"output path is a folder: {path}")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=parent)
    except OSError as exc:
        raise UserError(f"cannot write to {parent}: {exc.strerror}") from None
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes 0600 (and some writers recreate the file): set the usual mode last.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_output(path: str | Path, mode: str = "wb") -> Iterator:
    """Open a temp file next to ``path``; rename it into place only if the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode) as fh:
        yield fh


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_output(path) as fh:
        fh.write(data)


_PNG_BAND_ROWS = 1024


def _streams_as_png(array: np.ndarray) -> bool:
    return (isinstance(array, np.ndarray) and array.dtype == np.uint8 and array.size > 0
            and (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 2, 3, 4))))


def output_format(path: str | Path) -> str:
    """Pillow's format name for an output path's suffix; an unknown suffix is a :class:`UserError`."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"unknown image format for output {path} (use .png, .jpg, .webp, ...)")
    return fmt


@contextlib.contextmanager
def row_writer(path: str | Path, width: int, height: int, channels: int, format: str | None = None,
               **params) -> Iterator[Callable[[int, np.ndarray], None]]:
    """An image file made from bands of whole rows: the block calls ``write(first_row, rows)``
    (uint8 (n, width) or (n, width, channels)) top to bottom; the file is written atomically, and
    only if the block succeeds. A PNG is deflated as the rows come (:class:`PngWriter`: the image
    is never whole in memory); other formats are gathered into one array and encoded by Pillow
    at the end. Format from the suffix unless given; ``params`` as for :func:`save_image`."""
    path = Path(path)
    fmt = format or output_format(path)
    if fmt == "PNG" and set(params) <= {"icc_profile", "exif"}:
        from .pngstream import PngWriter

        with atomic_output(path) as fh:
            png = PngWriter(fh, width, height, channels, **params)
            yield lambda _, rows: png.write(rows)
            png.close()
        return
    out = np.empty((height, width, channels), dtype=np.uint8)

    def write(r0: int, rows: np.ndarray) -> None:
        out[r0 : r0 + len(rows)] = rows.reshape(len(rows), width, channels)

    yield write
    _save_with_pillow(path, out[..., 0] if channels == 1 else out, fmt, params)


def save_image(path: str | Path, array: np.ndarray, format: str | None = None, **params) -> None:
    """Save a uint8 (H, W), (H, W, 3) or (H, W, 4) array; format inferred from the suffix."""
    path = Path(path)
    fmt = format or output_format(path)
    if fmt == "PNG" and _streams_as_png(array) and set(params) <= {"icc_profile", "exif"}:
        # our streaming writer: rows are deflated from the array as they come, where Pillow
        # would first copy the whole image (4 bytes a pixel for RGB) beside the caller's array
        h, w = array.shape[:2]
        with row_writer(path, w, h, 1 if array.ndim == 2 else array.shape[2], fmt, **params) as write:
            for r0 in range(0, h, _PNG_BAND_ROWS):
                write(r0, array[r0 : r0 + _PNG_BAND_ROWS])
        return
    _save_with_pillow(path, array, fmt, params)


def _save_with_pillow(path: Path, array: np.ndarray, fmt: str, params: dict) -> None:
    img = Image.fromarray(array)
    if fmt == "JPEG" and img.mode == "RGBA":
        raise UserError("JPEG cannot store transparency: write a .png instead")
    with atomic_output(path) as fh:
        img.save(fh, format=fmt, **params)
