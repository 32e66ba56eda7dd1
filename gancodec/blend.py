"""Model folders whose network blends a fidelity and a GAN weight set by ``realism``.

A folder holds ``config.json`` and ``fidelity.safetensors`` (L1-trained), optionally
``gan.safetensors`` (GAN-finetuned from it). ``realism`` in [0, 1] interpolates the two weight
sets (ESRGAN's network interpolation): a continuous dial between faithful and crisp. Restoration,
super-resolution (:mod:`.enhance`) and inpainting (:mod:`.inpainting`) share this runtime.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .errors import UserError
from .imageio import atomic_output, atomic_path

STAGES = ("fidelity", "gan")


class BlendedModel:
    """Loads a blend model folder; subclasses say how ``config.json`` becomes a config.

    After ``__init__``: ``folder``, ``name``, ``config`` (anything with ``build() -> nn.Module``),
    ``weights`` ({stage: state dict}, ``fidelity`` always present) and ``net`` (eval, no grad).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        meta = json.loads((self.folder / "config.json").read_text())
        self.config = self.read_config(meta)
        self.name: str = meta.get("name", self.folder.name)
        self.weights: dict[str, dict[str, torch.Tensor]] = {
            s: load_file(str(self.folder / f"{s}.safetensors"))
            for s in STAGES if (self.folder / f"{s}.safetensors").is_file()
        }
        if "fidelity" not in self.weights:
            raise UserError(f"model folder {self.folder} has no fidelity.safetensors")
        self.net = self.config.build().eval().requires_grad_(False)
        self._realism: float | None = None  # the blend loaded into ``net``
        # ``net`` holds trained weights from the start (the fidelity set), not its random
        # initialisation: a call to the network before any set_realism must not fill from noise
        self.set_realism(0.0)

    def read_config(self, meta: dict) -> Any:
        """The network's config from ``config.json``; raise :class:`UserError` for a wrong folder."""
        raise NotImplementedError

    def set_realism(self, realism: float) -> None:
        """Load the ``(1 - realism) * fidelity + realism * gan`` weights into :attr:`net`."""
        if not 0 <= realism <= 1:
            raise UserError(f"realism must be in 0..1, got {realism}")
        if realism > 0 and "gan" not in self.weights:
            raise UserError(f"model {self.name} has no GAN weights: use --realism 0")
        if realism == self._realism:  # blending every call would cost a full pass over the weights
            return
        fid = self.weights["fidelity"]
        gan = self.weights.get("gan", fid)
        state = {k: (1 - realism) * fid[k].float() + realism * gan[k].float() for k in fid}
        self.net.load_state_dict(state)  # integer buffers (BN's batch count) are cast back
        self._realism = realism


def write_stage(out: Path, stage: str, weights: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write one stage's weights as ``out/{stage}.safetensors`` and ``out/config.json``, each
    atomically (a killed export leaves the folder's previous files whole)."""
    path = out / f"{stage}.safetensors"
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp))
    with atomic_output(out / "config.json", "w") as fh:
        fh.write(json.dumps(meta, indent=2) + "\n")
    return path
