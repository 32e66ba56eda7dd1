"""The on-disk array under the codec's latent file and the turning of photos stored turned."""

from __future__ import annotations

import numpy as np
import pytest

from gancodec.diskarray import DiskArray
from gancodec.orientation import TurnError, upright_bands


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_blocks_read_back_as_written(dtype):
    rng = np.random.default_rng(0)
    full = (rng.random((37, 29, 5)) * 255).astype(dtype)
    with DiskArray(full.shape, dtype) as store:
        store.write(0, 0, full[:10])  # whole rows: one write
        for r0, c0 in ((10, 0), (10, 13), (24, 0), (24, 13)):  # blocks of part rows
            store.write(r0, c0, full[r0 : r0 + 14, c0 : c0 + 16])
        assert np.array_equal(store.read(0, 37, 0, 29), full)
        assert np.array_equal(store.read(3, 20, 7, 11), full[3:20, 7:11])
        assert store.read(5, 5, 0, 29).shape == (0, 29, 5)
        with pytest.raises(ValueError, match="outside"):
            store.read(30, 38, 0, 29)
        with pytest.raises(ValueError, match="outside"):
            store.write(0, 20, full[:2, :10])


def test_what_was_never_written_reads_as_zeros():
    with DiskArray((8, 4, 3)) as store:
        store.write(2, 1, np.full((2, 2, 3), 7, np.uint8))
        out = store.read(0, 8, 0, 4)
    assert out[2:4, 1:3].min() == 7 and out.sum() == 7 * 12


@pytest.mark.parametrize("orientation", range(0, 10))
def test_upright_bands_turn_as_exif_says(orientation):
    """Bands of stored rows in, bands of upright rows out, for every orientation (0 and 9:
    not one of EXIF's, taken as upright), as numpy turns the whole image."""
    from gancodec.orientation import turn

    stored = np.arange(13 * 7 * 2, dtype=np.uint8).reshape(13, 7, 2)
    bands = (stored[r : r + 4] for r in range(0, 13, 4))
    out = np.concatenate(list(upright_bands(bands, stored.shape, orientation, band_bytes=3 * 2 * 13)))
    assert np.array_equal(out, turn(stored, orientation))


def test_no_room_for_the_turning_file_is_a_turn_error(monkeypatch):
    def full(self, r0, c0, block):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(DiskArray, "write", full)
    with pytest.raises(TurnError, match="temporary disk space .*No space left"):
        list(upright_bands(iter([np.zeros((2, 3, 1), np.uint8)]), (2, 3, 1), 6, 100))
