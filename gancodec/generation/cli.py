"""The generation sub-commands: ``train gan``, ``train judge``, ``generate`` and ``eval gan``.

The main parser adds them with :func:`add_train_subcommands` and :func:`add_subcommands`; each
parser carries a ``handler(args) -> int`` default, which the main command calls.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError


def _train_gan(args) -> int:
    from ..training.run import train_gan

    train_gan(args)
    return 0


def _train_judge(args) -> int:
    from ..training.run import train_judge_cli

    train_judge_cli(args)
    return 0


def add_train_subcommands(tsub, add_run_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """``train gan`` and ``train judge`` under ``gancodec train``."""
    from ..training.gan_task import GAN_LOSSES

    g = tsub.add_parser("gan", help="train a DCGAN-family image generator (MNIST or a folder of images)")
    g.add_argument("--data", required=True, help="mnist:DIR (the MNIST folder; trains on the t10k file) or a folder")
    g.add_argument("--size", type=int, default=None, help="image size for a folder: 32 or 64 (MNIST is 28)")
    g.add_argument("--loss", choices=GAN_LOSSES, default="hinge")
    g.add_argument("--conditional", action="store_true", help="class-conditional (MNIST labels)")
    g.add_argument("--latent-codes", type=int, default=0, metavar="K",
                   help="InfoGAN: an unconditional generator with a K-valued categorical code that D learns "
                        "to read back (no labels; 0: none)")
    g.add_argument("--info-weight", type=float, default=1.0, help="weight of the code's cross-entropy (InfoGAN λ)")
    g.add_argument("--self-condition", type=int, default=0, metavar="K",
                   help="self-conditioned unconditional model: condition both networks on K k-means clusters "
                        "of the training images (no labels; sampling draws a cluster by its share)")
    g.add_argument("--diffaugment", default=None, metavar="POLICY",
                   help="DiffAugment of everything the discriminator sees: comma-separated "
                        "translation, cutout, color (e.g. translation,cutout)")
    g.add_argument("--spectral-norm", action=argparse.BooleanOptionalAction, default=True,
                   help="spectral norm on every discriminator layer")
    g.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True,
                   help="keep an exponential moving average of the generator (exported by default)")
    g.add_argument("--ema-decay", type=float, default=0.999)
    g.add_argument("--steps", type=int, required=True, help="generator updates")
    g.add_argument("--out", required=True, help="run directory (checkpoint, log.csv, samples/)")
    g.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--lr", type=float, default=None, help="default: the loss's recipe (2e-4; WGAN-GP 1e-4)")
    g.add_argument("--lr-decay-at", type=float, default=1.0, help="fraction of steps; lr ×0.1 after (1: never)")
    g.add_argument("--n-critic", type=int, default=None,
                   help="critic updates per step (default: 5 for wgan-gp, else 1)")
    g.add_argument("--nz", type=int, default=64, help="noise dimensions")
    g.add_argument("--width", type=int, default=64, help="channels of the first D / last G stage")
    g.add_argument("--g-depth", type=int, default=0,
                   help="3×3 conv-BN-ReLU layers added per generator resolution (0: DCGAN's generator)")
    g.add_argument("--d-depth", type=int, default=0,
                   help="3×3 conv layers added per discriminator resolution (SNGAN's standard CNN at 1; "
                        "0: DCGAN's discriminator)")
    g.add_argument("--eval-every", type=int, default=0,
                   help="measure the generator with the judge every K steps into log.csv (MNIST; 0: never)")
    g.add_argument("--eval-n", type=int, default=2000, help="samples per evaluation during training")
    g.add_argument("--judge", default="mnist-judge", help="judge model name or folder")
    g.add_argument("--log-every", type=int, default=10)
    g.add_argument("--checkpoint-every", type=int, default=1000)
    g.add_argument("--sample-every", type=int, default=500)
    add_run_options(g)
    g.set_defaults(handler=_train_gan)

    j = tsub.add_parser("judge", help="train the MNIST classifier behind the generation metrics")
    j.add_argument("--data", required=True, help="mnist:DIR: trains on the t10k file, measured on mnist_5k.csv.gz")
    j.add_argument("--out", required=True, help="run directory; export with `gancodec train export`")
    j.add_argument("--steps", type=int, default=1200, help="updates of --batch-size digits (1200 × 128 ≈ 15 epochs)")
    j.add_argument("--batch-size", type=int, default=128)
    j.add_argument("--lr", type=float, default=2e-3)
    j.add_argument("--label-smoothing", type=float, default=0.0,
                   help="cross-entropy label smoothing (v0.1 used 0.05, which capped its confidence)")
    j.add_argument("--resume", action="store_true")
    add_run_options(j)
    j.set_defaults(handler=_train_judge)


def _write_images(images, output: Path, columns: int | None) -> dict:
    from ..generator import grid
    from ..imageio import IMAGE_SUFFIXES, save_image

    if output.suffix.lower() in IMAGE_SUFFIXES:
        save_image(output, grid(images, columns))
        return {"grid": str(output), "images": len(images)}
    if output.exists() and not output.is_dir():
        raise UserError(f"{output} exists and is not a folder")
    output.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        save_image(output / f"{i:05d}.png", im)
    return {"folder": str(output), "images": len(images)}


def _generate(args) -> int:
    from ..zoo import load_generator

    model = load_generator(args.model, conditional=args.digit is not None)
    if args.interpolate:
        try:
            a, b = (int(s) for s in args.interpolate.split(","))
        except ValueError:
            raise UserError(f"--interpolate takes two seeds A,B, got {args.interpolate!r}") from None
        images = model.interpolate(a, b, args.steps, digit=args.digit, truncation=args.truncation)
        columns = len(images)
    else:
        images = model.generate(args.n, digit=args.digit, seed=args.seed, truncation=args.truncation)
        columns = 10 if model.conditional and args.digit is None else None
    print(json.dumps({**_write_images(images, Path(args.output), columns), "model": model.name}))
    return 0


def _eval_gan(args) -> int:
    from ..imageio import atomic_output
    from .evaluate import evaluate_gan, jsonable, summary_line

    result = jsonable(evaluate_gan(args.target, n=args.n, seed=args.seed, real=args.real, judge=args.judge,
                                   device=args.device, weights=args.weights, floor=not args.no_floor,
                                   truncation=args.truncation))
    if args.json:
        with atomic_output(args.json, "w") as fh:
            fh.write(json.dumps(result, indent=2) + "\n")
    print(summary_line(result))
    print(json.dumps(result))
    return 0


def add_subcommands(sub) -> None:
    """``generate`` and ``eval gan`` at the top level of ``gancodec``."""
    p = sub.add_parser("generate", help="draw images from a generator (default: the shipped MNIST model)")
    p.add_argument("-n", type=int, default=64, help="number of images")
    p.add_argument("-o", "--output", required=True, help="a .png (one grid) or a folder (one PNG per image)")
    p.add_argument("--digit", type=int, default=None, help="0-9: ask a class-conditional model for this digit")
    p.add_argument("--seed", type=int, default=None, help="same seed and model: same pixels (default: random)")
    p.add_argument("--model", default=None, help="model name or folder (default: mnist-dcgan / mnist-dcgan-cond)")
    p.add_argument("--truncation", type=float, default=None, help="redraw noise entries beyond ±T")
    p.add_argument("--interpolate", metavar="A,B", help="walk the latent space from seed A to seed B")
    p.add_argument("--steps", type=int, default=10, help="images along --interpolate")
    p.add_argument("--threads", type=int, default=0)
    p.set_defaults(handler=_generate)

    e = sub.add_parser("eval", help="measure a model")
    esub = e.add_subparsers(dest="what", required=True)
    g = esub.add_parser("gan", help="judge metrics of a generator: classifier FID, MNIST score, classes, P/R, D/C")
    g.add_argument("target", help="run directory of `gancodec train gan`, or a model name / folder")
    g.add_argument("-n", type=int, default=10000,
                   help="samples (distribution metrics use at most 5,000: the held-out size)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--json", help="also write the result to this file")
    g.add_argument("--real",
                   help="mnist:DIR with the held-out mnist_5k.csv.gz (default: the run's, or ../shared/data/mnist)")
    g.add_argument("--judge", default="mnist-judge")
    g.add_argument("--weights", choices=["ema", "raw"], default="ema", help="for a run directory: which generator")
    g.add_argument("--no-floor", action="store_true", help="skip the real-vs-real floor")
    g.add_argument("--truncation", type=float, default=None,
                   help="measure samples drawn as `generate --truncation T` draws them")
    g.add_argument("--device", default="auto")
    g.add_argument("--threads", type=int, default=0)
    g.set_defaults(handler=_eval_gan)
