"""Turn a training run into shippable weights: fp16 transforms, integer hyper-synthesis and
frozen entropy tables in one safetensors file, plus a JSON config.

Everything the decoder needs to pick probabilities is computed *here*, once, and stored; the
runtime never re-derives a table from floats.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..bitstream import FORMAT_VERSION
from ..entropy.coder import TableSet
from ..entropy.gaussian import gaussian_pmf_tables, scale_table, scale_thresholds
from ..errors import UserError
from ..imageio import atomic_output, atomic_path
from ..models.codec import HiFiCLite
from ..models.integer import (
    ACT_BITS,
    SYNTH_ACT_BITS,
    SYNTH_WEIGHT_BITS,
    WEIGHT_BITS,
    quantize_context,
    quantize_hyper_synthesis,
)
from ..training.run import load_codec_checkpoint
from . import REALISM_BLENDS, model_folder, weights_hash

Z_RADIUS = 40
FLOAT_PREFIXES = ("g_a.", "g_s.", "g_s_gan.", "g_s_anchor.", "h_a.")


def export_run(run: Path, out: Path, name: str | None = None, ema: bool = True, version: str | None = None,
               realism_blend: str = "weights") -> Path:
    """Export any training run (codec, restoration, super-resolution, inpainting, generator, judge) into a
    model folder; ``version`` is a codec release's version (``gancodec info`` reports it) and
    ``realism_blend`` how its ``--realism`` blends the decoders (:data:`REALISM_BLENDS`)."""
    ckpt = run / "checkpoint.pt" if run.is_dir() else run
    if not ckpt.is_file():
        raise UserError(f"no checkpoint at {ckpt}")
    kind = torch.load(ckpt, map_location="cpu", weights_only=False).get("kind", "codec")
    name = name or out.name
    if kind == "codec":
        return export_codec(run, out, name, ema=ema, version=version, realism_blend=realism_blend)
    if kind == "inpaint":
        from ..inpainting import export_inpaint

        return export_inpaint(run, out, name, ema=ema)
    if kind == "gan":
        from ..generator import export_gan

        return export_gan(run, out, name, ema=ema)
    if kind == "judge":
        from ..generation.judge import export_judge

        return export_judge(run, out, name)
    from ..enhance import export_enhance

    return export_enhance(run, out, name)


def export_codec(run: Path, out: Path, name: str = "hific-lite", ema: bool = True,
                 version: str | None = None, realism_blend: str = "weights") -> Path:
    """Export the (EMA) weights of a codec training run directory."""
    return export_model(load_codec_checkpoint(run, ema=ema), out, name, version=version, realism_blend=realism_blend)


def export_model(model: HiFiCLite, out: Path, name: str = "hific-lite", version: str | None = None,
                 realism_blend: str = "weights") -> Path:
    """Write ``model.safetensors`` and ``config.json`` for a codec into ``out``. ``name`` is the
    name its files carry; ``version`` (e.g. ``"0.6"``) is what ``gancodec info`` reports;
    ``realism_blend`` is how ``--realism`` blends its two decoders: ``"weights"`` (ESRGAN's
    network interpolation) or ``"pixels"`` (the two decoders' images; for GAN decoders whose
    weights have drifted too far from the MSE decoder's for their blend to lie between them)."""
    if realism_blend not in REALISM_BLENDS:
        raise UserError(f"realism blend must be one of {', '.join(REALISM_BLENDS)}, got {realism_blend!r}")
    if model.g_s_anchor is not None and realism_blend != "pixels":
        raise UserError("an anchored GAN decoder's image exists only as pixels: export it with realism blend 'pixels'")
    out.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        if k.startswith(FLOAT_PREFIXES):
            tensors[k] = v.detach().half().contiguous()
    tensors["log_gain"] = model.log_gain.detach().float().contiguous()
    tensors["log_inv_gain"] = model.log_inv_gain.detach().float().contiguous()
    tensors.update(quantize_hyper_synthesis(model.h_s))
    if model.context is not None:
        tensors.update(quantize_context(model.context))

    z_tables = TableSet(tuple(model.prior.pmf_table(Z_RADIUS)))
    z_pmf, z_radius = z_tables.to_padded()
    scales = scale_table()
    y_pmf, y_radius = TableSet(tuple(gaussian_pmf_tables(scales))).to_padded()
    tensors.update({
        "tables.z.pmf": torch.from_numpy(z_pmf),
        "tables.z.radius": torch.from_numpy(z_radius),
        "tables.y.pmf": torch.from_numpy(y_pmf),
        "tables.y.radius": torch.from_numpy(y_radius),
        "tables.y.scales": torch.from_numpy(scales),
        "tables.y.thresholds": torch.from_numpy(scale_thresholds(scales)),
    })
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(tensors, str(tmp))
    config = {
        "name": name,
        **({"version": version} if version else {}),
        "architecture": "hific-lite",
        "format_version": FORMAT_VERSION,
        "codec_config": model.config.to_dict(),
        "decoders": ["mse", "gan"] if model.g_s_gan is not None else ["mse"],
        # absent (every release before 0.9) means "weights": an old model's blends never change
        **({"realism_blend": realism_blend} if realism_blend != "weights" else {}),
        "integer_hyper_synthesis": {"weight_bits": WEIGHT_BITS, "activation_bits": ACT_BITS},
        "fixed_point_synthesis": {"weight_bits": SYNTH_WEIGHT_BITS, "activation_bits": SYNTH_ACT_BITS},
        "parameters": _parameters(tensors),
        # Lets a decoder find this model for a file (header: name + hash) without hashing every
        # installed weights file; checked against the file when the codec is loaded.
        "weights_hash": weights_hash(out / "model.safetensors").hex(),
    }
    with atomic_output(out / "config.json", "w") as fh:
        fh.write(json.dumps(config, indent=2) + "\n")
    return out / "model.safetensors"


def _parameters(tensors: dict[str, torch.Tensor]) -> int:
    return int(sum(v.numel() for k, v in tensors.items() if not k.startswith("tables.")))


def _codec_config(folder: Path) -> dict:
    """A codec folder's config.json, checked against its weights (the hash is its identity)."""
    try:
        meta = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{folder}: unreadable config.json ({exc})") from None
    if not isinstance(meta, dict) or "codec_config" not in meta or not (folder / "model.safetensors").is_file():
        raise UserError(f"{folder} is not a codec model")
    stored = meta.get("weights_hash")
    if stored is not None and stored != weights_hash(folder / "model.safetensors").hex():
        raise UserError(f"{folder}: config.json's weights_hash does not match model.safetensors")
    return meta


def anchor_gan_decoder(model: str | Path, anchor: str | Path, out: Path, version: str | None = None) -> Path:
    """A copy of the codec ``model`` whose GAN decoder is anchored to ``anchor``'s MSE synthesis
    (:meth:`HiFiCLite.add_gan_anchor`): for a model whose MSE decoder was retrained after its
    GAN decoder, ``anchor`` is the codec the GAN decoder was fine-tuned against. Its GAN image
    becomes MSE + (GAN − anchor's MSE image), in 8-bit pixels: the texture the GAN decoder adds,
    on the better MSE image. Every tensor of ``model`` is kept bit for bit, so its files'
    entropy-coded streams and MSE images do not change; only the weights hash (a new model
    identity) does. ``version`` is the new release's."""
    src, anchor_src = model_folder(str(model)), model_folder(str(anchor))
    if src.resolve() == anchor_src.resolve():
        raise UserError("a GAN decoder anchored to its own model's MSE decoder is the plain GAN decoder")
    meta, anchor_meta = _codec_config(src), _codec_config(anchor_src)
    tensors = load_file(str(src / "model.safetensors"))
    anchor_tensors = load_file(str(anchor_src / "model.safetensors"))
    if not any(k.startswith("g_s_gan.") for k in tensors):
        raise UserError(f"{src} has no GAN decoder to anchor")
    if any(k.startswith("g_s_anchor.") for k in tensors):
        raise UserError(f"{src}'s GAN decoder is anchored already")
    shape = ("channels", "latent_channels", "res_blocks")
    if any(meta["codec_config"].get(k) != anchor_meta["codec_config"].get(k) for k in shape):
        raise UserError(f"{anchor_src}'s synthesis is not shaped like {src}'s ({', '.join(shape)} differ)")
    anchor_g_s = {"g_s_anchor." + k[4:]: v for k, v in anchor_tensors.items() if k.startswith("g_s.")}
    if {k[len("g_s_anchor."):] for k in anchor_g_s} != {k[4:] for k in tensors if k.startswith("g_s.")}:
        raise UserError(f"{anchor_src}'s synthesis does not have {src}'s layers")
    tensors.update(anchor_g_s)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(tensors, str(tmp))
    config = dict(meta)
    config.pop("version", None)  # a new model: not the source release
    if version:
        config["version"] = version
    config["realism_blend"] = "pixels"  # an anchored GAN image exists only as pixels
    config["gan_anchor"] = (f"MSE synthesis of {anchor_meta.get('name', anchor_src.name)} "
                            f"{anchor_meta.get('version', '')}".rstrip() + f" @{anchor_meta.get('weights_hash', '')}")
    config["parameters"] = _parameters(tensors)
    config["weights_hash"] = weights_hash(out / "model.safetensors").hex()
    with atomic_output(out / "config.json", "w") as fh:
        fh.write(json.dumps(config, indent=2) + "\n")
    return out / "model.safetensors"
