"""Shared fixtures: a tiny, untrained codec exported like a real one (fast, no data needed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TINY_CONFIG = dict(channels=16, latent_channels=16, hyper_channels=16, res_blocks=1)

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from gancodec.models.codec import CodecConfig, HiFiCLite
    from gancodec.zoo.export import export_model

    torch.manual_seed(0)
    model = HiFiCLite(CodecConfig(**TINY_CONFIG))
    model.add_gan_decoder()
    folder = tmp_path_factory.mktemp("zoo") / "tiny"
    export_model(model, folder, name="tiny")
    return folder


@pytest.fixture(scope="session")
def tiny_codec(tiny_model_dir):
    import gancodec

    return gancodec.load_model(str(tiny_model_dir))


@pytest.fixture()
def photo() -> np.ndarray:
    """A natural image that ships with scikit-image (no ../shared needed)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[96:352, 128:384])


@pytest.fixture(scope="session")
def shipped_codec():
    """The codec committed in the package; tests of trained behaviour skip without it."""
    import gancodec

    if "hific-lite" not in gancodec.available_models():
        pytest.skip("shipped hific-lite weights are not in the package")
    return gancodec.load_model("hific-lite")
