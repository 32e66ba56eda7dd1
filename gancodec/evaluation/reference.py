"""Published rate–quality curves, read from a folder, to draw beside our own for context.

Two layouts are understood (the ones in the team's ``shared/reference`` folder):

* ``*.json`` in CompressAI's results format — ``{"name": ..., "results": {"bpp": [...],
  "psnr-rgb": [...], "ms-ssim-rgb": [...]}}`` (CompressAI's published Kodak numbers, BPG, AV1 …);
* ``*.csv`` with a ``bpp`` column, quality columns (``PSNR``, ``MS-SSIM``, ``LPIPS``) and
  optionally a ``dataset`` column (HiFiC's published table); only rows of the requested dataset
  are used, and the curve is named after the folder holding the file.

These are other people's measurements with other software versions; plots and tables label
them "published" and they never enter our own BD-rate matrix (a separate table compares our
codecs against them).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

# column names in published files → our measure names
_ALIASES = {
    "psnr-rgb": "psnr",
    "psnr": "psnr",
    "ms-ssim-rgb": "ms_ssim",
    "ms-ssim": "ms_ssim",
    "ms_ssim": "ms_ssim",
    "lpips": "lpips",
}
_FOLDER_NAMES = {"hific": "HiFiC"}
# dataset names that may appear in a reference file's path (``compressai-kodak/``)
KNOWN_DATASETS = ("kodak", "clic", "div2k", "tecnick", "clic2020", "clic2021")


@dataclass
class ReferenceCurve:
    name: str
    source: str  # file it came from, relative to the reference folder
    bpp: list[float]
    measures: dict[str, list[float | None]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name} (published)"


def _number(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if value == value else None  # nan → None


def _from_json(path: Path, root: Path) -> ReferenceCurve | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    results = obj.get("results") if isinstance(obj, dict) else None
    if not isinstance(results, dict) or "bpp" not in results:
        return None
    bpp = [_number(v) for v in results["bpp"]]
    measures = {}
    for key, values in results.items():
        if key.lower() in _ALIASES and isinstance(values, list) and len(values) == len(bpp):
            measures[_ALIASES[key.lower()]] = [_number(v) for v in values]
    return ReferenceCurve(str(obj.get("name") or path.stem), path.relative_to(root).as_posix(), bpp, measures)


def _from_csv(path: Path, root: Path, dataset: str | None) -> ReferenceCurve | None:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError):
        return None
    if not rows or "bpp" not in rows[0]:
        return None
    if dataset and "dataset" in rows[0]:
        rows = [r for r in rows if (r.get("dataset") or "").lower() == dataset.lower()]
    rows = [r for r in rows if _number(r["bpp"]) is not None]
    if not rows:
        return None
    rows.sort(key=lambda r: _number(r["bpp"]))
    measures = {}
    for col in rows[0]:
        if col and col.lower() in _ALIASES:
            measures[_ALIASES[col.lower()]] = [_number(r[col]) for r in rows]
    folder = path.parent.name if path.parent != root else path.stem
    name = _FOLDER_NAMES.get(folder.lower(), folder)
    return ReferenceCurve(
        name, path.relative_to(root).as_posix(), [_number(r["bpp"]) for r in rows], measures
    )


def load_reference(folder: str | Path, dataset: str | None = "kodak") -> list[ReferenceCurve]:
    """Every curve found under ``folder`` (recursively), sorted by name.

    A JSON file is used when its path names the dataset (CompressAI keeps one folder per
    dataset, ``compressai-kodak/``) or names no known dataset at all; CSV rows are filtered by
    their ``dataset`` column.
    """
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"reference folder not found: {root}")
    curves = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() == ".json":
            rel = path.relative_to(root).as_posix().lower()
            if dataset and dataset.lower() not in rel and any(d in rel for d in KNOWN_DATASETS):
                continue
            curve = _from_json(path, root)
        elif path.suffix.lower() == ".csv":
            curve = _from_csv(path, root, dataset)
        else:
            continue
        if curve and curve.measures:
            curves.append(curve)
    return sorted(curves, key=lambda c: c.name.lower())
