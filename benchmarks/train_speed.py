"""Seconds per training step of every task, fp32 against bf16 (and torch.compile), one run.

    python benchmarks/train_speed.py [--tasks codec-rd codec-gan restore sr-x4 sr-x2 inpaint gan]
        [--variants fp32 bf16 fp32+compile bf16+compile] [--steps 12] [--warmup 3] [--threads 2]
        [--data ../shared/data/bsds500/train] [--device cpu] [--json out.jsonl]

Each task is built at its shipped batch and crop and stepped by the real :class:`Trainer`
(learning rate, autocast, channels_last, EMA: everything a run does except checkpoints and
samples); the median of ``--steps`` timed steps is reported after ``--warmup`` untimed ones
(compilation happens there). ``bf16`` on a CPU without bf16 matrix units (AMX / AVX-512-BF16)
is emulated by PyTorch and measured anyway: the table says which the machine has. Ratios are
against fp32 of the same task in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch


def _codec_rd():
    from gancodec.models.codec import HiFiCLite
    from gancodec.training.codec_task import CodecRDTask

    return CodecRDTask(HiFiCLite(), lr=1e-4), 256, 4


def _codec_gan():
    from gancodec.models.codec import HiFiCLite
    from gancodec.training.codec_task import CodecGANTask

    return CodecGANTask(HiFiCLite(), lr=1e-4, beta=1.0), 256, 4


def _enhance(kind: str, scale: int, width: int, blocks: int, crop: int, stage: str = "fidelity"):
    from gancodec.training.enhance_task import EnhanceConfig, EnhanceTask

    config = EnhanceConfig(kind=kind, scale=scale, width=width, blocks=blocks)
    return EnhanceTask(config, stage=stage), crop, 8


def _inpaint():
    from gancodec.models.inpaint import InpaintConfig
    from gancodec.training.inpaint_task import InpaintTask

    return InpaintTask(InpaintConfig(), stage="fidelity"), 256, 8  # inpaint-lite's network


def _gan():
    """The MNIST DCGAN of the study and the shipped models (LSGAN, SN, width 32, batch 64)."""
    from gancodec.generation.data import ImageStream, synthetic_digits
    from gancodec.training.gan_task import GANConfig, GANTask

    images, labels = synthetic_digits(1024)
    return GANTask(GANConfig(width=32), loss="lsgan"), 28, 64, ImageStream(images, None, batch_size=64)


TASKS = {
    "codec-rd": _codec_rd,
    "codec-gan": _codec_gan,
    "restore": lambda: _enhance("restore", 1, 32, 1, 96),
    "sr-x4": lambda: _enhance("sr", 4, 32, 2, 128),
    "sr-x2": lambda: _enhance("sr", 2, 32, 2, 64),
    "inpaint": _inpaint,
    "gan": _gan,
}


class SyntheticCrops:
    """Smooth random images when no data folder is given (the step cost is the same)."""

    def __init__(self, crop: int, batch: int, seed: int = 0):
        self.crop, self.batch = crop, batch
        self.gen = torch.Generator().manual_seed(seed)

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        small = torch.rand(self.batch, 3, self.crop // 8, self.crop // 8, generator=self.gen)
        return torch.nn.functional.interpolate(small, size=(self.crop, self.crop), mode="bilinear")


def measure(name: str, variant: str, args) -> dict:
    from gancodec.training.data import RandomCrops
    from gancodec.training.trainer import TrainConfig, Trainer

    torch.manual_seed(0)
    built = TASKS[name]()
    task, crop, batch = built[:3]
    data = built[3] if len(built) > 3 else (
        RandomCrops([args.data], crop=crop, batch_size=batch, seed=0) if args.data else SyntheticCrops(crop, batch)
    )
    precision = variant.split("+")[0]
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(task, data, TrainConfig(
            steps=10**9, out_dir=Path(tmp), progress=False, checkpoint_every=10**9, sample_every=0,
            device=args.device, precision=precision, compile="compile" in variant,
        ))
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            trainer.train_step()
        warmup = time.perf_counter() - t0
        times = []
        for _ in range(args.steps):
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            trainer.train_step()
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
    return {"task": name, "variant": variant, "batch": batch, "crop": crop,
            "s_per_step": round(statistics.median(times), 4), "warmup_s": round(warmup, 1),
            "precision": trainer.precision}


def main() -> None:
    from gancodec.precision import cpu_has_bf16_units

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--variants", nargs="+", default=["fp32", "bf16", "fp32+compile", "bf16+compile"])
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", default="../shared/data/bsds500/train", help="'' for synthetic crops")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="append the rows here as JSON lines")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    if args.data and not Path(args.data).is_dir():
        args.data = ""
    machine = {"cpu_bf16_units": cpu_has_bf16_units(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
               "torch": torch.__version__, "threads": args.threads, "device": args.device}
    if args.device.startswith("cuda"):
        machine["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(machine))
    rows = []
    for name in args.tasks:
        base = None
        for variant in args.variants:
            try:
                row = measure(name, variant, args)
            except (ImportError, AttributeError) as exc:
                print(json.dumps({"task": name, "skipped": str(exc)}))
                break
            base = base or row["s_per_step"]
            row["speedup_vs_fp32"] = round(base / row["s_per_step"], 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                with open(args.json, "a") as fh:
                    fh.write(json.dumps(machine | row) + "\n")
    print("\n| task | batch × crop | " + " | ".join(args.variants) + " |")
    print("|---|---|" + "---|" * len(args.variants))
    for name in args.tasks:
        mine = {r["variant"]: r for r in rows if r["task"] == name}
        if mine:
            first = next(iter(mine.values()))
            cells = [f"{mine[v]['s_per_step']:.3f} s ({mine[v]['speedup_vs_fp32']:.2f}×)" if v in mine else "–"
                     for v in args.variants]
            print(f"| {name} | {first['batch']} × {first['crop']}² | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
