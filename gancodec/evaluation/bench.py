"""The benchmark runner behind ``gancodec bench``: every codec × setting × image, measured once.

For each (codec, setting, image) it records the real encoded size (bpp = 8·bytes / pixels),
encode and decode seconds, the peak resident memory of the process during encode + decode,
PSNR (RGB), MS-SSIM and the realism measures of :mod:`.realism`. Codecs sharing a bitstream
(``gancodec`` and ``gancodec-gan``) are encoded once and decoded by each; both records carry
that one encode time.

Work is split into tasks of one (image, bitstream, setting); ``jobs > 1`` runs them in that many
worker processes (``spawn``, so no thread pool state is forked), each loading the model once.
Results stream into the append-only journal of :mod:`.results`, so an interrupted run resumes
where it stopped and a rerun only measures what is missing.

Timing is per core: PyTorch runs with ``threads`` threads (default 1) and the classical codecs
are configured single-threaded (see :mod:`.codecs`), so ``--jobs`` scales throughput without
changing the per-image times (as long as jobs ≤ free cores).

Peak memory is the process's peak RSS during encode + decode, reset before each measurement
through ``/proc/self/clear_refs`` (Linux ≥ 4.0). It includes the interpreter, libraries and the
loaded model (a few hundred MB of baseline); where the reset is impossible it falls back to
``ru_maxrss``, the peak since the process started, and says so in ``summary.json``.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..imageio import IMAGE_SUFFIXES, load_rgb_array, open_image
from ..metrics import ms_ssim, psnr
from ..refine import check_steps
from . import realism
from .codecs import DEFAULT_MODEL, Codec, make_codec, parse_codec_list, resolve_codecs
from .results import (
    OPTIONAL_MEASURES,
    PER_IMAGE_CSV,
    RECORD_COLUMNS,
    SUMMARY_COLUMNS,
    SUMMARY_CSV,
    SUMMARY_JSON,
    Journal,
    bd_tables,
    clean_number,
    csv_text,
    load_records,
    record_key,
    setting_key,
    summarise,
    write_json,
    write_text,
)

FORMAT = "gancodec-bench/1"


# -- inputs --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageEntry:
    name: str  # path relative to the data folder, with "/" separators
    path: str
    sha: str  # first 16 hex digits of the file's SHA-256
    width: int
    height: int


def list_images(data: str | Path, limit: int | None = None) -> list[ImageEntry]:
    """The images of a folder (sorted by name, not recursive) or a single image file."""
    data = Path(data)
    if not data.exists():
        raise UserError(f"data not found: {data}")
    if data.is_dir():
        files = sorted(p for p in data.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {data}")
        root = data
    else:
        files, root = [data], data.parent
    if limit is not None:
        if limit < 1:
            raise UserError("--limit must be at least 1")
        files = files[:limit]
    entries = []
    for f in files:
        with open_image(f) as img:  # also turns an unreadable file into a UserError now, not mid-run
            w, h = img.size
        sha = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
        entries.append(ImageEntry(f.relative_to(root).as_posix(), str(f), sha, w, h))
    return entries


def parse_settings(items: Sequence[str] | None) -> dict[str, list[float]]:
    """``["jpeg=10,50,90", "avif=30"]`` → ``{"jpeg": [10, 50, 90], "avif": [30]}``."""
    out: dict[str, list[float]] = {}
    for item in items or ():
        name, sep, values = item.partition("=")
        name = name.strip().lower()
        if not sep or not name:
            raise UserError(f"--settings wants CODEC=V1,V2,..., got {item!r}")
        parse_codec_list(name)  # unknown names are a user error
        try:
            out[name] = sorted({float(v) for v in values.split(",") if v.strip()})
        except ValueError:
            raise UserError(f"--settings {name}: values must be numbers, got {values!r}") from None
        if not out[name]:
            raise UserError(f"--settings {name}: no values given")
    return out


def _check_settings(codec: Codec, values: list[float]) -> list[float]:
    lo, hi = codec.range()
    bad = [v for v in values if not lo <= v <= hi]
    if bad:
        raise UserError(f"--settings {codec.name}: {bad} outside {codec.knob} range {lo:g}..{hi:g}")
    return values


# -- memory --------------------------------------------------------------------------------------
def _read_status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")  # "5" resets the peak RSS (VmHWM) to the current RSS
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak resident memory (MiB) of this process during a ``with`` block."""

    method = "vmhwm"  # or "ru_maxrss" where the peak cannot be reset

    def __enter__(self) -> PeakMemory:
        if not _reset_peak_rss():
            PeakMemory.method = "ru_maxrss"
        self.peak_mb: float | None = None
        return self

    def __exit__(self, *exc) -> None:
        kb = _read_status_kb("VmHWM") if PeakMemory.method == "vmhwm" else None
        if kb is None:
            try:
                import resource

                kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                kb = kb // 1024 if sys.platform == "darwin" else kb  # bytes on macOS, kB on Linux
            except ImportError:  # Windows
                kb = None
        self.peak_mb = None if kb is None else kb / 1024


# -- one task: encode once, decode with every codec that shares the bitstream ---------------------
@dataclass(frozen=True)
class Task:
    image: ImageEntry
    setting: float
    codecs: tuple[str, ...]  # all with the same encode_key; the first one encodes


class _WorkerState:
    def __init__(self, codec_names: Sequence[str], model: str, threads: int, use_lpips: bool, refine: int = 0):
        import torch

        torch.set_num_threads(max(1, threads))
        self.codecs: dict[str, Codec] = {}
        for name in codec_names:
            codec = make_codec(name, model, refine)
            reason = codec.why_unavailable()  # also registers plugins (JPEG XL) in this process
            if reason:
                raise RuntimeError(f"{name} is not available in a worker: {reason}")
            self.codecs[name] = codec
        self.lpips = realism.LPIPS() if use_lpips else None
        self.original_key: str | None = None

    def original(self, image: ImageEntry) -> tuple[np.ndarray, np.ndarray]:
        # tasks arrive image by image, so caching the last original saves most of the reloads
        if self.original_key != image.sha + image.path:
            rgb = load_rgb_array(image.path)
            self.cached = (rgb, realism.patch_features(rgb))
            self.original_key = image.sha + image.path
        return self.cached


_STATE: _WorkerState | None = None


def _init_worker(codec_names: Sequence[str], model: str, threads: int, use_lpips: bool, refine: int = 0) -> None:
    global _STATE
    _STATE = _WorkerState(codec_names, model, threads, use_lpips, refine)


def _measure(state: _WorkerState, task: Task) -> list[dict]:
    rgb, ref_features = state.original(task.image)
    h, w = rgb.shape[:2]
    first = state.codecs[task.codecs[0]]
    with PeakMemory() as enc_mem:
        t0 = time.perf_counter()
        data = first.encode(rgb, task.setting)
        encode_s = time.perf_counter() - t0
    records = []
    for name in task.codecs:
        codec = state.codecs[name]
        with PeakMemory() as dec_mem:
            t0 = time.perf_counter()
            out = codec.decode(data)
            decode_s = time.perf_counter() - t0
        if out.shape != rgb.shape:
            raise RuntimeError(f"{name} decoded {task.image.name} to shape {out.shape}, expected {rgb.shape}")
        exact = bool(np.array_equal(out, rgb))
        peaks = [m.peak_mb for m in (enc_mem, dec_mem) if m.peak_mb is not None]
        rec = {
            "codec": name,
            "codec_id": codec.identity(),
            "setting": float(task.setting),
            "image": task.image.name,
            "image_sha": task.image.sha,
            "width": w,
            "height": h,
            "bytes": len(data),
            "bpp": clean_number(8 * len(data) / (h * w), 9),
            "psnr": None if exact else clean_number(psnr(rgb, out)),
            "exact": exact,
            "ms_ssim": clean_number(ms_ssim(rgb, out)),
            "hf_ratio": clean_number(realism.hf_ratio(rgb, out)),
            "kid": clean_number(realism.kid(ref_features, realism.patch_features(out))),
            "encode_s": clean_number(encode_s, 5),
            "decode_s": clean_number(decode_s, 5),
            "peak_rss_mb": clean_number(max(peaks), 1) if peaks else None,
        }
        if state.lpips is not None:
            rec["lpips"] = clean_number(state.lpips(rgb, out))
        records.append(rec)
    return records


def _run_task(task: Task) -> tuple[Task, list[dict], str | None]:
    """Runs in a worker; failures come back as text so one bad setting cannot stop the run."""
    assert _STATE is not None, "worker not initialised"
    try:
        return task, _measure(_STATE, task), None
    except Exception as exc:  # reported per task in summary.json and on stderr
        return task, [], f"{type(exc).__name__}: {exc}"


# -- the run -------------------------------------------------------------------------------------
def _plan(
    images: Sequence[ImageEntry], codecs: Sequence[Codec], settings: dict[str, list[float]], done: set[tuple]
) -> tuple[list[Task], set[tuple]]:
    """Tasks still to run (image-major, so workers reuse the loaded original) and every planned key."""
    groups: dict[str, list[Codec]] = {}
    for codec in codecs:
        groups.setdefault(codec.encode_key, []).append(codec)
    ids = {c.name: c.identity() for c in codecs}
    tasks: list[Task] = []
    planned: set[tuple] = set()
    for image in images:
        for members in groups.values():
            all_settings = sorted({s for c in members for s in settings[c.name]})
            for s in all_settings:
                todo = []
                for c in members:
                    if s not in settings[c.name]:
                        continue
                    key = (c.name, ids[c.name], setting_key(s), image.name, image.sha)
                    planned.add(key)
                    if key not in done:
                        todo.append(c.name)
                if todo:
                    tasks.append(Task(image, s, tuple(todo)))
    return tasks, planned


def _stderr(msg: str) -> None:
    print(f"gancodec bench: {msg}", file=sys.stderr)


def run_bench(
    data: str | Path,
    out_dir: str | Path,
    codecs: Sequence[str] | str | None = None,
    *,
    jobs: int = 1,
    settings: dict[str, list[float]] | None = None,
    model: str = DEFAULT_MODEL,
    limit: int | None = None,
    threads: int = 1,
    progress: bool = True,
    lpips: bool = True,
    bd_method: str = "pchip",
    grid_bpp: Sequence[float] = (),
    grid_image: str | None = None,
    command: str | None = None,
    log: Callable[[str], None] = _stderr,
    refine: int = 0,
) -> dict:
    """Measure, write ``results.jsonl``, ``per_image.csv``, ``summary.{csv,json,md}``; return the summary.

    ``codecs`` is a list of names or a comma-separated string (default: all). ``lpips=True``
    means "if it is installed locally"; it is never downloaded. ``refine`` > 0 encodes the
    learned codec with that many latent refinement steps (:mod:`gancodec.refine`).
    """
    started = time.time()
    try:
        refine = check_steps(refine)  # as compress checks it, before any worker starts
    except ValueError as exc:
        raise UserError(str(exc)) from None
    names = parse_codec_list(codecs if isinstance(codecs, str) or codecs is None else ",".join(codecs))
    if jobs < 1:
        raise UserError("--jobs must be at least 1")
    images = list_images(data, limit)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"output path is a file, not a folder: {out_dir}")
    settings = dict(settings or {})
    unknown = set(settings) - set(names)
    if unknown:
        raise UserError(f"--settings for codec(s) not being run: {', '.join(sorted(unknown))}")

    ready, skipped = resolve_codecs(names, model, refine)
    for name, reason in skipped.items():
        log(f"skipped {name}: {reason}")
    if not ready:
        raise UserError("none of the requested codecs can run here (see the reasons above)")
    sweep = {c.name: _check_settings(c, settings.get(c.name) or c.settings()) for c in ready}
    lpips_reason = realism.lpips_unavailable() if lpips else "LPIPS turned off (--no-lpips)"
    use_lpips = lpips_reason is None

    out_dir.mkdir(parents=True, exist_ok=True)
    journal_records = load_records(out_dir)
    if use_lpips:  # records measured without LPIPS are re-measured once it becomes available
        journal_records = [r for r in journal_records if "lpips" in r]
    done = {record_key(r) for r in journal_records}
    tasks, planned = _plan(images, ready, sweep, done)
    n_planned = len(planned)
    reused = len(planned & done)
    if reused:
        log(f"reusing {reused} of {n_planned} results already in {out_dir}")

    errors: list[dict] = []
    new_records = 0
    with Journal(out_dir) as journal:

        def accept(task: Task, recs: list[dict], error: str | None) -> None:
            nonlocal new_records
            if error:
                errors.append(
                    {
                        "image": task.image.name,
                        "codecs": list(task.codecs),
                        "setting": task.setting,
                        "error": error,
                    }
                )
                log(f"failed {','.join(task.codecs)} {task.setting:g} on {task.image.name}: {error}")
            journal.append(recs)
            new_records += len(recs)

        _execute(tasks, [c.name for c in ready], model, jobs, threads, use_lpips, progress, accept, refine)

    summary = build_summary(
        out_dir,
        images,
        ready,
        skipped,
        sweep,
        planned,
        bd_method=bd_method,
        lpips_reason=lpips_reason,
        run={
            "command": command,
            "jobs": jobs,
            "threads": threads,
            "seconds": round(time.time() - started, 1),
            "tasks_run": len(tasks),
            "new_records": new_records,
            "reused_records": reused,
            "planned_records": n_planned,
            "memory_method": PeakMemory.method,
            "python": sys.version.split()[0],
            "platform": sys.platform,
            "cpu_count": os.cpu_count(),
        },
        errors=errors,
    )
    if grid_bpp:
        summary["grids"] = _grids(out_dir, images, ready, grid_bpp, grid_image, log)
        write_json(out_dir / SUMMARY_JSON, summary)
    return summary


def _execute(tasks, codec_names, model, jobs, threads, use_lpips, progress, accept, refine=0) -> None:
    from tqdm import tqdm

    bar = tqdm(
        total=len(tasks),
        desc="bench",
        unit="task",
        disable=not progress or not tasks,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    try:
        if jobs == 1 or len(tasks) <= 1:
            import torch

            global _STATE
            saved_threads, saved_state = torch.get_num_threads(), _STATE
            try:
                _init_worker(codec_names, model, threads, use_lpips, refine)
                for task in tasks:
                    bar.set_postfix_str(f"{task.codecs[0]} {task.setting:g} {task.image.name}", refresh=False)
                    accept(*_run_task(task))
                    bar.update()
            finally:
                torch.set_num_threads(saved_threads)  # an in-process run leaves the caller as it was
                _STATE = saved_state
            return
        ctx = get_context("spawn")
        with ProcessPoolExecutor(
            jobs, mp_context=ctx, initializer=_init_worker, initargs=(codec_names, model, threads, use_lpips, refine)
        ) as pool:
            # keep a bounded window in flight: results are journalled as they arrive, and an
            # interrupt does not leave thousands of queued tasks to cancel
            pending = set()
            it = iter(tasks)
            try:
                while True:
                    while len(pending) < 4 * jobs:
                        task = next(it, None)
                        if task is None:
                            break
                        pending.add(pool.submit(_run_task, task))
                    if not pending:
                        break
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        task, recs, error = fut.result()
                        accept(task, recs, error)
                        bar.set_postfix_str(
                            f"{task.codecs[0]} {task.setting:g} {task.image.name}", refresh=False
                        )
                        bar.update()
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    finally:
        bar.close()


def build_summary(
    out_dir: Path,
    images: Sequence[ImageEntry],
    codecs: Sequence[Codec],
    skipped: dict[str, str],
    sweep: dict[str, list[float]],
    planned: set[tuple],
    *,
    bd_method: str = "pchip",
    lpips_reason: str | None = None,
    run: dict | None = None,
    errors: Sequence[dict] = (),
) -> dict:
    """Write per_image.csv, summary.csv, summary.json and summary.md from the journal's planned records."""
    latest: dict[tuple, dict] = {}
    for rec in load_records(out_dir):
        key = record_key(rec)
        if key in planned:
            latest[key] = rec  # a re-measured record (e.g. now with LPIPS) replaces the older one
    order = [c.name for c in codecs]
    img_order = {im.name: i for i, im in enumerate(images)}
    records = sorted(
        latest.values(),
        key=lambda r: (order.index(r["codec"]), float(r["setting"]), img_order.get(r["image"], 0)),
    )
    rows = summarise(records, order, len(images))
    has_lpips = any(r.get("lpips") is not None for r in records)
    extra = [m for m in OPTIONAL_MEASURES if any(m in r for r in records)]
    summary = {
        "format": FORMAT,
        "dataset": Path(images[0].path).parent.name if images else "",
        "data": str(Path(images[0].path).parent) if images else "",
        "images": [{"name": i.name, "sha": i.sha, "width": i.width, "height": i.height} for i in images],
        "codecs": [
            {
                "name": c.name,
                "label": c.label,
                "knob": c.knob,
                "identity": c.identity(),
                "settings": sweep[c.name],
                "lossless": c.lossless,
                "encode_key": c.encode_key,
            }
            for c in codecs
        ],
        "skipped": dict(skipped),
        "measures": {"lpips": None if has_lpips else (lpips_reason or "not measured")},
        "rows": rows,
        "bd_rate": {"method": bd_method, **bd_tables(rows, bd_method)},
        "complete": len(records) == len(planned),
        "run": run or {},
        "errors": list(errors),
    }
    out_dir = Path(out_dir)
    write_text(out_dir / PER_IMAGE_CSV, csv_text(records, RECORD_COLUMNS + extra))
    write_text(
        out_dir / SUMMARY_CSV, csv_text(rows, [c for c in SUMMARY_COLUMNS if c != "lpips" or has_lpips])
    )
    write_json(out_dir / SUMMARY_JSON, summary)
    from .report import markdown_summary

    write_text(out_dir / "summary.md", markdown_summary(summary))
    return summary


def _grids(out_dir: Path, images, codecs, grid_bpp, grid_image, log) -> list[dict]:
    """Matched-size comparison grids of one image at each requested bpp, in OUT/grids/."""
    from .compare import compare_image

    image = images[0]
    if grid_image is not None:
        match = [im for im in images if im.name == grid_image or Path(im.name).stem == grid_image]
        if not match:
            raise UserError(f"--grid-image {grid_image!r} is not one of the benchmarked images")
        image = match[0]
    lossy = [c for c in codecs if not c.lossless]
    (out_dir / "grids").mkdir(exist_ok=True)
    made = []
    for bpp in grid_bpp:
        target = max(1, int(math.floor(bpp * image.width * image.height / 8)))
        out = out_dir / "grids" / f"{Path(image.name).stem}-{bpp:g}bpp.png"
        info = compare_image(image.path, lossy, target_bytes=target, output=out)
        log(f"wrote {out}")
        made.append(
            {
                "path": str(out.relative_to(out_dir)),
                "image": image.name,
                "bpp": bpp,
                "target_bytes": target,
                "panels": info["panels"],
            }
        )
    return made
