"""The ``gancodec`` command line: one sub-command per job, all sharing the image I/O layer.

User mistakes (:class:`gancodec.errors.UserError`) are printed as one line on stderr with exit
status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import UserError


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model on a folder of images")
    tsub = p.add_subparsers(dest="what", required=True)
    c = tsub.add_parser("codec", help="train the generative codec (stage rd, then gan)")
    c.add_argument("--data", nargs="+", required=True, help="folder(s) of training images")
    c.add_argument("--stage", choices=["rd", "gan"], default="rd")
    c.add_argument("--steps", type=int, required=True)
    c.add_argument("--out", required=True, help="run directory (checkpoint, log.csv, samples/)")
    c.add_argument("--init", help="for --stage gan: the rd run directory to start from")
    c.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    c.add_argument("--batch-size", type=int, default=8)
    c.add_argument("--crop", type=int, default=128)
    c.add_argument("--lr", type=float, default=1e-4)
    c.add_argument("--lr-decay-at", type=float, default=0.8, help="fraction of steps; lr ×0.1 after")
    c.add_argument("--channels", type=int, default=128)
    c.add_argument("--latent-channels", type=int, default=160)
    c.add_argument("--hyper-channels", type=int, default=128)
    c.add_argument("--res-blocks", type=int, default=3)
    c.add_argument("--beta", type=float, default=0.3, help="gan stage: adversarial weight")
    c.add_argument("--gan-loss", default="ns", choices=["ns", "hinge", "lsgan", "rsgan", "ragan"])
    c.add_argument("--r1", type=float, default=0.0, help="gan stage: R1 penalty weight")
    c.add_argument("--checkpoint-every", type=int, default=250)
    c.add_argument("--sample-every", type=int, default=500)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    c.add_argument("--no-progress", action="store_true")
    e = tsub.add_parser("export", help="turn a codec run into shippable weights (safetensors)")
    e.add_argument("run", help="run directory of the codec (rd or gan stage)")
    e.add_argument("--out", required=True, help="folder for model.safetensors + config.json")
    e.add_argument("--name", default="hific-lite")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gancodec", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    return parser


def _run(args) -> int:
    import torch

    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    if args.command == "train" and args.what == "codec":
        from .training.run import train_codec

        train_codec(args)
        return 0
    if args.command == "train" and args.what == "export":
        from .zoo.export import export_codec

        path = export_codec(Path(args.run), Path(args.out), name=args.name)
        print(json.dumps({"exported": str(path)}))
        return 0
    raise UserError(f"unknown command {args.command}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
