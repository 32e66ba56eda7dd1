"""Human-readable results of a bench run: ``summary.md`` and one self-contained HTML page.

The HTML page (``gancodec report OUT_DIR``) embeds everything — tables, the RD plots as base64
PNG, the matched-size grids — so it can be mailed or attached to an issue as one file. The
Markdown summary (written by every bench run) holds the same tables for pasting into
BENCHMARKS.md.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path

from ..errors import UserError
from .bdrate import bd_rate_matrix
from .reference import ReferenceCurve, load_reference
from .results import curves, load_summary, write_text

MEASURES_DOC = [
    (
        "bpp",
        "bits per pixel of the encoded file, 8·bytes / (width·height), container headers included; "
        "means are over images (as CompressAI reports them).",
    ),
    (
        "PSNR",
        "peak signal-to-noise ratio over R, G and B (dB), mean over images; a lossless image has "
        "no PSNR and is counted apart.",
    ),
    (
        "MS-SSIM",
        "multi-scale structural similarity on RGB (plain SSIM below 161 px a side); the dB "
        "column is −10·log10(1 − mean MS-SSIM).",
    ),
    (
        "HF ratio",
        "energy of the finest luma detail (image minus its σ=1 px Gaussian blur) of the "
        "reconstruction over the original's: 1 = as much detail, < 1 = smoothed, > 1 = added "
        "(ringing, blocking, noise, synthetic texture). Says nothing about whether the detail "
        "is the right one.",
    ),
    (
        "KID",
        "kernel inception distance between the 32×32 patches of original and reconstruction, on 26 "
        "handcrafted texture/colour features (multi-scale derivative energies, sparsity, colour) instead "
        "of Inception features; per image, then averaged. 0 = patches distributed alike. No weights, "
        "fully reproducible, but not comparable with published (Inception) KID/FID, noisy per image, "
        "and blind to semantics.",
    ),
    (
        "LPIPS",
        "learned perceptual distance (AlexNet); only when the lpips package and its weights are "
        "already installed — never downloaded.",
    ),
    (
        "BD-rate",
        "Bjøntegaard delta rate: mean rate difference at equal quality over the common quality "
        "range, piecewise-cubic (pchip) interpolation in log-rate; negative = the row codec needs "
        "fewer bits than the column codec.",
    ),
    ("encode / decode s", "wall-clock seconds per image on one core (one thread per codec and per worker)."),
    (
        "peak MB",
        "highest resident memory of the measuring process during encode + decode (includes the "
        "Python process and loaded model).",
    ),
]


def _f(value, digits: int = 3, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}{suffix}"


def _pct(value) -> str:
    return "–" if value is None else f"{value:+.1f}%"


def _labels(summary: dict) -> dict[str, str]:
    return {c["name"]: c["label"] for c in summary.get("codecs", [])}


def results_table(summary: dict) -> tuple[list[str], list[list[str]]]:
    """Mean results per codec and setting."""
    has_lpips = any(r.get("lpips") is not None for r in summary.get("rows", []))
    knobs = {c["name"]: c["knob"] for c in summary.get("codecs", [])}
    header = ["codec", "setting", "bpp", "PSNR dB", "MS-SSIM", "MS-SSIM dB", "HF ratio", "KID"]
    header += ["LPIPS"] if has_lpips else []
    header += ["encode s", "decode s", "peak MB", "images"]
    rows = []
    for r in summary.get("rows", []):
        psnr = _f(r["psnr"], 2) if r["psnr"] is not None or not r.get("lossless_images") else "lossless"
        setting = f"{knobs.get(r['codec'], 'q')} {r['setting']:g}"
        row = [
            r["codec"],
            setting,
            _f(r["bpp"], 4),
            psnr,
            _f(r["ms_ssim"], 4),
            _f(r["ms_ssim_db"], 2),
            _f(r["hf_ratio"], 3),
            _f(r["kid"], 3),
        ]
        row += [_f(r.get("lpips"), 4)] if has_lpips else []
        row += [
            _f(r["encode_s"], 3),
            _f(r["decode_s"], 3),
            _f(r["peak_rss_mb"], 0),
            f"{r['n']}" + ("" if r.get("complete", True) else " (incomplete)"),
        ]
        rows.append(row)
    return header, rows


def codec_table(summary: dict) -> tuple[list[str], list[list[str]]]:
    """One line per codec: what exactly ran, the rates it covered, its mean speed."""
    header = ["codec", "settings", "bpp range", "encode s (mean)", "decode s (mean)", "peak MB", "identity"]
    rows = []
    for c in summary.get("codecs", []):
        rs = [r for r in summary.get("rows", []) if r["codec"] == c["name"]]
        bpps = [r["bpp"] for r in rs if r["bpp"] is not None]
        enc = [r["encode_s"] for r in rs if r["encode_s"] is not None]
        dec = [r["decode_s"] for r in rs if r["decode_s"] is not None]
        peak = [r["peak_rss_mb"] for r in rs if r["peak_rss_mb"] is not None]
        settings = c["settings"]
        srange = (
            f"{c['knob']} {settings[0]:g}"
            if len(settings) == 1
            else f"{c['knob']} {settings[0]:g}…{settings[-1]:g} ({len(settings)})"
        )
        rows.append(
            [
                c["name"],
                srange,
                f"{min(bpps):.3f}–{max(bpps):.3f}" if bpps else "–",
                _f(sum(enc) / len(enc) if enc else None, 3),
                _f(sum(dec) / len(dec) if dec else None, 3),
                _f(max(peak) if peak else None, 0),
                c["identity"],
            ]
        )
    return header, rows


def bd_table(table: dict[str, dict[str, float | None]]) -> tuple[list[str], list[list[str]]]:
    names = list(table)
    anchors = list(next(iter(table.values())).keys()) if table else []
    header = ["codec \\ anchor", *anchors]
    rows = [[n, *[_pct(table[n].get(a)) for a in anchors]] for n in names]
    return header, rows


def reference_bd_tables(summary: dict, reference: Sequence[ReferenceCurve], method: str) -> dict[str, dict]:
    """BD-rate of our codecs (rows) against each published curve (columns)."""
    from .bdrate import ms_ssim_db

    out = {}
    for measure in ("psnr", "ms_ssim_db"):
        ours = {k: v for k, v in curves(summary.get("rows", []), measure).items() if len(v[0]) >= 2}
        anchors = {}
        for ref in reference:
            values = ref.measures.get("ms_ssim" if measure == "ms_ssim_db" else measure)
            if not values:
                continue
            pts = [
                (b, ms_ssim_db(v) if measure == "ms_ssim_db" else v)
                for b, v in zip(ref.bpp, values)
                if b is not None and v is not None
            ]
            if len(pts) >= 2:
                anchors[ref.name] = ([p[0] for p in pts], [p[1] for p in pts])
        if ours and anchors:
            out[measure] = bd_rate_matrix(ours, anchors, method=method)
    return out


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_summary(summary: dict) -> str:
    run = summary.get("run", {})
    parts = [f"# Benchmark: {summary.get('dataset', '')} ({len(summary.get('images', []))} images)", ""]
    if run.get("command"):
        parts += ["```", run["command"], "```", ""]
    parts += [
        f"Run: {run.get('seconds', '?')} s with {run.get('jobs', '?')} job(s), "
        f"{run.get('threads', '?')} thread(s) each, {run.get('cpu_count', '?')} CPUs; "
        f"{run.get('new_records', 0)} new and {run.get('reused_records', 0)} reused measurements.",
        "",
    ]
    for name, reason in summary.get("skipped", {}).items():
        parts.append(f"- skipped **{name}**: {reason}")
    if summary.get("skipped"):
        parts.append("")
    parts += [
        "## Codecs",
        "",
        _md_table(*codec_table(summary)),
        "",
        "## Mean results",
        "",
        _md_table(*results_table(summary)),
        "",
    ]
    bd = summary.get("bd_rate", {})
    for measure, title in (("psnr", "PSNR"), ("ms_ssim_db", "MS-SSIM (dB)")):
        if bd.get(measure):
            parts += [
                f"## BD-rate on {title} ({bd.get('method', 'pchip')}; row vs column, "
                "negative = row saves bits)",
                "",
                _md_table(*bd_table(bd[measure])),
                "",
            ]
    parts += [
        "## Plots",
        "",
        "![bpp vs PSNR](plots/rd-psnr.png)",
        "![bpp vs MS-SSIM](plots/rd-msssim.png)",
        "![bpp vs HF ratio](plots/rd-hf-ratio.png)",
        "![bpp vs KID](plots/rd-kid.png)",
        "",
        "(made by `gancodec plot OUT_DIR`)",
        "",
        "## Measures",
        "",
    ]
    parts += [f"- **{name}** — {text}" for name, text in MEASURES_DOC]
    if summary.get("errors"):
        parts += ["", "## Errors", ""] + [
            f"- {e['codecs']} {e['setting']} {e['image']}: {e['error']}" for e in summary["errors"]
        ]
    return "\n".join(parts) + "\n"


# -- HTML ----------------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1300px;
     padding:0 1em;color:#222;line-height:1.4}
table{border-collapse:collapse;font-size:12.5px;margin:.6em 0 1.4em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f2f2f2} td:first-child,th:first-child{text-align:left}
td.good{background:#e3f4e3} td.bad{background:#f9e0e0}
img{max-width:100%;border:1px solid #ddd;margin:.4em 0}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:1em}
code,pre{background:#f6f6f6;padding:2px 4px} pre{padding:.7em;overflow-x:auto}
.note{color:#666;font-size:13px}
"""


def _html_table(header: list[str], rows: list[list[str]], colour_pct: bool = False) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ""
            if colour_pct and i > 0 and cell.endswith("%"):
                cls = ' class="good"' if cell.startswith("-") else ' class="bad"'
            cells.append(f"<td{cls}>{html.escape(cell)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out) + "</table>"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def build_report(
    out_dir: str | Path,
    output: str | Path | None = None,
    reference_dir: str | Path | None = None,
    reference_dataset: str | None = None,
    max_bpp: float | None = None,
    grids: Sequence[str | Path] = (),
) -> Path:
    """Write the single-file HTML report of a bench folder (default ``OUT_DIR/report.html``)."""
    from .plot import plot_rd

    out_dir = Path(out_dir)
    summary = load_summary(out_dir)
    output = Path(output) if output else out_dir / "report.html"
    dataset = reference_dataset or summary.get("dataset") or None
    reference = load_reference(reference_dir, dataset) if reference_dir else []
    plots = [p for p in plot_rd(summary, out_dir / "plots", reference, max_bpp) if p.suffix == ".png"]
    run = summary.get("run", {})
    title = f"gancodec benchmark — {summary.get('dataset', '')}"
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(summary.get('images', []))} images from "
        f"<code>{html.escape(summary.get('data', ''))}</code>; {run.get('seconds', '?')} s with "
        f"{run.get('jobs', '?')} job(s) × {run.get('threads', '?')} thread(s).</p>",
    ]
    if run.get("command"):
        body.append(f"<pre>{html.escape(run['command'])}</pre>")
    if summary.get("skipped"):
        body.append(
            "<h2>Skipped codecs</h2><ul>"
            + "".join(
                f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in summary["skipped"].items()
            )
            + "</ul>"
        )
    if not summary.get("complete", True):
        body.append(
            '<p class="note">This run is incomplete: rows marked "incomplete" are left out of '
            "curves and BD-rates. Rerun the same bench command to finish it.</p>"
        )
    body += ["<h2>Codecs</h2>", _html_table(*codec_table(summary))]
    body.append("<h2>Rate–quality curves</h2>")
    if reference:
        body.append(
            '<p class="note">Grey dashed lines are <b>published figures</b> from '
            f"<code>{html.escape(str(reference_dir))}</code> (other software versions, other "
            "machines), drawn for context only.</p>"
        )
    body.append('<div class="plots">' + "".join(_img(p, p.stem) for p in plots) + "</div>")
    bd = summary.get("bd_rate", {})
    for measure, name in (("psnr", "PSNR"), ("ms_ssim_db", "MS-SSIM (dB)")):
        if bd.get(measure):
            body += [
                f"<h2>BD-rate on {name}</h2>",
                f'<p class="note">Row codec against column codec ({html.escape(bd.get("method", "pchip"))}); '
                "negative = the row codec needs fewer bits for the same quality.</p>",
                _html_table(*bd_table(bd[measure]), colour_pct=True),
            ]
    if reference:
        for measure, table in reference_bd_tables(summary, reference, bd.get("method", "pchip")).items():
            name = "PSNR" if measure == "psnr" else "MS-SSIM (dB)"
            body += [
                f"<h2>BD-rate on {name} against published curves</h2>",
                '<p class="note">Our measurements (rows) against published numbers (columns); '
                "only indicative, since the published figures come from other setups.</p>",
                _html_table(*bd_table(table), colour_pct=True),
            ]
    grid_files: list[Path] = []
    for g in [Path(g) for g in grids] + sorted((out_dir / "grids").glob("*.png")):
        if not g.is_file():
            raise UserError(f"comparison grid not found: {g}")
        if g.resolve() not in {f.resolve() for f in grid_files}:
            grid_files.append(g)
    if grid_files:
        body.append("<h2>Matched-size comparisons</h2>")
        for g in grid_files:
            caption = g.name
            sidecar = g.with_suffix(".json")
            if sidecar.is_file():
                try:
                    info = json.loads(sidecar.read_text(encoding="utf-8"))
                    caption = (
                        f"{Path(info['image']).name} at ≤ {info['target_bytes']:,} bytes "
                        f"({info['target_bpp']} bpp)"
                    )
                except (ValueError, KeyError):
                    pass
            body += [f"<h3>{html.escape(caption)}</h3>", _img(g, caption)]
    body += [
        "<h2>Mean results per setting</h2>",
        _html_table(*results_table(summary)),
        "<h2>What the measures mean</h2><ul>"
        + "".join(f"<li><b>{html.escape(n)}</b> — {html.escape(t)}</li>" for n, t in MEASURES_DOC)
        + "</ul>",
    ]
    if summary.get("errors"):
        body.append(
            "<h2>Errors</h2><ul>"
            + "".join(f"<li>{html.escape(str(e))}</li>" for e in summary["errors"])
            + "</ul>"
        )
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    write_text(output, page)
    return output
