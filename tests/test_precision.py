"""Mixed precision in the shared trainer: every task steps in fp32 and bf16, a run resumes across
precisions, weights and optimiser state stay fp32, and the fp32 islands really are fp32.

bf16 on a CPU without bf16 matrix units is emulated (slow), so the networks here are tiny.
"""

from __future__ import annotations

import math

import pytest
import torch

from gancodec.errors import UserError
from gancodec.layers import GDN
from gancodec.precision import bf16_is_fast, cpu_has_bf16_units, resolve_precision
from gancodec.training.trainer import TrainConfig, Trainer


class Crops:
    """Smooth random crops: enough for a train step, no data folder needed."""

    def __init__(self, crop: int = 32, batch: int = 2):
        self.gen = torch.Generator().manual_seed(0)
        self.crop, self.batch = crop, batch

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        small = torch.rand(self.batch, 3, self.crop // 4, self.crop // 4, generator=self.gen)
        return torch.nn.functional.interpolate(small, size=(self.crop, self.crop), mode="bilinear")


def _codec(stage: str):
    from gancodec.models.codec import CodecConfig, HiFiCLite
    from gancodec.training.codec_task import CodecGANTask, CodecRDTask

    model = HiFiCLite(CodecConfig(channels=8, latent_channels=8, hyper_channels=8, res_blocks=1))
    task = CodecRDTask(model) if stage == "rd" else CodecGANTask(model, disc_width=8, r1_weight=0.1)
    return task, Crops(64)


def _enhance(kind: str, stage: str):
    from gancodec.training.enhance_task import EnhanceConfig, EnhanceTask

    config = EnhanceConfig(kind=kind, scale=4 if kind == "sr" else 1, width=8, blocks=1, growth=8)
    return EnhanceTask(config, stage=stage), Crops(32)


def _inpaint(stage: str):
    from gancodec.models.inpaint import InpaintConfig
    from gancodec.training.inpaint_task import InpaintTask

    task = InpaintTask(InpaintConfig(width=8, blocks=1), stage=stage, disc_width=8, r1_every=1, pool_size=4)
    return task, Crops(64)


def _gan(loss: str):
    from gancodec.generation.data import ImageStream, synthetic_digits
    from gancodec.training.gan_task import GANConfig, GANTask

    images, labels = synthetic_digits(64)
    config = GANConfig(width=8, began=loss == "began")
    return GANTask(config, loss=loss), ImageStream(images, labels, batch_size=4)


TASKS = {
    "codec-rd": lambda: _codec("rd"),
    "codec-gan": lambda: _codec("gan"),
    "restore": lambda: _enhance("restore", "fidelity"),
    "sr-gan": lambda: _enhance("sr", "gan"),
    "inpaint-fidelity": lambda: _inpaint("fidelity"),
    "inpaint-gan": lambda: _inpaint("gan"),
    "gan-hinge": lambda: _gan("hinge"),
    "gan-wgan-gp": lambda: _gan("wgan-gp"),
}


def _trainer(name: str, precision: str, out, steps: int = 2, resume: bool = False) -> Trainer:
    torch.manual_seed(0)
    task, data = TASKS[name]()
    return Trainer(task, data, TrainConfig(steps=steps, out_dir=out, progress=False, sample_every=0,
                                           checkpoint_every=steps, precision=precision, device="cpu",
                                           resume=resume))


@pytest.mark.parametrize("name", list(TASKS))
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_every_task_steps_in_both_precisions(name, precision, tmp_path):
    trainer = _trainer(name, precision, tmp_path)
    for _ in range(2):
        scalars = trainer.train_step()
        assert all(math.isfinite(v) for v in scalars.values()), scalars
    for net in trainer.nets.values():  # fp32 master weights whatever the step ran in
        assert all(p.dtype == torch.float32 for p in net.parameters())
    for opt in trainer.opts.values():
        for state in opt.state.values():
            assert all(v.dtype == torch.float32 for v in state.values() if torch.is_tensor(v) and v.dim())
    if precision == "bf16":
        conv = next(m for n in trainer.nets.values() for m in n.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize(("first", "second"), [("fp32", "bf16"), ("bf16", "fp32")])
def test_resume_across_precisions(first, second, tmp_path):
    _trainer("codec-rd", first, tmp_path, steps=2).fit()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["precision"] == first and state["step"] == 2
    trainer = _trainer("codec-rd", second, tmp_path, steps=4, resume=True)
    assert trainer.step == 2 and trainer.precision == second
    trainer.fit()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["precision"] == second and state["step"] == 4


def test_auto_precision_follows_the_hardware():
    expected = "bf16" if cpu_has_bf16_units() else "fp32"
    assert resolve_precision("auto", torch.device("cpu")) == expected
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(UserError):
        resolve_precision("fp16", torch.device("cpu"))


@pytest.mark.parametrize("capability, fast", [((7, 0), False), ((7, 5), False), ((8, 0), True), ((9, 0), True)])
def test_auto_precision_skips_gpus_that_only_emulate_bf16(monkeypatch, capability, fast):
    # V100 / T4 report bf16 "supported" (emulated), which is slower than fp32: auto must not pick it
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert bf16_is_fast(torch.device("cuda", 0)) is fast


def test_fp32_islands_under_autocast():
    from gancodec.entropy.factorized import FactorizedPrior
    from gancodec.entropy.gaussian import GaussianConditional

    x = torch.randn(1, 4, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        conv_out = torch.nn.Conv2d(4, 4, 1)(x)
        assert conv_out.dtype == torch.bfloat16  # autocast is on ...
        assert GDN(4)(conv_out).dtype == torch.float32  # ... but GDN normalises in fp32
        lik = GaussianConditional()(conv_out, conv_out.abs() + 0.5, conv_out, noise=True)
        assert lik.dtype == torch.float32
        assert FactorizedPrior(4).likelihood(conv_out).dtype == torch.float32


def test_time_budget_stops_and_checkpoints(tmp_path):
    torch.manual_seed(0)
    task, data = TASKS["restore"]()
    trainer = Trainer(task, data, TrainConfig(steps=10**6, out_dir=tmp_path, progress=False, sample_every=0,
                                              checkpoint_every=10**6, device="cpu", max_seconds=1.0))
    trainer.fit()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert 0 < state["step"] < 10**6
