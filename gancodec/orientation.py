"""EXIF orientation applied to an image read in bands of rows, never whole.

A photo whose EXIF orientation says it is stored turned (a phone held upright) cannot be read
upright top to bottom: its first upright row may be the file's last column. The stored bands
are turned into a temporary file (:class:`~gancodec.diskarray.DiskArray`), each where it lands,
and read back upright a band at a time, so memory stays a few bands; the disk holds the image
(1 byte a pixel per channel) for the command's duration. Pixels are those of Pillow's
``ImageOps.exif_transpose``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator

import numpy as np

from .diskarray import DiskArray

TRANSPOSING = (5, 6, 7, 8)  # EXIF orientations that swap width and height


class TurnError(Exception):
    """The temporary file that turning an image needs could not be written (no room, most likely)."""


def turn(rows: np.ndarray, orientation: int) -> np.ndarray:
    """``rows`` (n, W, C) turned as EXIF ``orientation`` (1..8) says, a view: Pillow's
    ``ImageOps.exif_transpose`` of them as an image of their own."""
    if orientation == 2:
        return rows[:, ::-1]  # mirrored
    if orientation == 3:
        return rows[::-1, ::-1]  # upside down
    if orientation == 4:
        return rows[::-1]  # mirrored vertically
    if orientation == 5:
        return rows.transpose(1, 0, 2)  # mirrored about the diagonal
    if orientation == 6:
        return np.rot90(rows, -1)  # stored turned left: a quarter turn clockwise
    if orientation == 7:
        return rows[::-1, ::-1].transpose(1, 0, 2)  # mirrored about the other diagonal
    if orientation == 8:
        return np.rot90(rows, 1)  # stored turned right: a quarter turn anticlockwise
    return rows


def upright_bands(bands: Iterable[np.ndarray], shape: tuple[int, int, int], orientation: int,
                  band_bytes: int) -> Iterator[np.ndarray]:
    """The image whose stored rows ``bands`` gives top to bottom (uint8 (n, W, C) arrays,
    ``shape`` (H, W, C) in all), turned upright as EXIF ``orientation`` says, as bands
    of about ``band_bytes``. Upright already (1, or not 1..8): ``bands`` as they come. A stored
    band is a band of upright rows (2–4, placed from the bottom for 3 and 4) or of upright
    columns (5–8); each is written where it lands, then the upright rows are read back."""
    if orientation not in range(2, 9):
        yield from bands
        return
    h, w, c = shape
    transposed, from_bottom = orientation in TRANSPOSING, orientation in (3, 4, 6, 7)
    uh, uw = (w, h) if transposed else (h, w)
    try:
        with DiskArray((uh, uw, c), np.uint8) as store:
            r0 = 0
            for band in bands:
                n = len(band)
                start = h - r0 - n if from_bottom else r0
                if transposed:
                    store.write(0, start, turn(band, orientation))
                else:
                    store.write(start, 0, turn(band, orientation))
                r0 += n
            if r0 != h:  # unwritten rows would read back as zeros
                raise TurnError(f"the image ended after {r0} of {h} rows")
            step = max(1, band_bytes // (uw * c))
            for a0 in range(0, uh, step):
                yield store.read(a0, min(a0 + step, uh), 0, uw)
    except OSError as exc:  # no room on the temporary disk, most likely
        raise TurnError(f"turning the image upright needs {h * w * c / 1e6:.0f} MB of temporary disk space "
                        f"({tempfile.gettempdir()}): {exc.strerror or exc}") from None
