"""Runtime of restoration and super-resolution models: load, blend, run tiled.

A model folder holds ``config.json`` and one or two weight files: ``fidelity.safetensors``
(L1-trained) and ``gan.safetensors`` (GAN-finetuned from it). ``realism`` in [0, 1] interpolates
their weights (ESRGAN's network interpolation), a continuous dial between faithful and crisp.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .errors import UserError
from .imageio import atomic_output, atomic_path
from .models.unet import TASKS
from .tiling import run_tiled
from .training.enhance_task import EnhanceConfig

STAGES = ("fidelity", "gan")


class Enhancer:
    tile = 256  # input pixels per tile side

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        meta = json.loads((self.folder / "config.json").read_text())
        self.name = meta.get("name", self.folder.name)
        self.config = EnhanceConfig.from_dict(meta["enhance_config"])
        self.weights = {
            s: load_file(str(self.folder / f"{s}.safetensors"))
            for s in STAGES if (self.folder / f"{s}.safetensors").is_file()
        }
        if "fidelity" not in self.weights:
            raise UserError(f"model folder {self.folder} has no fidelity.safetensors")
        self.net = self.config.build().eval().requires_grad_(False)
        self._realism: float | None = None

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def margin(self) -> int:
        """Input pixels of context per tile side, covering the receptive field (about 48 px for
        the 3-level U-Net, 35 px for two RRDBs) with room to spare."""
        return 64 if self.kind == "restore" else 48

    def set_realism(self, realism: float) -> None:
        if not 0 <= realism <= 1:
            raise UserError(f"realism must be in 0..1, got {realism}")
        if realism > 0 and "gan" not in self.weights:
            raise UserError(f"model {self.name} has no GAN weights: use --realism 0")
        if realism == self._realism:
            return
        fid = self.weights["fidelity"]
        gan = self.weights.get("gan", fid)
        state = {k: (1 - realism) * fid[k].float() + realism * gan[k].float() for k in fid}
        self.net.load_state_dict(state)
        self._realism = realism

    @torch.no_grad()
    def run(self, rgb: np.ndarray, realism: float = 0.0, task: str = "auto", strength: float = 1.0) -> np.ndarray:
        """Restore (kind ``restore``) or upscale (kind ``sr``) a uint8 RGB image."""
        self.set_realism(realism)
        if min(rgb.shape[:2]) < 2:
            raise UserError(f"image is {rgb.shape[1]}×{rgb.shape[0]}: at least 2×2 pixels are needed")
        x = torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).permute(2, 0, 1)[None].float().div_(255)
        if self.kind == "restore":
            if task not in TASKS:
                raise UserError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
            if not 0 <= strength <= 2:
                raise UserError(f"strength must be in 0..2, got {strength}")
            y = run_tiled(lambda t: self.net(t, task, strength), x, 1, self.tile, self.margin)
        else:
            y = run_tiled(self.net, x, self.config.scale, self.tile, self.margin)
        return (y[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def export_enhance(run: Path, out: Path, name: str) -> Path:
    """Write a run's EMA generator as ``{stage}.safetensors`` into a model folder (+ config)."""
    ckpt = run / "checkpoint.pt" if run.is_dir() else run
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    config = EnhanceConfig.from_dict(state["config"])
    stage = state["stage"]
    weights = state.get("ema") or state["nets"]["generator"]
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "config.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta["enhance_config"] != config.to_dict():
            raise UserError(f"{out} holds a model with another configuration")
    meta = {"name": name, "kind": config.kind, "enhance_config": config.to_dict()}
    with atomic_path(out / f"{stage}.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp))
    with atomic_output(meta_path, "w") as fh:
        fh.write(json.dumps(meta, indent=2) + "\n")
    return out / f"{stage}.safetensors"
