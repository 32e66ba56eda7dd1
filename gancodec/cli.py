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


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model on a folder of images")
    tsub = p.add_subparsers(dest="what", required=True)
    c = tsub.add_parser("codec", help="train the generative codec (stage rd, then gan)")
    c.add_argument("--data", nargs="+", required=True, help="folder(s) of training images")
    c.add_argument("--stage", choices=["rd", "gan"], default="rd")
    c.add_argument("--steps", type=int, required=True)
    c.add_argument("--out", required=True, help="run directory (checkpoint, log.csv, samples/)")
    c.add_argument("--init", help="for --stage gan: the rd run directory to start from")
    c.add_argument("--init-weights", choices=["ema", "raw"], default="ema",
                   help="for --stage gan: start from the rd run's EMA or raw weights")
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
    c.add_argument("--checkpoint-every", type=int, default=250)
    c.add_argument("--sample-every", type=int, default=500)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    c.add_argument("--device", default="auto", help="auto (GPU if there is one), cpu, cuda or cuda:N")
    c.add_argument("--no-progress", action="store_true")
    for what, help_ in (("restore", "train the restoration model (JPEG artefacts, noise, blur)"),
                        ("sr", "train the super-resolution model")):
        r = tsub.add_parser(what, help=help_)
        r.add_argument("--data", nargs="+", required=True, help="folder(s) of clean training images")
        r.add_argument("--stage", choices=["fidelity", "gan"], default="fidelity")
        r.add_argument("--steps", type=int, required=True)
        r.add_argument("--out", required=True, help="run directory")
        r.add_argument("--init", help="start from this run's weights (the fidelity run for --stage gan)")
        r.add_argument("--resume", action="store_true")
        r.add_argument("--scale", type=int, default=4, help="sr: 2 or 4")
        r.add_argument("--width", type=int, default=32)
        r.add_argument("--blocks", type=int, default=2)
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
        r.add_argument("--seed", type=int, default=0)
        r.add_argument("--threads", type=int, default=0)
        r.add_argument("--device", default="auto", help="auto (GPU if there is one), cpu, cuda or cuda:N")
        r.add_argument("--no-progress", action="store_true")
    e = tsub.add_parser("export", help="turn a training run into shippable weights (safetensors)")
    e.add_argument("run", help="run directory of the codec (rd or gan stage)")
    e.add_argument("--out", required=True, help="folder for model.safetensors + config.json")
    e.add_argument("--name", default=None, help="model name (default: the output folder's name)")
    e.add_argument("--weights", choices=["ema", "raw"], default="ema", help="which weights of the run")


def _add_codec(sub) -> None:
    p = sub.add_parser("compress", help="compress an image to a .gcz file")
    p.add_argument("input", help="image file (PNG, JPEG, ...; RGB, greyscale or with alpha)")
    p.add_argument("-o", "--output", required=True, help="output .gcz file")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("-q", "--quality", type=float, help="1 (smallest) .. levels (best); default 3")
    rate.add_argument("--target-bpp", type=float, help="search the quality that gives this many bits/pixel")
    p.add_argument("--model", default=None, help="model name or folder (default: hific-lite)")
    p.add_argument("--threads", type=int, default=0)

    p = sub.add_parser("decompress", help="decode a .gcz file to an image")
    p.add_argument("input", help=".gcz file")
    p.add_argument("-o", "--output", required=True, help="output image (.png recommended)")
    p.add_argument("--decoder", choices=["mse", "gan"], default="mse",
                   help="mse: highest fidelity; gan: realistic texture (same file)")
    p.add_argument("--fast", action="store_true",
                   help="float32 synthesis: faster, but pixels may differ in the last bit between machines")
    p.add_argument("--model", default=None)
    p.add_argument("--threads", type=int, default=0)

    p = sub.add_parser("info", help="print the header of a .gcz file as JSON")
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
    p = sub.add_parser("upscale", help="super-resolution ×2 or ×4")
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--realism", type=float, default=0.0, help="0: fidelity model, 1: GAN model, between: blend")
    p.add_argument("--model", default=None, help="model name or folder (default: sr-x4-lite / sr-x2-lite)")
    p.add_argument("--threads", type=int, default=0)


def _enhance(args) -> int:
    from .imageio import open_image, save_image, to_rgb_array
    from .zoo import available_models, load_enhancer

    kind, scale = ("sr", args.scale) if args.command == "upscale" else ("restore", None)
    if kind == "sr" and scale not in DEFAULT_SR:
        raise UserError(f"--scale {scale} is not supported (use 2 or 4)")
    name = args.model or (DEFAULT_SR[scale] if kind == "sr" else DEFAULT_RESTORE)
    if args.model is None and name not in available_models():
        raise UserError(f"no {name} weights in this installation: train a model with "
                        f"`gancodec train {kind}`, export it and pass --model FOLDER")
    model = load_enhancer(name, kind, scale)
    rgb = to_rgb_array(open_image(args.input))
    out = model.run(rgb, realism=args.realism, **({"task": args.task, "strength": args.strength}
                                                   if kind == "restore" else {}))
    save_image(args.output, out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gancodec", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_codec(sub)
    add_evaluation_commands(sub)
    _add_enhance(sub)
    _add_train(sub)
    return parser


def _read_input(path: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"input file not found: {p}")
    return p.read_bytes()


def _compress(args) -> int:
    import gancodec

    from .imageio import write_bytes

    model = gancodec.load_model(args.model or "hific-lite")
    data = model.compress(args.input, quality=args.quality, target_bpp=args.target_bpp)
    write_bytes(args.output, data)
    info = _info_dict(data)
    print(json.dumps({"output": args.output} | {k: info[k] for k in ("width", "height", "quality", "bytes", "bpp")}))
    return 0


def _decompress(args) -> int:
    import gancodec

    from .imageio import save_image

    data = _read_input(args.input)
    model = gancodec.load_model(args.model or _info_dict(data)["model"])
    save_image(args.output, model.decompress(data, decoder=args.decoder, exact=not args.fast))
    return 0


def _info_dict(data: bytes) -> dict:
    from .bitstream import Container

    h = Container.from_bytes(data).header
    names = ["z", "z_escapes", "y", "y_escapes", "alpha"][: len(h.stream_lengths)]
    return {
        "format_version": data[4],
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


def _info(args) -> int:
    info = _info_dict(_read_input(args.input))
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

        path = export_run(Path(args.run), Path(args.out), name=args.name, ema=args.weights == "ema")
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
