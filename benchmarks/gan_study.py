"""The GAN stability study on MNIST: every loss × spectral norm on/off × EMA on/off × seeds.

The same generator / discriminator pair (``gancodec.models.dcgan``; BEGAN swaps in its
autoencoder discriminator) is trained with each loss for the same number of generator updates.
EMA does not feed back into training, so one run gives both cells of a seed: its raw generator
(EMA off) and its EMA generator (EMA on) — 5 losses × 2 SN × 3 seeds = 30 trainings fill the
60-cell table. Every run logs the judge's metrics every ``--eval-every`` steps (the curves) and
is measured at the end on ``--final-n`` samples with ``gancodec eval gan``.

**Collapsed** (the rule of the table): training diverged (non-finite loss), or a class holds
under 2 % of the samples (mode collapse), or under half the samples are classified with
confidence ≥ 0.9 (no digits).

With ``--ship-steps N`` the best cell (lowest mean classifier FID among cells without a
collapsed run) is then trained longer as the unconditional and the class-conditional model,
measured on 10,000 samples and exported to ``OUT/models/mnist-dcgan{,-cond}``.

    python benchmarks/gan_study.py --data mnist:../shared/data/mnist --out study --device cuda --jobs 15
    python benchmarks/gan_study.py --out study --steps 200 --seeds 1 --jobs 2 --device cpu   # smoke
    python benchmarks/gan_study.py --out study --report-only                                 # re-tabulate
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import json
import math
import multiprocessing as mp
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LOSSES = ("ns", "hinge", "lsgan", "wgan-gp", "began")
TABLE_KEYS = ("classifier_fid", "mnist_score", "kl_uniform", "confident", "precision", "recall", "density",
              "coverage")
COST = {"wgan-gp": 5.0, "began": 1.5}  # relative step cost, to start the slow runs first


def collapsed(metrics: dict | None) -> bool:
    if metrics is None:
        return True
    return metrics["min_class_share"] < 0.02 or metrics["confident"] < 0.5


def _train_args(a: argparse.Namespace, loss: str, sn: bool, seed: int, out: Path, steps: int, conditional: bool):
    from gancodec.cli import build_parser

    argv = ["train", "gan", "--data", a.data, "--loss", loss, "--steps", str(steps), "--out", str(out),
            "--seed", str(seed), "--eval-every", str(a.eval_every), "--eval-n", str(a.eval_n), "--judge", a.judge,
            "--device", a.device, "--precision", a.precision, "--width", str(a.width),
            "--batch-size", str(a.batch_size), "--checkpoint-every", str(max(steps // 2, 1)),
            "--sample-every", str(max(steps // 4, 1)), "--no-progress", "--resume",
            "--spectral-norm" if sn else "--no-spectral-norm"]
    if conditional:
        argv.append("--conditional")
    return build_parser().parse_args(argv)


def run_one(a: argparse.Namespace, loss: str, sn: bool, seed: int, out: Path, steps: int, final_n: int,
            conditional: bool = False) -> dict:
    """Train (or resume) one run, then evaluate its EMA and raw generators. Runs in a worker."""
    import torch

    from gancodec.generation.evaluate import evaluate_gan, jsonable
    from gancodec.training.run import train_gan

    torch.set_num_threads(a.threads)
    record = {"loss": loss, "sn": sn, "seed": seed, "run": str(out), "conditional": conditional}
    done = out / "eval_ema.json"
    if done.is_file() and (out / "eval_raw.json").is_file():
        return {**record, **json.loads((out / "record.json").read_text())}
    start = time.time()
    try:
        train_gan(_train_args(a, loss, sn, seed, out, steps, conditional))
        record["diverged"] = False
    except FloatingPointError as exc:
        record["diverged"] = True
        record["error"] = str(exc)[:300]
    record["train_seconds"] = round(time.time() - start, 1)
    for weights in ("ema", "raw"):
        if record["diverged"]:
            record[weights] = None
            continue
        res = jsonable(evaluate_gan(str(out), n=final_n, seed=10_000 + seed, real=a.data, device=a.device,
                                    weights=weights, floor=False, judge=a.judge))
        (out / f"eval_{weights}.json").write_text(json.dumps(res, indent=2) + "\n")
        record[weights] = res["metrics"]
    record["seconds"] = round(time.time() - start, 1)
    (out / "record.json").write_text(json.dumps({k: v for k, v in record.items() if k not in ("run",)}, indent=2))
    return record


def _safe_run(*args) -> dict:
    try:
        return run_one(*args)
    except Exception:  # a bug in one run must not lose the others: report it in the table
        return {"loss": args[1], "sn": args[2], "seed": args[3], "run": str(args[4]), "diverged": True,
                "error": traceback.format_exc()[-600:], "ema": None, "raw": None}


def _mean_sd(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, sd


def tabulate(records: list[dict], floor: dict | None) -> list[dict]:
    cells = []
    for loss in LOSSES:
        for sn in (True, False):
            for weights in ("ema", "raw"):
                rs = [r for r in records if r["loss"] == loss and r["sn"] == sn]
                if not rs:
                    continue
                ms = [r.get(weights) for r in rs]
                ok = [m for m in ms if m is not None]
                cell = {"loss": loss, "sn": sn, "ema": weights == "ema", "runs": len(rs),
                        "collapsed": sum(collapsed(m) for m in ms),
                        "diverged": sum(bool(r.get("diverged")) for r in rs)}
                for k in TABLE_KEYS:
                    if ok:
                        cell[k], cell[k + "_sd"] = _mean_sd([m[k] for m in ok])
                cells.append(cell)
    return sorted(cells, key=lambda c: (c["collapsed"] > 0, c.get("classifier_fid", math.inf)))


def best_cell(cells: list[dict]) -> dict:
    usable = [c for c in cells if c["collapsed"] == 0 and "classifier_fid" in c]
    return min(usable or cells, key=lambda c: c.get("classifier_fid", math.inf))


def markdown(cells: list[dict], floor: dict | None, a: argparse.Namespace) -> str:
    lines = [f"Steps (generator updates): {a.steps}, batch {a.batch_size}, width {a.width}; final metrics on "
             f"{a.final_n} samples vs the 5,000 held-out digits; mean ± sd over seeds.", ""]
    if floor:
        lines.append(f"Floor (real t10k vs real held-out, N = {floor['fid_n']}): classifier FID "
                     f"{floor['classifier_fid']:.3f}, MNIST score {floor['mnist_score']:.3f}, precision "
                     f"{floor['precision']:.3f}, recall {floor['recall']:.3f}.")
        lines.append("")
    lines.append("| loss | SN | EMA | runs | collapsed | classifier FID | MNIST score | KL (class hist.) | confident "
                 "| precision | recall | density | coverage |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for c in cells:
        def f(k, d=3, c=c):
            return f"{c[k]:.{d}f} ± {c[k + '_sd']:.{d}f}" if k in c else "—"
        lines.append(f"| {c['loss']} | {'on' if c['sn'] else 'off'} | {'on' if c['ema'] else 'off'} | {c['runs']} "
                     f"| {c['collapsed']} | {f('classifier_fid', 2)} | {f('mnist_score', 2)} | {f('kl_uniform', 4)} "
                     f"| {f('confident')} | {f('precision')} | {f('recall')} | {f('density')} | {f('coverage')} |")
    lines.append("")
    lines.append("Collapsed: diverged, or a class under 2 % of samples, or under 50 % of samples with judge "
                 "confidence ≥ 0.9.")
    return "\n".join(lines) + "\n"


def plot_curves(records: list[dict], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for key, label, log in (("cfid", "classifier FID", True), ("mnist_score", "MNIST score", False),
                            ("kl", "KL(class histogram ‖ uniform)", True)):
        losses = [l for l in LOSSES if any(r["loss"] == l for r in records)]
        fig, axes = plt.subplots(1, len(losses), figsize=(4 * len(losses), 3.4), squeeze=False, sharey=True)
        for ax, loss in zip(axes[0], losses):
            for r in records:
                if r["loss"] != loss or r.get("conditional"):
                    continue
                path = Path(r["run"]) / "log.csv"
                if not path.is_file():
                    continue
                seen: dict[float, dict] = {}
                with open(path) as fh:
                    for row in csv.DictReader(fh):
                        if row.get("eval_step") not in (None, ""):
                            seen.setdefault(float(row["eval_step"]), row)
                steps = sorted(seen)
                colour = "tab:blue" if r["sn"] else "tab:orange"
                for prefix, style in (("", "-"), ("raw_", ":")):
                    ys = [float(seen[s].get(prefix + key, "nan")) for s in steps]
                    ax.plot(steps, ys, style, color=colour, lw=1,
                            label=f"SN {'on' if r['sn'] else 'off'}, {'EMA' if not prefix else 'raw'}"
                            if r["seed"] == 0 else None)
            ax.set_title(loss)
            ax.set_xlabel("step")
            if log:
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel(label)
        axes[0][-1].legend(fontsize=7)
        fig.tight_layout()
        path = out / f"curves_{key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(str(path))
    return files


def compute_floor(a: argparse.Namespace) -> dict | None:
    from gancodec.generation.data import load_mnist, to_tensor
    from gancodec.generation.evaluate import jsonable
    from gancodec.generation.judge import load_judge
    from gancodec.generation.metrics import real_floor

    try:
        train, _ = load_mnist(a.data, "train")
        held, _ = load_mnist(a.data, "heldout")
    except Exception:
        return None
    return jsonable(real_floor(load_judge(a.judge), to_tensor(train), to_tensor(held)))


def ship(a: argparse.Namespace, cell: dict, pool) -> dict:
    """Train the unconditional and conditional models with the best recipe; evaluate; export."""
    from gancodec.generation.evaluate import evaluate_gan, jsonable
    from gancodec.generator import GANModel, grid
    from gancodec.imageio import save_image
    from gancodec.zoo.export import export_run

    jobs = {}
    for name, conditional in (("mnist-dcgan", False), ("mnist-dcgan-cond", True)):
        run = Path(a.out) / "ship" / name
        jobs[name] = pool.submit(_ship_train, a, cell["loss"], cell["sn"], a.ship_seed, run, conditional)
    result = {"recipe": {k: cell[k] for k in ("loss", "sn", "ema")}, "steps": a.ship_steps, "models": {}}
    for name, job in jobs.items():
        run, seconds = job.result()
        folder = Path(a.out) / "models" / name
        export_run(run, folder, name=name, ema=cell["ema"])
        res = jsonable(evaluate_gan(str(folder), n=10000, seed=0, real=a.data, device=a.device, judge=a.judge))
        res["train_seconds"] = seconds
        (folder.parent / f"{name}.eval.json").write_text(json.dumps(res, indent=2) + "\n")
        model = GANModel(folder)
        save_image(Path(a.out) / f"{name}_samples.png", grid(model.generate(100, seed=0), 10))
        result["models"][name] = res
    return result


def _ship_train(a, loss, sn, seed, run, conditional):
    import torch

    from gancodec.training.run import train_gan

    torch.set_num_threads(a.threads)
    start = time.time()
    train_gan(_train_args(a, loss, sn, seed, run, a.ship_steps, conditional))
    return run, round(time.time() - start, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="mnist:../shared/data/mnist")
    p.add_argument("--out", default="gan-study")
    p.add_argument("--losses", default=",".join(LOSSES))
    p.add_argument("--sn", choices=["both", "on", "off"], default="both")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=3000, help="generator updates per run (equal for every loss)")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-n", type=int, default=2000)
    p.add_argument("--final-n", type=int, default=5000)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel (processes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", help="fp32: the networks are too small for bf16 to pay")
    p.add_argument("--ship-steps", type=int, default=0, help="then train the shipped models this long (0: no)")
    p.add_argument("--ship-seed", type=int, default=0)
    p.add_argument("--judge", default="mnist-judge",
                   help="judge model (the published table used mnist-judge-v0.1)")
    p.add_argument("--report-only", action="store_true", help="tabulate the runs already in --out")
    a = p.parse_args(argv)
    out = Path(a.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    losses = [l for l in a.losses.split(",") if l]
    sns = {"both": (True, False), "on": (True,), "off": (False,)}[a.sn]
    plan = [(l, sn, s) for l in losses for sn in sns for s in range(a.seeds)]
    plan.sort(key=lambda t: -COST.get(t[0], 1.0))  # slowest first: shortest wall-clock overall
    start = time.time()
    records: list[dict] = []
    ctx = mp.get_context("spawn")  # CUDA cannot be forked
    with cf.ProcessPoolExecutor(max_workers=a.jobs, mp_context=ctx) as pool:
        futures = {}
        for loss, sn, seed in plan:
            run = out / "runs" / f"{loss}-sn{int(sn)}-s{seed}"
            if a.report_only:
                rec = run / "record.json"
                if rec.is_file():
                    records.append({"run": str(run), **json.loads(rec.read_text())})
                continue
            futures[pool.submit(_safe_run, a, loss, sn, seed, run, a.steps, a.final_n)] = (loss, sn, seed)
        for fut in cf.as_completed(futures):
            r = fut.result()
            records.append(r)
            m = r.get("ema")
            what = "DIVERGED" if m is None else f"cfid {m['classifier_fid']:.2f} score {m['mnist_score']:.2f}"
            print(f"[{time.time() - start:6.0f}s] {r['loss']:8s} sn={int(r['sn'])} seed={r['seed']} {what}"
                  f" ({r.get('seconds', '?')} s)", flush=True)
        floor = compute_floor(a)
        cells = tabulate(records, floor)
        best = best_cell(cells) if cells else None
        summary = {"args": vars(a), "floor": floor, "cells": cells, "best": best, "runs": records,
                   "seconds": round(time.time() - start, 1)}
        (out / "study.md").write_text(markdown(cells, floor, a))
        summary["plots"] = plot_curves(records, out)
        if a.ship_steps and best:
            summary["ship"] = ship(a, best, pool)
    summary["seconds"] = round(time.time() - start, 1)
    (out / "study.json").write_text(json.dumps(summary, indent=2) + "\n")
    print((out / "study.md").read_text())
    if best:
        print(f"best: {best['loss']} SN {'on' if best['sn'] else 'off'} EMA {'on' if best['ema'] else 'off'}")
    for name, res in summary.get("ship", {}).get("models", {}).items():
        from gancodec.generation.evaluate import summary_line

        print(f"{name}: {summary_line(res)}; targets {res['targets']}")
    print(f"total {summary['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
