"""BD-rates between codec curves of different `gancodec bench` runs on the same images: an
encoder option that cannot share a run with the default (``bench --refine``) against it.

    python benchmarks/bd_between_runs.py bench-kodak-plain:gancodec bench-kodak-refine30:gancodec \
        bench-kodak-plain:jpeg bench-kodak-plain:webp bench-kodak-plain:jxl

Each argument is RUN_DIR:CODEC, a curve from that run's ``summary.json`` (mean over the images
per setting). Prints, for every curve, mean bpp and PSNR per setting, then the BD-rate (pchip, %)
of every curve against every other on PSNR and on MS-SSIM (dB). The runs must cover the same
images (checked by name and content hash in ``results.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gancodec.evaluation.bdrate import bd_rate_matrix
from gancodec.evaluation.results import load_summary


def _curve(spec: str) -> tuple[str, dict]:
    run, _, codec = spec.rpartition(":")
    if not run or not codec:
        raise SystemExit(f"expected RUN_DIR:CODEC, got {spec!r}")
    rows = [r for r in load_summary(run)["rows"] if r["codec"] == codec and r.get("complete", True)]
    if len(rows) < 2:
        raise SystemExit(f"{spec}: fewer than two complete settings")
    rows.sort(key=lambda r: r["bpp"])
    images = {(r["image"], r["image_sha"]) for r in map(json.loads, Path(run, "results.jsonl").open())
              if r["codec"] == codec}
    return spec, {"rows": rows, "images": images}


def print_bd_tables(curves: dict[str, list[dict]]) -> None:
    """The BD-rate (%) of every curve (rows with bpp, psnr, ms_ssim_db) against every other, as
    Markdown tables on PSNR and on MS-SSIM (dB)."""
    names = list(curves)
    for measure in ("psnr", "ms_ssim_db"):
        table = bd_rate_matrix({n: ([r["bpp"] for r in c], [r[measure] for r in c]) for n, c in curves.items()})
        print(f"\nBD-rate on {measure} (row against column, %):")
        print("| | " + " | ".join(names) + " |")
        print("|---" * (len(names) + 1) + "|")
        for test in names:
            cells = ["–" if table[test][a] is None else f"{table[test][a]:+.1f}" for a in names]
            print(f"| {test} | " + " | ".join(cells) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("curves", nargs="+", metavar="RUN_DIR:CODEC")
    args = ap.parse_args()
    specs = list(dict.fromkeys(args.curves))
    curves = dict(_curve(s) for s in specs)
    first = next(iter(curves.values()))["images"]
    for spec, c in curves.items():
        if c["images"] != first:
            raise SystemExit(f"{spec} covers other images than {specs[0]}")
    for spec, c in curves.items():
        points = ", ".join(f"{r['bpp']:.4f}/{r['psnr']:.2f}" for r in c["rows"])
        print(f"{spec}: bpp/PSNR {points}")
    print_bd_tables({spec: c["rows"] for spec, c in curves.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
