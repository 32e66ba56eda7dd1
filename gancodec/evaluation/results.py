"""Benchmark results on disk: the append-only journal, and the tables derived from it.

``results.jsonl`` holds one JSON object per (codec, setting, image) measurement and is only ever
appended to, one flushed line at a time, so an interrupted run loses at most the line being
written (a torn last line is ignored on reading) and a rerun skips everything already there.
Every other file (``per_image.csv``, ``summary.csv``, ``summary.json``) is derived from the
journal and written atomically (temporary file + rename).

A measurement is reused only when codec name, codec identity (library versions, fixed
parameters, model weights hash), setting, image name and image content hash all match, so
upgrading a library or retraining the model re-measures instead of mixing old numbers in.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import UserError
from ..imageio import atomic_output
from .bdrate import bd_rate_matrix, ms_ssim_db

RESULTS = "results.jsonl"
SUMMARY_JSON = "summary.json"
SUMMARY_CSV = "summary.csv"
PER_IMAGE_CSV = "per_image.csv"

# columns of per_image.csv, in order; optional measures are appended when present
RECORD_COLUMNS = [
    "codec",
    "setting",
    "image",
    "width",
    "height",
    "bytes",
    "bpp",
    "psnr",
    "ms_ssim",
    "hf_ratio",
    "kid",
    "encode_s",
    "decode_s",
    "peak_rss_mb",
    "codec_id",
    "image_sha",
]
OPTIONAL_MEASURES = ["lpips"]
# means in the summary; "ms_ssim_db" is derived from the mean MS-SSIM like CompressAI does
SUMMARY_MEASURES = ["bpp", "bytes", "psnr", "ms_ssim", "hf_ratio", "kid", "lpips", "encode_s", "decode_s"]
SUMMARY_COLUMNS = [
    "codec",
    "setting",
    "n",
    "bpp",
    "bytes",
    "psnr",
    "ms_ssim",
    "ms_ssim_db",
    "hf_ratio",
    "kid",
    "lpips",
    "encode_s",
    "decode_s",
    "peak_rss_mb",
    "lossless_images",
]


def setting_key(setting: float) -> str:
    """A stable text form of a setting, so 0.1 from JSON and 0.1 from argv match."""
    return repr(round(float(setting), 6))


def record_key(rec: dict) -> tuple:
    return (rec["codec"], rec["codec_id"], setting_key(rec["setting"]), rec["image"], rec["image_sha"])


def clean_number(value: float | None, digits: int = 6) -> float | None:
    """Finite floats rounded for the tables; inf/nan become ``None`` (JSON ``null``)."""
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def load_records(out_dir: Path) -> list[dict]:
    """All complete records of the journal; a torn or foreign line is skipped, not fatal."""
    path = Path(out_dir) / RESULTS
    if not path.is_file():
        return []
    records = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # the line an interrupted run was writing
            if isinstance(rec, dict) and {"codec", "codec_id", "setting", "image", "image_sha"} <= rec.keys():
                records.append(rec)
    return records


class Journal:
    """Appends records to ``results.jsonl``, one flushed line each."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / RESULTS
        # a torn last line from an interrupted run would swallow the next record: end it first
        if self.path.is_file() and self.path.stat().st_size:
            with open(self.path, "rb") as fh:
                fh.seek(-1, 2)
                torn = fh.read(1) != b"\n"
            if torn:
                with open(self.path, "ab") as fh:
                    fh.write(b"\n")
        self.fh = open(self.path, "a", encoding="utf-8")

    def append(self, records: Iterable[dict]) -> None:
        for rec in records:
            self.fh.write(json.dumps(rec, allow_nan=False) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _mean(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def summarise(records: Sequence[dict], codec_order: Sequence[str], n_images: int) -> list[dict]:
    """Mean of every measure per (codec, setting), in codec order then setting order.

    ``n`` counts the images measured; a row with ``n < n_images`` is marked ``complete: false``
    and is left out of curves and BD-rates (its mean would be over other images). PSNR of a
    lossless result is infinite: such images are counted in ``lossless_images`` and left out of
    the PSNR mean (``null`` when all were lossless).
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for rec in records:
        groups.setdefault((rec["codec"], setting_key(rec["setting"])), []).append(rec)
    order = {name: i for i, name in enumerate(codec_order)}
    rows = []
    for (codec, _), recs in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 99), float(kv[0][1]))):
        row: dict = {
            "codec": codec,
            "setting": recs[0]["setting"],
            "n": len(recs),
            "complete": len(recs) >= n_images,
        }
        for m in SUMMARY_MEASURES:
            row[m] = clean_number(_mean([r.get(m) for r in recs]))
        row["ms_ssim_db"] = clean_number(ms_ssim_db(row["ms_ssim"]) if row["ms_ssim"] is not None else None)
        row["peak_rss_mb"] = clean_number(max((r.get("peak_rss_mb") or 0) for r in recs), 1)
        row["lossless_images"] = sum(1 for r in recs if r.get("exact"))
        rows.append(row)
    return rows


def curves(rows: Sequence[dict], measure: str) -> dict[str, tuple[list[float], list[float]]]:
    """Per codec: (mean bpp, mean measure) over complete rows with a finite measure."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    for row in rows:
        if not row.get("complete", True) or row.get(measure) is None or row.get("bpp") is None:
            continue
        r, q = out.setdefault(row["codec"], ([], []))
        r.append(row["bpp"])
        q.append(row[measure])
    return out


def bd_tables(rows: Sequence[dict], method: str = "pchip") -> dict[str, dict]:
    """BD-rate (%) of every codec against every other, on PSNR and on MS-SSIM (dB)."""
    tables = {}
    for measure in ("psnr", "ms_ssim_db"):
        # a single point (PNG, or a one-setting run) has no curve to integrate
        cs = {k: v for k, v in curves(rows, measure).items() if len(v[0]) >= 2}
        tables[measure] = bd_rate_matrix(cs, method=method)
    return tables


def csv_text(rows: Sequence[dict], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row.get(c) for c in columns})
    return buf.getvalue()


def write_text(path: Path, text: str) -> None:
    with atomic_output(path, "w") as fh:
        fh.write(text)


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def load_summary(out_dir: str | Path) -> dict:
    """The ``summary.json`` a bench run wrote; a :class:`UserError` if the folder has none."""
    out_dir = Path(out_dir)
    path = out_dir / SUMMARY_JSON
    if not out_dir.is_dir():
        raise UserError(f"results folder not found: {out_dir}")
    if not path.is_file():
        raise UserError(f"{out_dir} has no {SUMMARY_JSON}: run 'gancodec bench ... -o {out_dir}' first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON: {exc}") from None
