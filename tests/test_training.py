"""The shared trainer: a few real steps of both codec stages, resume, export, and DDP."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gancodec
from gancodec.cli import main

TINY = ["--channels", "16", "--latent-channels", "16", "--hyper-channels", "16", "--res-blocks", "1"]


@pytest.fixture()
def image_folder(tmp_path, photo) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.roll(photo, 40 * i, axis=1)).save(folder / f"img{i}.png")
    Image.fromarray(photo[:40, :50]).save(folder / "small.jpg")  # smaller than the crop: padded
    return folder


def _log_steps(run: Path) -> list[int]:
    with open(run / "log.csv") as fh:
        return [int(r["step"]) for r in csv.DictReader(fh)]


def test_codec_training_both_stages_resume_and_export(tmp_path, image_folder, photo):
    rd = tmp_path / "rd"
    common = ["--data", str(image_folder), "--batch-size", "2", "--crop", "64", "--no-progress",
              "--checkpoint-every", "2", "--sample-every", "2", *TINY]
    assert main(["train", "codec", "--stage", "rd", "--steps", "3", "--out", str(rd), *common]) == 0
    state = torch.load(rd / "checkpoint.pt", weights_only=False)
    assert state["step"] == 3 and state["stage"] == "rd"
    assert main(["train", "codec", "--stage", "rd", "--steps", "5", "--out", str(rd), "--resume", *common]) == 0
    assert torch.load(rd / "checkpoint.pt", weights_only=False)["step"] == 5
    assert list((rd / "samples").glob("step_*.png"))

    gan = tmp_path / "gan"
    multi_scale = ["--disc-scales", "2", "--disc-width", "8", "--disc-lr", "4e-4"]
    assert main(["train", "codec", "--stage", "gan", "--init", str(rd), "--steps", "2", "--out", str(gan),
                 "--r1", "0.1", "--blend-weight", "1", *multi_scale, *common]) == 0
    with open(gan / "log.csv") as fh:
        assert all(float(r["blend_psnr"]) > 0 for r in csv.DictReader(fh))  # the blend term ran
    state = torch.load(gan / "checkpoint.pt", weights_only=False)
    assert set(state["nets"]) == {"codec", "generator", "disc"}
    assert any(k.startswith("scales.1.") for k in state["nets"]["disc"])  # two PatchGANs
    assert main(["train", "codec", "--stage", "gan", "--steps", "3", "--out", str(gan), "--resume",
                 *multi_scale, *common]) == 0
    assert _log_steps(gan)[-1] == 3
    # a new gan run may start its discriminator from this one's (not from an rd run: it has none)
    # ... with a distortion weight that rises from the lowest quality to the highest
    assert main(["train", "codec", "--stage", "gan", "--init", str(gan), "--init-disc", "--steps", "1",
                 "--distortion-weight", "0.1", "1", "--out", str(tmp_path / "gan2"), *multi_scale, *common]) == 0
    assert json.loads((tmp_path / "gan2" / "run.json").read_text())["distortion_weight"] == [0.1, 1.0]
    assert main(["train", "codec", "--stage", "gan", "--init", str(gan), "--steps", "1", "--distortion-weight",
                 "0", "--out", str(tmp_path / "gan4"), *common]) == 2
    assert main(["train", "codec", "--stage", "gan", "--init", str(gan), "--steps", "1", "--distortion-weight",
                 "0.1", "0.2", "1", "--out", str(tmp_path / "gan6"), *common]) == 2
    assert main(["train", "codec", "--stage", "gan", "--init", str(gan), "--steps", "1", "--clip-grad",
                 "0", "--out", str(tmp_path / "gan5"), *common]) == 2
    assert main(["train", "codec", "--stage", "gan", "--init", str(rd), "--init-disc", "--steps", "1",
                 "--out", str(tmp_path / "gan3"), *common]) == 2

    folder = tmp_path / "zoo" / "mine"
    assert main(["train", "export", str(gan), "--out", str(folder), "--name", "mine"]) == 0
    codec = gancodec.load_model(str(folder))
    assert codec.decoders == ["mse", "gan"]
    out = codec.decompress(codec.compress(photo, quality=2), decoder="gan")
    assert out.shape == photo.shape


def test_gan_stage_leaves_bitstream_and_mse_decoder_alone(tmp_path, image_folder):
    from gancodec.training.run import load_codec_checkpoint

    common = ["--data", str(image_folder), "--batch-size", "2", "--crop", "64", "--no-progress", *TINY]
    rd, gan = tmp_path / "rd", tmp_path / "gan"
    main(["train", "codec", "--steps", "2", "--out", str(rd), *common])
    main(["train", "codec", "--stage", "gan", "--init", str(rd), "--steps", "3", "--out", str(gan), *common])
    before, after = load_codec_checkpoint(rd), load_codec_checkpoint(gan)
    for name in ("g_a", "g_s", "h_a", "h_s", "prior"):
        for p, q in zip(getattr(before, name).parameters(), getattr(after, name).parameters()):
            assert torch.equal(p, q), name
    assert any(not torch.equal(p, q) for p, q in zip(before.g_s.parameters(), after.g_s_gan.parameters()))


def test_gan_stage_with_train_encoder_moves_the_bitstream_but_not_the_mse_decoder(tmp_path, image_folder):
    """--train-encoder (HiFiC's joint recipe, the frozen-bitstream ablation): the encoder, gains
    and entropy model learn with a rate term beside the generator; the MSE synthesis does not."""
    from gancodec.training.run import load_codec_checkpoint

    common = ["--data", str(image_folder), "--batch-size", "2", "--crop", "64", "--no-progress", *TINY]
    rd, gan = tmp_path / "rd", tmp_path / "gan"
    main(["train", "codec", "--steps", "2", "--out", str(rd), *common])
    assert main(["train", "codec", "--stage", "gan", "--init", str(rd), "--train-encoder", "--steps", "3",
                 "--out", str(gan), *common]) == 0
    before, after = load_codec_checkpoint(rd), load_codec_checkpoint(gan, ema=False)
    for p, q in zip(before.g_s.parameters(), after.g_s.parameters()):
        assert torch.equal(p, q)
    for name in ("g_a", "h_a", "h_s"):
        assert any(not torch.equal(p, q) for p, q in zip(getattr(before, name).parameters(),
                                                         getattr(after, name).parameters())), name
    assert not torch.equal(before.log_gain, after.log_gain)
    assert "bpp" in (gan / "log.csv").read_text().splitlines()[0]
    assert json.loads((gan / "run.json").read_text())["train_encoder"] is True
    # Resumed as it was trained, or refused; the flag belongs to the gan stage.
    resume = ["train", "codec", "--stage", "gan", "--steps", "4", "--out", str(gan), "--resume", *common]
    assert main(resume) == 2
    assert main([*resume, "--train-encoder"]) == 0 and _log_steps(gan)[-1] == 4
    assert main(["train", "codec", "--train-encoder", "--steps", "1", "--out", str(tmp_path / "x"), *common]) == 2


def test_synthesis_stage_trains_only_the_mse_decoder_resumes_and_exports(tmp_path, image_folder, capsys):
    from gancodec.training.run import load_codec_checkpoint

    common = ["--data", str(image_folder), "--batch-size", "2", "--crop", "64", "--no-progress", *TINY]
    rd, gan, syn = tmp_path / "rd", tmp_path / "gan", tmp_path / "syn"
    main(["train", "codec", "--steps", "2", "--out", str(rd), *common])
    main(["train", "codec", "--stage", "gan", "--init", str(rd), "--steps", "2", "--out", str(gan), *common])
    assert main(["train", "codec", "--stage", "synthesis", "--steps", "2", "--out", str(syn), *common]) == 2
    assert "needs --init" in capsys.readouterr().err
    assert main(["train", "codec", "--stage", "synthesis", "--init", str(gan), "--init-weights", "raw",
                 "--steps", "2", "--out", str(syn), *common]) == 0
    assert main(["train", "codec", "--stage", "synthesis", "--steps", "3", "--out", str(syn), "--resume",
                 *common]) == 0
    assert _log_steps(syn)[-1] == 3
    before, raw, ema = (load_codec_checkpoint(gan, ema=False), load_codec_checkpoint(syn, ema=False),
                        load_codec_checkpoint(syn))
    for (name, p), q in zip(before.named_parameters(), raw.parameters()):
        if not name.startswith("g_s."):  # analysis, gains, entropy model, GAN decoder: the bitstream's
            assert torch.equal(p, q), name
    assert any(not torch.equal(p, q) for p, q in zip(before.g_s.parameters(), raw.g_s.parameters()))
    # the EMA (of the synthesis alone) lands on g_s and leaves the GAN decoder as it was
    assert any(not torch.equal(p, q) for p, q in zip(raw.g_s.parameters(), ema.g_s.parameters()))
    for p, q in zip(before.g_s_gan.parameters(), ema.g_s_gan.parameters()):
        assert torch.equal(p, q)
    out = tmp_path / "export"
    assert main(["train", "export", str(syn), "--out", str(out), "--name", "tiny"]) == 0
    rgb = np.asarray(Image.open(image_folder / "img0.png"))
    codec = gancodec.load_model(str(out))
    assert codec.decompress(codec.compress(rgb, quality=1)).shape == rgb.shape


def test_missing_data_is_a_user_error(tmp_path, capsys):
    assert main(["train", "codec", "--data", str(tmp_path / "nope"), "--steps", "1", "--out", str(tmp_path / "r")]) == 2
    assert "not found" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
                    reason="torchrun not available")
def test_ddp_two_processes_end_with_identical_weights(tmp_path, image_folder):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    worker = Path(__file__).with_name("ddp_worker.py")
    result = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", str(worker), str(image_folder), str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for stage in ("rd", "gan"):
        w0 = torch.load(tmp_path / f"{stage}_rank0.pt")
        w1 = torch.load(tmp_path / f"{stage}_rank1.pt")
        assert w0.keys() == w1.keys()
        for k in w0:
            assert torch.equal(w0[k], w1[k]), (stage, k)
        # the ranks saw different data, so equality comes from gradient averaging, not luck
        batches = [torch.load(tmp_path / f"{stage}_batch_rank{r}.pt") for r in (0, 1)]
        assert batches[0].ne(batches[1]).any()
    # a time budget ends the run at the same step on every rank (rank 0's clock decides)
    steps = [torch.load(tmp_path / f"budget_steps_rank{r}.pt") for r in (0, 1)]
    assert steps[0] == steps[1] < 10**6


def test_discriminator_normalises_hidden_layers_not_the_head():
    """Spectral norm bounds every hidden convolution (σ_max ≈ 1); the logit head is free, so the
    discriminator's output is not capped by the real–fake distance."""
    from torch.nn.utils import parametrize

    from gancodec.gan.discriminators import PatchDiscriminator

    disc = PatchDiscriminator(cond_channels=4, width=8, layers=3)
    disc(torch.rand(1, 3, 64, 64), torch.rand(1, 4, 8, 8))  # one power iteration per call
    for block in disc.blocks:
        conv = block[0]
        assert parametrize.is_parametrized(conv, "weight")
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert 0.5 < sigma.item() < 1.05
    assert not parametrize.is_parametrized(disc.head, "weight")
    assert parametrize.is_parametrized(PatchDiscriminator(normalize_head=True).head, "weight")


def test_multi_scale_discriminator_judges_each_scale():
    """pix2pixHD's multi-scale D: scale k sees the image pooled 2^k times; losses are averaged
    over scales (their logit maps differ in size), features concatenated for feature matching."""
    from functools import partial

    from gancodec.gan import losses
    from gancodec.gan.discriminators import MultiScaleDiscriminator

    torch.manual_seed(0)
    disc = MultiScaleDiscriminator(3, cond_channels=4, width=8, layers=3, last_stride=2).eval()  # SN fixed
    x, cond = torch.rand(2, 3, 64, 64), torch.rand(2, 4, 4, 4)
    logits, feats = disc(x, cond)
    assert [t.shape[-1] for t in logits] == [7, 3, 1] and len(feats) == 9
    pooled = torch.nn.functional.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
    assert torch.equal(logits[1], disc.scales[1](pooled, cond)[0])
    d = losses.per_scale(partial(losses.d_loss, "hinge"), logits, [t - 1 for t in logits])
    by_hand = sum(losses.d_loss("hinge", t, t - 1) for t in logits) / 3
    assert torch.allclose(d, by_hand)
    assert torch.equal(losses.per_scale(partial(losses.g_loss, "ns"), logits[0]), losses.g_loss("ns", logits[0]))


def test_multi_scale_discriminator_starts_from_a_single_scale_run(tmp_path):
    from gancodec.gan.discriminators import MultiScaleDiscriminator, PatchDiscriminator
    from gancodec.training.run import _init_discriminator

    kwargs = {"cond_channels": 4, "width": 8, "layers": 3, "last_stride": 2}
    single = PatchDiscriminator(**kwargs)
    torch.save({"stage": "gan", "nets": {"disc": single.state_dict()}}, tmp_path / "checkpoint.pt")
    multi = MultiScaleDiscriminator(2, **kwargs)
    _init_discriminator(multi, tmp_path)
    for scale in multi.scales:
        for a, b in zip(scale.state_dict().values(), single.state_dict().values()):
            assert torch.equal(a, b)


def test_resume_from_a_checkpoint_without_average_starts_the_ema_from_its_weights(tmp_path, image_folder):
    """A slim checkpoint (weights, no optimiser, no EMA) must not leave the random-init shadow in the average."""
    from gancodec.models.codec import CodecConfig, HiFiCLite
    from gancodec.training.codec_task import CodecRDTask
    from gancodec.training.data import RandomCrops
    from gancodec.training.trainer import TrainConfig, Trainer

    run = tmp_path / "rd"
    common = ["--data", str(image_folder), "--batch-size", "2", "--crop", "64", "--no-progress", *TINY]
    assert main(["train", "codec", "--steps", "2", "--out", str(run), *common]) == 0
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    state["nets"]["codec"] = state.pop("ema")
    state["opts"] = {}
    torch.save(state, run / "checkpoint.pt")

    torch.manual_seed(123)  # a different random initialisation from the one trained
    model = HiFiCLite(CodecConfig.from_dict(state["config"]))
    trainer = Trainer(CodecRDTask(model), RandomCrops([image_folder], crop=64, batch_size=2),
                      TrainConfig(steps=4, out_dir=run, resume=True, progress=False, device="cpu"))
    loaded = state["nets"]["codec"]
    for k, v in trainer.ema.state_dict().items():
        assert torch.equal(v, loaded[k]), k


def test_gan_stage_bounds_the_generators_gradient_norm_and_logs_it_before_the_bound():
    from gancodec.models.codec import CodecConfig, HiFiCLite
    from gancodec.training.codec_task import CodecGANTask

    torch.manual_seed(0)
    model = HiFiCLite(CodecConfig(channels=8, latent_channels=8, hyper_channels=8, res_blocks=1))
    batch = torch.rand(2, 3, 64, 64)
    norms = {}
    for bound in (None, 1e-3):
        task = CodecGANTask(model, disc_width=8, clip_grad=bound)
        nets = task.networks()
        torch.manual_seed(1)
        metrics = task.train_step(batch, nets, task.optimizers(nets), 0)
        grads = [p.grad for p in nets["generator"].parameters() if p.grad is not None]
        norms[bound] = (metrics["g_grad_norm"], torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))
    logged, applied = norms[None]
    assert logged == pytest.approx(applied.item(), rel=1e-4) and logged > 1e-3  # measured, left alone
    logged, applied = norms[1e-3]
    assert logged > 1e-3 and applied.item() == pytest.approx(1e-3, rel=1e-3)  # logged before the bound
    with pytest.raises(ValueError):
        CodecGANTask(model, clip_grad=0.0)


def test_distortion_weight_pair_is_interpolated_over_the_qualities():
    from gancodec.training.codec_task import CodecGANTask, build_codec, lambda_for_quality

    model = build_codec()
    weights = CodecGANTask(model, distortion_weight=(0.1, 1.0)).distortion_weights
    assert len(weights) == model.config.levels and weights[0] == pytest.approx(0.1) and weights[-1] == 1.0
    mid = lambda_for_quality(weights, torch.tensor([1.0, 3.5, 6.0]))
    assert mid[0] == pytest.approx(0.1) and mid[1] == pytest.approx(0.1**0.5) and mid[2] == pytest.approx(1.0)
    assert CodecGANTask(build_codec(), distortion_weight=0.3).distortion_weights == [0.3] * model.config.levels
    # ... or one value per quality level, taken as given; any other count is refused
    own = (0.1, 0.25, 0.25, 0.4, 0.63, 1.0)
    assert CodecGANTask(build_codec(), distortion_weight=own).distortion_weights == list(own)
    with pytest.raises(ValueError):
        CodecGANTask(build_codec(), distortion_weight=(0.1, 0.2, 1.0))
