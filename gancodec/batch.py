"""Whole folders: ``gancodec compress|decompress IN... -o OUT_DIR``.

Many files or folders (searched recursively) are coded with the model loaded once per worker,
``--jobs N`` worker processes, a progress bar and a summary. Built for collections that take
hours and for clusters:

* **resume** — an output that exists is skipped. Outputs are written to a temporary file and
  renamed (:func:`gancodec.imageio.atomic_path`), so an interrupted run leaves no partial file
  that could pass for done; run the same command again to finish.
* **sharding** — ``--shard K/N`` (0 ≤ K < N) takes every N-th file of the list sorted by
  relative path, starting at the K-th: every machine of a Slurm array / Kubernetes indexed job
  computes the same list and takes a disjoint share, with no coordination.
* **failures** — one bad file is reported (one line) and the rest go on; the exit status is 1
  when any file failed, 0 otherwise.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from .errors import UserError
from .imageio import IMAGE_SUFFIXES

GCZ_SUFFIX = ".gcz"


@dataclass(frozen=True)
class Job:
    src: Path
    rel: str  # relative path (POSIX) of the input: the sort and shard key
    dst: Path


def parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 1
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise UserError(f"--shard must be K/N, e.g. 0/4, got {text!r}") from None
    if not (n >= 1 and 0 <= k < n):
        raise UserError(f"--shard K/N needs 0 <= K < N, got {text!r}")
    return k, n


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)  # also our own ".name.part" temp files


def collect(inputs: Iterable[str], suffixes: set[str], out_dir: Path, out_suffix: str) -> list[Job]:
    """Every input file (folders searched recursively for ``suffixes``), sorted by relative path.
    A folder's files keep their sub-folders under ``out_dir``; a file given by name goes at its top."""
    jobs: list[Job] = []
    for name in inputs:
        root = Path(name)
        if root.is_dir():
            for path in root.rglob("*"):
                rel = path.relative_to(root)
                if path.is_file() and path.suffix.lower() in suffixes and not _hidden(rel):
                    jobs.append(Job(path, rel.as_posix(), out_dir / rel.with_suffix(out_suffix)))
        elif root.is_file():
            jobs.append(Job(root, root.name, out_dir / Path(root.name).with_suffix(out_suffix)))
        else:
            raise UserError(f"input not found: {root}")
    jobs.sort(key=lambda j: (j.rel, str(j.src)))
    seen: dict[Path, Job] = {}
    for job in jobs:
        if job.dst in seen:
            raise UserError(f"{seen[job.dst].src} and {job.src} would both be written to {job.dst}")
        seen[job.dst] = job
    return jobs


# -- the work of one file (runs in the main process or a worker) -----------------------------------

def compress_one(src: Path, dst: Path, options: dict) -> int:
    from .imageio import write_bytes
    from .zoo import load_model

    model = load_model(options["model"] or "hific-lite")
    data = model.compress(src, quality=options["quality"], target_bpp=options["target_bpp"],
                          max_pixels=options["max_pixels"], keep_metadata=options["keep_metadata"],
                          progress=options.get("progress", False), refine=options.get("refine", 0))
    write_bytes(dst, data)
    return len(data)


def decompress_one(src: Path, dst: Path, options: dict) -> int:
    data = src.read_bytes()
    model = model_for_file(data, options["model"])
    model.decompress_to_file(data, dst, decoder=options["decoder"], exact=not options["fast"],
                             max_pixels=options["max_pixels"], progress=options.get("progress", False),
                             realism=options.get("realism"))
    return dst.stat().st_size


def model_for_file(data: bytes, override: str | None):
    """The codec for a file: ``override`` if given, else the installed codec whose name and
    weights hash are the file's (any released version, :func:`gancodec.zoo.find_codec`). A name
    read from a file is looked up among installed models only, never as a path."""
    from .zoo import load_model, load_model_for_file

    if override:
        return load_model(override)
    return load_model_for_file(data)


WORK: dict[str, Callable[[Path, Path, dict], int]] = {"compress": compress_one, "decompress": decompress_one}


def _run_one(kind: str, src: Path, dst: Path, options: dict) -> tuple[bool, int, int, str]:
    """(ok, bytes in, bytes out, error message); never raises for a bad file."""
    try:
        size_in = src.stat().st_size
        dst.parent.mkdir(parents=True, exist_ok=True)
        return True, size_in, WORK[kind](src, dst, options), ""
    except UserError as exc:
        return False, 0, 0, str(exc)
    except (OSError, MemoryError) as exc:
        return False, 0, 0, f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - a bug on one file must not stop thousands of others
        return False, 0, 0, f"internal error {type(exc).__name__}: {exc}"


def _init_worker(threads: int) -> None:
    import torch

    from .allocator import tune_allocator

    torch.set_num_threads(threads)
    tune_allocator()  # a worker is a process of the command: same setting as the command


def run(kind: str, inputs: list[str], out_dir: str, options: dict, *, jobs: int = 1, threads: int = 0,
        shard: str | None = None, overwrite: bool = False, progress: bool = True) -> int:
    """Code every input into ``out_dir``; prints failures and a JSON summary. Returns the exit status."""
    from tqdm import tqdm

    k, n = parse_shard(shard)
    if jobs < 1:
        raise UserError("--jobs must be at least 1")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"output must be a folder when coding several files: {out}")
    suffixes, out_suffix = (IMAGE_SUFFIXES, GCZ_SUFFIX) if kind == "compress" else ({GCZ_SUFFIX}, ".png")
    todo_all = collect(inputs, suffixes, out, out_suffix)[k::n]
    todo = todo_all if overwrite else [j for j in todo_all if not j.dst.exists()]
    out.mkdir(parents=True, exist_ok=True)
    summary = {"files": len(todo_all), "done": 0, "skipped": len(todo_all) - len(todo), "failed": 0,
               "bytes_in": 0, "bytes_out": 0}
    start = time.perf_counter()
    bar = tqdm(total=len(todo), unit="file", desc=kind, disable=not progress or None, file=sys.stderr)

    def record(job: Job, result: tuple[bool, int, int, str]) -> None:
        ok, size_in, size_out, message = result
        if ok:
            summary["done"] += 1
            summary["bytes_in"] += size_in
            summary["bytes_out"] += size_out
        else:
            summary["failed"] += 1
            tqdm.write(f"gancodec: error: {job.src}: {message}", file=sys.stderr)
        bar.update(1)

    total_threads = threads or os.cpu_count() or 1
    try:
        if jobs == 1 or len(todo) <= 1:
            for job in todo:
                record(job, _run_one(kind, job.src, job.dst, options))
        else:
            # Processes, not threads: Pillow, numpy and the entropy coder hold the GIL. spawn, not
            # fork, because forking a process whose torch thread pool is running is unsafe. The
            # cores are shared out so that N workers do not each start a full torch thread pool.
            with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"),
                                     initializer=_init_worker, initargs=(max(1, total_threads // jobs),)) as pool:
                futures = {pool.submit(_run_one, kind, j.src, j.dst, options): j for j in todo}
                try:
                    for fut in as_completed(futures):
                        record(futures[fut], fut.result())
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        bar.close()
    summary["seconds"] = round(time.perf_counter() - start, 2)
    print(json.dumps(summary))
    return 1 if summary["failed"] else 0
