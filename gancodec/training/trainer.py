"""The one trainer every capability uses: generator/discriminator pairs in general.

A capability describes itself as a :class:`Task` (its networks, optimisers, one training step,
how to draw samples). The trainer owns everything else: the loop, DistributedDataParallel under
``torchrun`` (gloo on CPU, NCCL on GPU), mixed precision (bf16 autocast + channels_last where
the hardware has bf16 matrix units, :mod:`gancodec.precision`), optional ``torch.compile``, EMA
of the generator, the learning-rate schedule, atomic checkpoints with ``resume``, a CSV loss
log, a progress bar and periodic sample images.

A task's ``train_step`` runs inside the autocast context: it computes its losses on
``.float()`` tensors and leaves the rest to the fp32 islands of the layers it uses.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..errors import UserError
from ..gan.ema import EMA
from ..imageio import atomic_output, save_image
from ..precision import autocast, resolve_precision


# -- distributed helpers ---------------------------------------------------------------------------
def _wants_cuda(device: str) -> bool:
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def init_distributed(device: str = "auto") -> tuple[int, int]:
    """Join the process group when launched by torchrun; return (rank, world_size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if _wants_cuda(device) else "gloo"
        dist.init_process_group(backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, DistributedDataParallel) else module


# -- the task interface ----------------------------------------------------------------------------
class Task:
    """What a capability gives the trainer. Subclasses fill in the four methods."""

    #: name of the network in :meth:`networks` whose weights are averaged (EMA), or None
    ema_network: str | None = None
    #: networks to wrap in DistributedDataParallel (None: every one with trainable weights);
    #: a network that shares weights with another must be left out of one of them
    ddp_networks: tuple[str, ...] | None = None

    def networks(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def optimizers(self, nets: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def train_step(
        self, batch, nets: dict[str, nn.Module], opts: dict[str, torch.optim.Optimizer], step: int
    ) -> dict[str, float]:
        """One optimisation step (backward and ``opt.step()`` included); returns scalars to log."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, batch, nets: dict[str, nn.Module]) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] to write as a progress grid; empty to skip."""
        return torch.empty(0)


@dataclass
class TrainConfig:
    steps: int
    out_dir: Path
    lr_decay_at: float = 0.8  # fraction of steps after which the lr drops ×0.1
    ema_decay: float = 0.999
    checkpoint_every: int = 500
    sample_every: int = 500
    log_every: int = 10
    resume: bool = False
    progress: bool = True
    device: str = "auto"  # "auto": the GPU when there is one, else the CPU
    precision: str = "auto"  # "auto": bf16 where the device has bf16 matrix units, else fp32
    compile: bool = False  # torch.compile the networks (fuses the element-wise work)
    # Wall-clock budget of this invocation in seconds: the run stops (and checkpoints) when it is
    # spent, and the lr decay starts at lr_decay_at of it instead of at lr_decay_at of the steps.
    max_seconds: float | None = None


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` / ``cpu`` / ``cuda`` / ``cuda:N``; under torchrun each rank takes its local GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA GPU is visible to PyTorch")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed crop sizes: pick the fastest kernels once
    return device


class Trainer:
    def __init__(self, task: Task, data: Iterator, config: TrainConfig, metadata: dict | None = None):
        """``metadata`` (e.g. the model config) is stored in every checkpoint."""
        self.task = task
        self.metadata = metadata or {}
        self.data = data
        self.cfg = config
        self.rank, self.world = init_distributed(config.device)
        # Trained weights drift into denormal floats, which cost ~25% of CPU step time.
        torch.set_flush_denormal(True)
        self.out = Path(config.out_dir)
        if is_main_process():
            (self.out / "samples").mkdir(parents=True, exist_ok=True)
        self.device = resolve_device(config.device, int(os.environ.get("LOCAL_RANK", "0")))
        self.precision = resolve_precision(config.precision, self.device)
        self.nets = task.networks()
        for m in self.nets.values():
            m.to(self.device)
            if self.precision == "bf16":
                # oneDNN / cuDNN run bf16 convolutions fastest on NHWC; the weights stay fp32
                m.to(memory_format=torch.channels_last)
        self.opts = task.optimizers(self.nets)
        self.base_lr = {k: [g["lr"] for g in o.param_groups] for k, o in self.opts.items()}
        # Wrapping broadcasts rank 0's weights, so the EMA copy is taken after it; every rank
        # then reads the same checkpoint when resuming.
        self.wrapped = {k: self._wrap(k, m) for k, m in self.nets.items()}
        if config.compile:
            # Compiled wrappers share the parameters; checkpoints and the EMA use the originals.
            self.wrapped = {k: torch.compile(m) for k, m in self.wrapped.items()}
        self.ema = EMA(self.nets[task.ema_network], config.ema_decay) if task.ema_network else None
        self.step = 0
        self._start = time.time()
        self._clock = 0.0  # seconds into the time budget at the current step
        self._log_fields: list[str] | None = None
        if config.resume:
            self._load(self.out / "checkpoint.pt")
        self.sample_batch = next(self.data)[:4].to(self.device) if is_main_process() else None

    def _wrap(self, name: str, module: nn.Module) -> nn.Module:
        if self.world == 1 or not any(p.requires_grad for p in module.parameters()):
            return module
        if self.task.ddp_networks is not None and name not in self.task.ddp_networks:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=True)

    # -- checkpoints -----------------------------------------------------------------------------
    def _state(self) -> dict:
        state = {
            **self.metadata,
            "step": self.step,
            "nets": {k: m.state_dict() for k, m in self.nets.items()},
            "opts": {k: o.state_dict() for k, o in self.opts.items()},
            "torch_rng": torch.get_rng_state(),
            "precision": self.precision,  # of the run so far; a resume may choose another
        }
        if self.ema:
            state["ema"] = self.ema.state_dict()
        rng = getattr(self.data, "rng", None)
        if isinstance(rng, np.random.Generator):
            state["data_rng"] = rng.bit_generator.state
        return state

    def save(self) -> None:
        if not is_main_process():
            return
        with atomic_output(self.out / "checkpoint.pt") as fh:
            torch.save(self._state(), fh)

    def _load(self, path: Path) -> None:
        if not path.exists():
            return  # --resume on a fresh run directory just starts
        state = torch.load(path, map_location="cpu", weights_only=False)
        for k, m in self.nets.items():
            m.load_state_dict(state["nets"][k])
        for k, o in self.opts.items():
            if k in state["opts"]:
                o.load_state_dict(state["opts"][k])
        if self.ema:
            # A checkpoint slimmed to one set of weights has no average: start it from the weights
            # just loaded, not from the random initialisation the shadow was copied from.
            average = state.get("ema") or self.nets[self.task.ema_network].state_dict()
            self.ema.load_state_dict(average)
        torch.set_rng_state(state["torch_rng"])
        rng = getattr(self.data, "rng", None)
        if isinstance(rng, np.random.Generator) and "data_rng" in state and self.world == 1:
            rng.bit_generator.state = state["data_rng"]
        self.step = int(state["step"])

    # -- loop ------------------------------------------------------------------------------------
    def _elapsed(self) -> float:
        """Seconds since the loop started; under DDP every rank gets rank 0's clock, as ranks
        that decided the time budget apart would train with different learning rates (weights
        that drift apart) or stop at different steps (the others wait in an all-reduce forever)."""
        elapsed = time.time() - self._start
        if self.world > 1:
            t = torch.tensor([elapsed], dtype=torch.float64, device=self.device)
            dist.broadcast(t, src=0)
            elapsed = float(t.item())
        return elapsed

    def _set_lr(self) -> None:
        if self.cfg.max_seconds:
            late = self._clock >= self.cfg.lr_decay_at * self.cfg.max_seconds
        else:
            late = self.step >= self.cfg.lr_decay_at * self.cfg.steps
        factor = 0.1 if late else 1.0
        for k, opt in self.opts.items():
            for group, base in zip(opt.param_groups, self.base_lr[k]):
                group["lr"] = base * factor

    def _log(self, row: dict[str, float]) -> None:
        path = self.out / "log.csv"
        new = not path.exists()
        if new:
            self._log_fields = list(row)
        elif self._log_fields is None:
            # The header decides the columns: a row with fewer values leaves cells empty and one
            # with new keys drops them, instead of shifting values under the wrong names.
            with open(path, newline="") as fh:
                self._log_fields = next(csv.reader(fh), None) or list(row)
        with open(path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self._log_fields, restval="", extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)

    def _write_samples(self) -> None:
        nets = dict(self.nets)
        if self.ema:
            nets[self.task.ema_network] = self.ema.shadow
        for m in nets.values():
            m.eval()
        images = self.task.sample(self.sample_batch, nets)
        for m in self.nets.values():
            m.train()
        if images.numel() == 0:
            return
        grid = torch.cat(list(images.detach().float().cpu().clamp(0, 1)), dim=-1)  # one row
        arr = (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        save_image(self.out / "samples" / f"step_{self.step:07d}.png", arr.squeeze())

    def fit(self) -> dict[str, nn.Module]:
        main = is_main_process()
        if main:  # what the run will do, in words: a budget given in the wrong unit shows at once
            budget = f" or {self.cfg.max_seconds / 3600:.2f} h of training" if self.cfg.max_seconds else ""
            print(f"{type(self.task).__name__}: from step {self.step} to {self.cfg.steps}{budget}, "
                  f"checkpoints in {self.cfg.out_dir}", file=sys.stderr, flush=True)
        bar = tqdm(
            total=self.cfg.steps, initial=self.step, disable=not (main and self.cfg.progress),
            dynamic_ncols=True, desc=type(self.task).__name__,
        )
        running: dict[str, float] = {}
        start = self._start = time.time()
        try:
            self._loop(bar, running, start, main)
        except KeyboardInterrupt:
            self.save()  # Ctrl-C keeps the work done so far; --resume continues from here
            raise
        bar.close()
        result = dict(self.nets)
        if self.ema:
            result[self.task.ema_network] = self.ema.shadow
        return result

    def train_step(self) -> dict[str, float]:
        """One step of the loop: learning rate, batch, the task's step, EMA; returns its scalars."""
        if self.cfg.max_seconds:
            # read once per step: under DDP each reading is a broadcast from rank 0
            self._clock = self._elapsed()
        self._set_lr()
        batch = self._to_device(next(self.data))
        with autocast(self.device, self.precision):
            scalars = self.task.train_step(batch, self.wrapped, self.opts, self.step)
        if any(not math.isfinite(v) for v in scalars.values()):
            raise FloatingPointError(f"non-finite loss at step {self.step}: {scalars}")
        if self.ema:
            self.ema.update(self.nets[self.task.ema_network], self.step)
        self.step += 1
        return scalars

    def _to_device(self, batch):
        batch = batch.to(self.device, non_blocking=True)
        if self.precision == "bf16" and isinstance(batch, torch.Tensor) and batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def _loop(self, bar, running: dict[str, float], start: float, main: bool) -> None:
        while self.step < self.cfg.steps:
            scalars = self.train_step()
            for k, v in scalars.items():
                running[k] = running.get(k, 0.0) + v
            bar.update(1)
            if self.step % self.cfg.log_every == 0 or self.step == self.cfg.steps:
                n = self.step % self.cfg.log_every or self.cfg.log_every
                row = {"step": self.step, "seconds": round(time.time() - start, 1)}
                row.update({k: v / n for k, v in running.items()})
                running = {}
                bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k not in ("step", "seconds")})
                if main:
                    self._log(row)
            if main and self.cfg.sample_every and self.step % self.cfg.sample_every == 0:
                self._write_samples()
            out_of_time = bool(self.cfg.max_seconds) and self._clock >= self.cfg.max_seconds
            if self.step % self.cfg.checkpoint_every == 0 or self.step == self.cfg.steps or out_of_time:
                self.save()
            if out_of_time:
                break
