"""Entry points that turn command-line options into a Task, a data stream and a Trainer run."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import UserError
from ..models.codec import CodecConfig, HiFiCLite
from .codec_task import CodecGANTask, CodecRDTask
from .data import RandomCrops
from .enhance_task import EnhanceConfig, EnhanceTask
from .trainer import TrainConfig, Trainer, init_distributed, is_main_process


def load_codec_checkpoint(path: Path, ema: bool = True) -> HiFiCLite:
    """A codec from a run directory (or its checkpoint.pt), with its EMA weights if ``ema``."""
    ckpt = path / "checkpoint.pt" if path.is_dir() else path
    if not ckpt.exists():
        raise UserError(f"no checkpoint at {ckpt}")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    config = CodecConfig.from_dict(state["config"])
    model = HiFiCLite(config)
    weights = state["nets"]["codec"]
    if any(k.startswith("g_s_gan.") for k in weights):
        model.add_gan_decoder()
    model.load_state_dict(weights)
    if ema and "ema" in state:
        if state.get("stage") == "gan":
            model.g_s_gan.load_state_dict(state["ema"])
        else:
            model.load_state_dict(state["ema"])
    return model


def _fit(task, args, rank: int, metadata: dict) -> None:
    """The part every ``gancodec train`` shares: data stream, trainer, run."""
    data = RandomCrops(args.data, crop=args.crop, batch_size=args.batch_size, seed=args.seed + rank)
    Trainer(task, data, TrainConfig(
        steps=args.steps, out_dir=Path(args.out), checkpoint_every=args.checkpoint_every,
        sample_every=args.sample_every, resume=args.resume, progress=not args.no_progress,
        lr_decay_at=args.lr_decay_at, device=args.device,
    ), metadata=metadata).fit()


def train_codec(args) -> Path:
    rank, _ = init_distributed(args.device)
    torch.manual_seed(args.seed + rank)
    out = Path(args.out)
    config = CodecConfig(
        channels=args.channels, latent_channels=args.latent_channels,
        hyper_channels=args.hyper_channels, res_blocks=args.res_blocks,
        **({"lambdas": sorted(args.lambdas)} if getattr(args, "lambdas", None) else {}),
    )
    resuming = args.resume and (out / "checkpoint.pt").exists()
    if args.stage == "rd":
        model = HiFiCLite(config)
        task = CodecRDTask(model, lr=args.lr)
    else:
        if args.init is None and not resuming:
            raise UserError("--stage gan needs --init RD_RUN_DIR (the rate-distortion run)")
        model = (load_codec_checkpoint(Path(args.init), ema=args.init_weights == "ema")
                 if args.init else HiFiCLite(config))
        if resuming:
            model.add_gan_decoder()
        config = model.config
        task = CodecGANTask(model, lr=args.lr, beta=args.beta, gan_loss=args.gan_loss, r1_weight=args.r1)
    _fit(task, args, rank, {"config": config.to_dict(), "stage": args.stage, "kind": "codec"})
    if is_main_process():
        (out / "run.json").write_text(json.dumps({
            "stage": args.stage, "steps": args.steps, "data": [str(d) for d in args.data],
            "batch_size": args.batch_size, "crop": args.crop, "lr": args.lr,
            "config": config.to_dict(),
        }, indent=2))
    return out


def train_enhance(args) -> Path:
    """``gancodec train restore|sr``: fidelity stage, then gan stage from ``--init``."""
    rank, _ = init_distributed(args.device)
    torch.manual_seed(args.seed + rank)
    out = Path(args.out)
    resuming = args.resume and (out / "checkpoint.pt").exists()
    if args.stage == "gan" and args.init is None and not resuming:
        raise UserError("--stage gan needs --init FIDELITY_RUN_DIR")
    generator = None
    if args.init:
        ckpt = Path(args.init) / "checkpoint.pt" if Path(args.init).is_dir() else Path(args.init)
        if not ckpt.exists():
            raise UserError(f"no checkpoint at {ckpt}")
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        config = EnhanceConfig.from_dict(state["config"])
        generator = config.build()
        generator.load_state_dict(state.get("ema") or state["nets"]["generator"])
    else:
        kind = "sr" if args.what == "sr" else "restore"
        if kind == "sr" and args.scale not in (2, 4):
            raise UserError("--scale must be 2 or 4")
        config = EnhanceConfig(kind=kind, scale=args.scale if kind == "sr" else 1, width=args.width,
                               blocks=args.blocks)
    task_mix = getattr(args, "task_mix", None)  # restore only
    try:
        task = EnhanceTask(config, generator, stage=args.stage, lr=args.lr, beta=args.beta, seed=args.seed + rank,
                           task_mix=task_mix)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    meta = {"config": config.to_dict(), "stage": args.stage, "kind": config.kind}
    if task_mix is not None:
        meta["task_mix"] = list(task_mix)
    _fit(task, args, rank, meta)
    return out
