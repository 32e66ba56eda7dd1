"""Runtime of restoration and super-resolution models: load, blend, run tiled.

A model folder holds ``config.json`` and one or two weight files: ``fidelity.safetensors``
(L1-trained) and ``gan.safetensors`` (GAN-finetuned from it). ``realism`` in [0, 1] interpolates
their weights (ESRGAN's network interpolation), a continuous dial between faithful and crisp;
the loading and blending live in :mod:`.blend`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .allocator import reuse_large_buffers
from .blend import BlendedModel, write_stage
from .errors import UserError
from .imageio import open_image, output_format, row_writer, streamed_rgb, to_rgb_array
from .limits import DEFAULT_MAX_PIXELS
from .models.unet import TASKS
from .tiling import BandSink, RowReader, run_tiled, run_tiled_two_stage, uint8_source
from .training.enhance_task import EnhanceConfig


class Enhancer(BlendedModel):
    tile = 256  # input pixels per tile side
    # SR: the upsampling tail (full-resolution activations, ~1 input pixel of receptive field)
    # runs on 64-px input tiles inside each trunk tile, so memory does not grow with the scale².
    sr_tail_tile = 64
    sr_tail_margin = 2

    def read_config(self, meta: dict) -> EnhanceConfig:
        return EnhanceConfig.from_dict(meta["enhance_config"])

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def margin(self) -> int:
        """Input pixels of context per tile side, covering the receptive field (about 48 px for
        the 3-level U-Net, 35 px for two RRDBs) with room to spare."""
        return 64 if self.kind == "restore" else 48

    @torch.no_grad()
    def run(self, rgb: np.ndarray | RowReader, realism: float = 0.0, task: str = "auto", strength: float = 1.0,
            progress: bool = False, self_ensemble: bool = False,
            write: Callable[[int, np.ndarray], None] | None = None) -> np.ndarray | None:
        """Restore (kind ``restore``) or upscale (kind ``sr``) a uint8 RGB image, an array or a
        :class:`~gancodec.tiling.RowReader` read top to bottom. Tiles are turned into float and
        back into uint8 one at a time. The result is returned as an array, or with ``write``
        handed to ``write(first_row, rows)`` in bands of whole rows, top to bottom (``rows``
        uint8 (n, W, 3), reused once ``write`` returns): with a row reader in and a streaming
        writer out (:meth:`run_file`) memory is bounded by a row of tiles, not the image.
        ``self_ensemble`` averages the 8 flips/rotations of every tile (EDSR's geometric
        self-ensemble): a little more fidelity for 8× the time."""
        self.set_realism(realism)
        if min(rgb.shape[:2]) < 2:
            raise UserError(f"image is {rgb.shape[1]}×{rgb.shape[0]}: at least 2×2 pixels are needed")
        if self.kind == "restore":
            if task not in TASKS:
                raise UserError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
            if not 0 <= strength <= 2:
                raise UserError(f"strength must be in 0..2, got {strength}")
            scale = 1

            def net(t: torch.Tensor) -> torch.Tensor:
                return self.net(t, task, strength)
        else:
            scale, net = self.config.scale, self.net
        h, w = rgb.shape[:2]
        window = uint8_source(rgb if isinstance(rgb, RowReader) else rgb[..., :3])
        out = None
        if write is None:
            out = np.empty((scale * h, scale * w, 3), dtype=np.uint8)

            def write(r0: int, rows: np.ndarray) -> None:
                out[r0 : r0 + len(rows)] = rows
        tile = self.tile
        if self_ensemble:  # whole network per tile (features do not commute with rotations)
            net, tile = geometric_ensemble(net), self.tile // 2

        def to_uint8(t: torch.Tensor) -> np.ndarray:
            return (t[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)

        store = BandSink(scale * h, scale * w, 3, scale * tile, write, to_uint8)
        with reuse_large_buffers(scale * scale * h * w):
            if self.kind == "sr" and not self_ensemble:  # the full-resolution tail in small tiles of its own
                run_tiled_two_stage(self.net.trunk, self.net.upsample, window, scale, self.tile, self.margin,
                                    self.sr_tail_tile, self.sr_tail_margin, size=(h, w), sink=store,
                                    progress=progress, desc="upscale")
            else:
                run_tiled(net, window, scale, tile, self.margin, size=(h, w), sink=store, progress=progress,
                          desc=self.kind)
        store.close()
        return out

    def run_file(self, image: str | Path, output: str | Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 **how) -> None:
        """:meth:`run` from an image file to an image file (format from the suffix), written
        atomically, with the input's ICC profile attached (the networks keep its colour space).
        A large plain PNG, JPEG or TIFF is read in rows (:func:`~gancodec.imageio.streamed_rgb`)
        and a ``.png`` is written band by band, so neither image is ever whole in memory;
        other forms are decoded whole (and other formats encoded whole) by Pillow."""
        output_format(output)  # an unknown suffix is refused before the work, not after
        img = open_image(image, max_pixels, decode=False)
        icc = img.info.get("icc_profile") or None
        rows = streamed_rgb(img)
        try:
            source = rows if rows is not None else to_rgb_array(img)
            img = None  # Pillow's decoded copy, if it made one, can go now
            scale = 1 if self.kind == "restore" else self.config.scale
            h, w = source.shape[:2]
            with row_writer(output, scale * w, scale * h, 3, **({"icc_profile": icc} if icc else {})) as write:
                self.run(source, write=write, **how)
        finally:
            if rows is not None:
                rows.close()


def geometric_ensemble(net: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``net`` averaged over the 8 symmetries of the square (4 rotations × mirror), each output
    mapped back: a fully-convolutional network's errors differ between them and partly cancel."""

    def ensembled(x: torch.Tensor) -> torch.Tensor:
        total = None
        for k in range(4):
            for mirror in (False, True):
                t = torch.rot90(x, k, (2, 3))
                y = net(t.flip(3) if mirror else t)
                y = torch.rot90(y.flip(3) if mirror else y, -k, (2, 3))
                total = y if total is None else total + y
        return total / 8

    return ensembled


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
    return write_stage(out, stage, weights, meta)
