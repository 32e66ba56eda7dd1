"""Encoder-side latent refinement (gancodec.refine): fewer bits or better pixels, same decoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gancodec import refine
from gancodec.bitstream import Container
from gancodec.entropy.gaussian import GaussianConditional
from gancodec.errors import UserError
from gancodec.models.codec import lambda_for_quality


def rd_cost(codec, rgb: np.ndarray, data: bytes, quality: float) -> float:
    """The training loss of a real file: bpp + λ(q)·255²·MSE, from its size and decoded pixels."""
    out = codec.decompress(data).astype(np.float64)
    mse = np.mean((out / 255 - rgb / 255) ** 2)
    lam = float(lambda_for_quality(codec.config.lambdas, torch.tensor([quality], dtype=torch.float64)))
    return 8 * len(data) / (rgb.shape[0] * rgb.shape[1]) + lam * 255**2 * mse


def test_sga_rounding_lies_between_the_neighbouring_integers_and_becomes_rounding_as_it_cools():
    v = torch.linspace(-3.3, 3.3, 1001)
    for temperature in (0.5, 0.1):
        soft = refine.sga_round(v, temperature, torch.Generator().manual_seed(0))
        assert torch.all(soft >= torch.floor(v)) and torch.all(soft <= torch.floor(v) + 1)
    cold = refine.sga_round(v, 1e-3, torch.Generator().manual_seed(0))
    away = (v - torch.round(v)).abs() < 0.45  # not at a tie, where the choice stays random
    assert torch.allclose(cold[away], torch.round(v)[away], atol=1e-3)
    again = refine.sga_round(v, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(again, refine.sga_round(v, 0.3, torch.Generator().manual_seed(0)))


def test_the_bits_it_minimises_are_the_entropy_models_bits():
    torch.manual_seed(0)
    values = torch.round(torch.randn(1, 4, 6, 6) * 3)
    scales = torch.rand(1, 4, 6, 6) * 5 + 0.05
    means = torch.randn(1, 4, 6, 6)
    likelihood = GaussianConditional()(values + means, scales, means, noise=False)
    assert torch.allclose(refine.gaussian_bits(values, scales), -torch.log2(likelihood).sum(), rtol=1e-5)


def test_refinement_lowers_the_real_rate_distortion_cost_and_the_file_decodes_as_any_other(shipped_codec, photo):
    codec = shipped_codec
    rgb = photo[:128, :192]
    first = None
    for quality in (1, 4):
        plain = codec.compress(rgb, quality=quality)
        refined = codec.compress(rgb, quality=quality, refine=20)
        first = first or refined
        assert rd_cost(codec, rgb, refined, quality) < rd_cost(codec, rgb, plain, quality)
        header = Container.from_bytes(refined).header
        assert (header.model, header.weights_hash, header.quality_milli) == (
            Container.from_bytes(plain).header.model, codec.weights_hash, quality * 1000)
        for decoder in codec.decoders:
            assert codec.decompress(refined, decoder=decoder).shape == rgb.shape
    # seeded: one machine writes the same bytes every time
    assert codec.compress(rgb, quality=1, refine=20) == first


def test_refinement_in_several_tiles_with_context_around_them(shipped_codec, photo, monkeypatch):
    codec = shipped_codec
    rgb = photo[:200, :250]  # not a multiple of 64: the padding's pixels must not count
    monkeypatch.setattr(refine, "TILE", 8)
    monkeypatch.setattr(refine, "MARGIN", 2)
    assert len(refine._tiles(*codec.analyse(rgb).shape[-2:])) == 4
    plain = codec.compress(rgb, quality=2)
    refined = codec.compress(rgb, quality=2, refine=10)
    assert rd_cost(codec, rgb, refined, 2) < rd_cost(codec, rgb, plain, 2)


def test_refinement_with_a_target_bpp_stays_near_the_target(shipped_codec, photo):
    codec = shipped_codec
    photo = photo[:128, :128]
    target = 0.4
    plain = codec.compress(photo, target_bpp=target)
    refined = codec.compress(photo, target_bpp=target, refine=10)
    pixels = photo.shape[0] * photo.shape[1]
    miss = abs(8 * len(refined) / pixels - target)
    assert miss <= max(0.02, 1.5 * abs(8 * len(plain) / pixels - target))
    assert codec.decompress(refined).shape == photo.shape


def test_refinement_leaves_grey_and_alpha_images_as_they_were_coded(tiny_codec, photo):
    photo = photo[:64, :64]
    grey = photo[..., 0]
    out = tiny_codec.decompress(tiny_codec.compress(grey, quality=2, refine=3))
    assert out.shape == grey.shape
    rgba = np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)])
    out = tiny_codec.decompress(tiny_codec.compress(rgba, quality=2, refine=3))
    assert out.shape == rgba.shape and np.all(out[..., 3] == 200)


@pytest.mark.parametrize("steps", [-1, 1.5, True, refine.MAX_STEPS + 1, "10"])
def test_a_bad_number_of_steps_is_refused(tiny_codec, photo, steps):
    with pytest.raises(UserError, match="refinement steps"):
        tiny_codec.compress(photo, quality=2, refine=steps)


def test_images_above_the_in_memory_size_are_refused_with_refinement_not_without(tiny_codec, photo, monkeypatch):
    import gancodec.codec

    monkeypatch.setattr(gancodec.codec, "LARGE_IMAGE_PIXELS", photo.shape[0] * photo.shape[1] - 1)
    with pytest.raises(UserError, match="megapixels"):
        tiny_codec.compress(photo, quality=2, refine=2)
    small = photo[:64, :64]
    assert tiny_codec.decompress(tiny_codec.compress(small, quality=2, refine=2)).shape == small.shape
