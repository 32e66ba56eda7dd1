"""The evaluation sub-commands: ``bench``, ``plot``, ``compare`` and ``report``.

The main ``gancodec`` parser adds them with :func:`add_subcommands`; each parser carries a
``handler(args) -> int`` default. ``python -m gancodec.evaluation.cli ...`` runs them on their
own, with the same error handling as the main command (a :class:`UserError` is one line on
stderr and exit status 2).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from ..errors import UserError
from .codecs import CODEC_NAMES, DEFAULT_MODEL


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _command_line() -> str:
    """The command as typed, for the record in summary.json (informational only)."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name in ("gancodec", "cli.py", "__main__.py"):
        argv[0] = "gancodec"
    return shlex.join(argv)


def _bench(args: argparse.Namespace) -> int:
    from .bench import parse_settings, run_bench

    summary = run_bench(
        args.data,
        args.out_dir,
        args.codecs,
        jobs=args.jobs,
        settings=parse_settings(args.settings),
        model=args.model,
        limit=args.limit,
        threads=args.threads,
        progress=not args.no_progress,
        lpips=not args.no_lpips,
        bd_method=args.bd_method,
        grid_bpp=args.grid_bpp or (),
        grid_image=args.grid_image,
        command=_command_line(),
        refine=args.refine,
    )
    run = summary["run"]
    print(
        json.dumps(
            {
                "out_dir": str(args.out_dir),
                "images": len(summary["images"]),
                "codecs": [c["name"] for c in summary["codecs"]],
                "skipped": summary["skipped"],
                "new_records": run["new_records"],
                "reused_records": run["reused_records"],
                "errors": len(summary["errors"]),
                "seconds": run["seconds"],
            }
        )
    )
    return 1 if summary["errors"] else 0


def _plot(args: argparse.Namespace) -> int:
    from .plot import plot_rd
    from .reference import load_reference
    from .results import load_summary

    summary = load_summary(args.out_dir)
    dataset = args.reference_dataset or summary.get("dataset") or None
    reference = load_reference(args.reference, dataset) if args.reference else None
    out = Path(args.output) if args.output else Path(args.out_dir) / "plots"
    files = plot_rd(summary, out, reference, args.max_bpp)
    if not files:
        raise UserError(f"nothing to plot in {args.out_dir}: no lossy codec has complete results")
    print(json.dumps({"plots": [str(f) for f in files]}))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .compare import run_compare

    result = run_compare(
        args.image,
        target_bytes=args.bytes,
        target_bpp=args.bpp,
        codecs=args.codecs,
        output=args.output,
        model=args.model,
        crops=args.crop or (),
        log=lambda m: print(f"gancodec compare: {m}", file=sys.stderr),
    )
    print(
        json.dumps(
            {
                "grid": result["grid"],
                "target_bytes": result["target_bytes"],
                "panels": [
                    {k: p[k] for k in ("codec", "setting", "bytes", "bpp", "psnr", "over_budget")}
                    for p in result["panels"]
                ],
            }
        )
    )
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report import build_report

    path = build_report(
        args.out_dir, args.output, args.reference, args.reference_dataset, args.max_bpp, args.grid or ()
    )
    print(json.dumps({"report": str(path)}))
    return 0


def add_subcommands(subparsers) -> None:
    """Add ``bench``, ``plot``, ``compare`` and ``report`` to an ``add_subparsers()`` object."""
    codec_help = f"comma-separated codecs (default: all): {','.join(CODEC_NAMES)}"

    p = subparsers.add_parser(
        "bench",
        help="measure codecs over a folder of images (RD + realism + speed)",
        description="Run every codec at a sweep of settings over every image. Writes "
        "results.jsonl (resumable), per_image.csv, summary.csv/json/md to OUT_DIR.",
    )
    p.add_argument("--data", required=True, help="folder of images (or one image)")
    p.add_argument("--codecs", default=None, help=codec_help)
    p.add_argument("-o", "--out-dir", required=True, help="results folder (created; reruns resume in it)")
    p.add_argument("--jobs", type=_positive_int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch threads per worker for the learned codec (default 1: timings per core)",
    )
    p.add_argument(
        "--settings",
        action="append",
        metavar="CODEC=V1,V2,...",
        help="replace a codec's default sweep (repeatable), e.g. jpeg=10,50,90",
    )
    p.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"learned model name or folder (default {DEFAULT_MODEL})"
    )
    p.add_argument(
        "--limit", type=_positive_int, default=None, help="only the first N images (sorted by name)"
    )
    p.add_argument(
        "--refine", type=int, default=0, metavar="STEPS",
        help="encode the learned codec with STEPS latent refinement steps (compress --refine; 0: off)",
    )
    p.add_argument(
        "--bd-method",
        choices=["pchip", "polyfit"],
        default="pchip",
        help="BD-rate interpolation (default pchip, piecewise cubic)",
    )
    p.add_argument(
        "--grid-bpp",
        type=_positive_float,
        action="append",
        metavar="BPP",
        help="also write a matched-size comparison grid at this bpp to OUT_DIR/grids (repeatable)",
    )
    p.add_argument(
        "--grid-image", default=None, help="image for --grid-bpp (name or stem; default: the first)"
    )
    p.add_argument("--no-lpips", action="store_true", help="do not measure LPIPS even if it is installed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=_bench)

    p = subparsers.add_parser(
        "plot",
        help="RD curves of a bench folder as PNG and SVG",
        description="bpp vs PSNR, MS-SSIM and each realism measure, from OUT_DIR/summary.json.",
    )
    p.add_argument("out_dir", help="folder written by 'gancodec bench'")
    p.add_argument("-o", "--output", default=None, help="folder for the plots (default OUT_DIR/plots)")
    p.add_argument("--reference", default=None, help="folder of published curves to draw for context")
    p.add_argument(
        "--reference-dataset",
        default=None,
        help="dataset rows to take from reference CSVs (default: the benchmarked folder's name, e.g. kodak)",
    )
    p.add_argument("--max-bpp", type=_positive_float, default=None, help="right end of the bpp axis")
    p.set_defaults(handler=_plot)

    p = subparsers.add_parser(
        "compare",
        help="every codec at the same file size, as one labelled grid",
        description="Search each codec's setting for the largest file within the budget "
        "and write a grid of reconstructions with zoomed crops (plus a .json sidecar).",
    )
    p.add_argument("image", help="image file")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--bytes", type=_positive_int, help="byte budget per codec")
    budget.add_argument("--bpp", type=_positive_float, help="budget in bits per pixel")
    p.add_argument("--codecs", default=None, help=codec_help.replace("all", "all lossy"))
    p.add_argument("-o", "--output", default=None, help="grid PNG (default IMAGE-compare-<bytes>B.png here)")
    p.add_argument(
        "--crop",
        action="append",
        metavar="X,Y,SIZE",
        help="crop window to enlarge (repeatable; default: two chosen automatically)",
    )
    p.add_argument("--model", default=DEFAULT_MODEL, help="learned model name or folder")
    p.set_defaults(handler=_compare)

    p = subparsers.add_parser(
        "report",
        help="one self-contained HTML page of a bench folder",
        description="Tables, BD-rates, plots and grids of OUT_DIR in one HTML file.",
    )
    p.add_argument("out_dir", help="folder written by 'gancodec bench'")
    p.add_argument("-o", "--output", default=None, help="HTML file (default OUT_DIR/report.html)")
    p.add_argument("--reference", default=None, help="folder of published curves to draw and compare against")
    p.add_argument("--reference-dataset", default=None, help="dataset rows to take from reference CSVs")
    p.add_argument("--max-bpp", type=_positive_float, default=None, help="right end of the bpp axis")
    p.add_argument(
        "--grid", action="append", metavar="PNG", help="extra comparison grid to include (repeatable)"
    )
    p.set_defaults(handler=_report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gancodec", description="gancodec evaluation tools")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UserError as exc:
        print(f"gancodec: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gancodec: interrupted (rerun the same command to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
