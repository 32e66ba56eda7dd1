"""Rate–distortion and rate–realism curves of a bench run, as PNG and SVG (``gancodec plot``).

One figure per measure — bpp against PSNR, MS-SSIM (in dB), the high-frequency energy ratio,
patch KID and, when measured, LPIPS — with one line per codec through its mean points (only
settings measured on every image). Published curves (:mod:`.reference`) can be drawn for
context as thin dashed grey lines labelled "(published)"; they are only drawn on measures they
share with ours (PSNR, MS-SSIM, LPIPS), as realism numbers from other feature spaces are not
comparable. PNG (lossless) is a single point far to the right and is left out of the curves.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display

import matplotlib.pyplot as plt  # noqa: E402

from ..imageio import atomic_output  # noqa: E402
from .bdrate import ms_ssim_db  # noqa: E402
from .reference import ReferenceCurve  # noqa: E402
from .results import curves  # noqa: E402

# (summary column, name, axis label, file stem, y-scale)
MEASURES = [
    ("psnr", "PSNR", "PSNR (RGB) [dB], higher is better", "rd-psnr", "linear"),
    (
        "ms_ssim_db",
        "MS-SSIM",
        "MS-SSIM [dB] = −10·log10(1 − MS-SSIM)\nhigher is better",
        "rd-msssim",
        "linear",
    ),
    (
        "hf_ratio",
        "high-frequency energy ratio",
        "HF energy ratio\n1 = as much fine detail as the original",
        "rd-hf-ratio",
        "log",
    ),
    (
        "kid",
        "patch KID (handcrafted features)",
        "patch KID, handcrafted features\nlower = more like the original",
        "rd-kid",
        "symlog",
    ),
    ("lpips", "LPIPS", "LPIPS (AlexNet), lower is better", "rd-lpips", "linear"),
]
CODEC_STYLE = {
    "gancodec": ("#d62728", "-", "o"),
    "gancodec-gan": ("#8c1aff", "-", "D"),
    "jpeg": ("#1f77b4", "-", "s"),
    "webp": ("#2ca02c", "-", "^"),
    "avif": ("#ff7f0e", "-", "v"),
    "jxl": ("#17becf", "-", "P"),
    "jpeg2000": ("#8c564b", "-", "X"),
}
REFERENCE_MARKERS = "os^vD<>phx*"


def _reference_points(curve: ReferenceCurve, measure: str) -> tuple[list[float], list[float]]:
    source = "ms_ssim" if measure == "ms_ssim_db" else measure
    values = curve.measures.get(source)
    if values is None:
        return [], []
    pts = []
    for b, v in zip(curve.bpp, values):
        if b is None or v is None:
            continue
        v = ms_ssim_db(v) if measure == "ms_ssim_db" else v
        if math.isfinite(v):
            pts.append((b, v))
    pts.sort()
    return [p[0] for p in pts], [p[1] for p in pts]


def _save(fig, path: Path, fmt: str) -> None:
    meta = {"Date": None} if fmt == "svg" else {"Software": None}  # no timestamps: reproducible files
    with atomic_output(path, "wb") as fh:
        fig.savefig(fh, format=fmt, dpi=150, bbox_inches="tight", metadata=meta)


def plot_rd(
    summary: dict,
    out_dir: str | Path,
    reference: list[ReferenceCurve] | None = None,
    max_bpp: float | None = None,
    formats: tuple[str, ...] = ("png", "svg"),
) -> list[Path]:
    """Write ``rd-<measure>.<fmt>`` for every measure the summary has; returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = {c["name"]: c["label"] for c in summary.get("codecs", [])}
    lossless = {c["name"] for c in summary.get("codecs", []) if c.get("lossless")}
    rows = summary.get("rows", [])
    dataset = summary.get("dataset") or "images"
    n_images = len(summary.get("images", []))
    written: list[Path] = []
    for measure, name, ylabel, stem, yscale in MEASURES:
        ours = {k: v for k, v in curves(rows, measure).items() if k not in lossless}
        if not ours:
            continue
        top = max_bpp or max(max(r) for r, _ in ours.values()) * 1.05
        fig, ax = plt.subplots(figsize=(7.5, 5.2))
        for i, curve in enumerate(reference or []):
            xs, ys = _reference_points(curve, measure)
            keep = [(x, y) for x, y in zip(xs, ys) if x <= top]
            if len(keep) < 1:
                continue
            ax.plot(
                *zip(*keep),
                linestyle="--",
                linewidth=1,
                color="0.55",
                alpha=0.9,
                marker=REFERENCE_MARKERS[i % len(REFERENCE_MARKERS)],
                markersize=3.5,
                markerfacecolor="none",
                label=curve.label,
            )
        for j, (codec, (xs, ys)) in enumerate(ours.items()):
            colour, style, marker = CODEC_STYLE.get(codec, (f"C{j % 10}", "-", "o"))
            pts = sorted(zip(xs, ys))
            ax.plot(
                *zip(*pts),
                linestyle=style,
                color=colour,
                marker=marker,
                markersize=4.5,
                linewidth=1.8,
                label=labels.get(codec, codec),
            )
        if measure == "hf_ratio":
            ax.axhline(1.0, color="black", linewidth=0.8, linestyle=":", label="original (ratio 1)")
        if yscale == "symlog":
            ax.set_yscale("symlog", linthresh=0.01)
        elif yscale == "log":
            ax.set_yscale("log")
        ax.set_xlim(0, top)
        ax.set_xlabel("bits per pixel (from the encoded file size)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{dataset} ({n_images} image{'s' if n_images != 1 else ''}): rate vs {name}")
        ax.grid(True, alpha=0.3)
        if reference:  # many published curves: keep the legend off the data
            ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        else:
            ax.legend(fontsize=7.5, loc="best", framealpha=0.85)
        for fmt in formats:
            path = out_dir / f"{stem}.{fmt}"
            _save(fig, path, fmt)
            written.append(path)
        plt.close(fig)
    return written
