"""Mixed precision for training: which precision a device runs fast, and fp32 islands.

Training runs the networks' convolutions in bfloat16 under ``torch.autocast`` where the
hardware has bf16 matrix units (AMX or AVX-512-BF16 on a CPU, any recent CUDA GPU): the
weights, the optimiser state, the EMA and the losses stay in float32. Some computations lose
too much in bf16's 8-bit mantissa and run as *fp32 islands* (:func:`fp32`): GDN's
normalisation (a sum of squares under a square root), the entropy models' likelihoods (the
rate is −log2 of a difference of two CDFs, which bf16 rounds to zero), FFTs, gradient penalties.

On a CPU without bf16 units, PyTorch emulates bf16 and it is *slower* than fp32, which is why
``auto`` checks the instruction set instead of assuming.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch

from .errors import UserError

PRECISIONS = ("auto", "fp32", "bf16")
F = TypeVar("F", bound=Callable)


def cpu_has_bf16_units() -> bool:
    """True when this CPU multiplies bf16 matrices in hardware (AMX tiles or AVX-512-BF16)."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def bf16_is_fast(device: torch.device) -> bool:
    """True where ``device`` multiplies bf16 matrices in hardware (so bf16 training is faster)."""
    if device.type == "cuda":
        # Not torch.cuda.is_bf16_supported(): by default it is also True where bf16 is only
        # emulated (compute capability < 8.0: V100, T4), slower than fp32 and without cuDNN bf16
        # convolutions. Every ROCm GPU has bf16 units.
        if torch.version.hip:
            return True
        return torch.cuda.is_available() and torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "cpu":
        return cpu_has_bf16_units()
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` → ``bf16`` where the device has bf16 matrix units, else ``fp32``."""
    if name not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, not {name!r}")
    if name == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    return name


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context of a training step (a no-op for fp32)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def fp32_region(device_type: str) -> Iterator[None]:
    """Inside: autocast is off, so operations run in the dtype of their (float32) inputs."""
    with torch.autocast(device_type, enabled=False):
        yield


def fp32(fn: F) -> F:
    """Decorator: run ``fn`` as an fp32 island, its floating tensor arguments cast to float32.

    Costs nothing outside autocast (the casts are no-ops on float32 tensors)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not torch.is_autocast_enabled("cpu") and not torch.is_autocast_enabled("cuda"):
            return fn(*args, **kwargs)

        def up(v):
            return v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v

        device_type = next((a.device.type for a in args if isinstance(a, torch.Tensor)), "cpu")
        with fp32_region(device_type):
            return fn(*(up(a) for a in args), **{k: up(v) for k, v in kwargs.items()})

    return wrapper  # type: ignore[return-value]
