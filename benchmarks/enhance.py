"""Benchmark of the super-resolution and restoration models: quality against bicubic / JPEG, speed, memory, crops.

    python benchmarks/enhance.py sr --model sr-x4-lite --data ../shared/data/set5 ../shared/data/set14 -o bench-enhance
    python benchmarks/enhance.py jpeg --model restore-lite --data ../shared/data/kodak --qualities 10 20 30 \\
        -o bench-enhance
    python benchmarks/enhance.py speed --model sr-x4-lite restore-lite --threads 2 -o bench-enhance

``--model`` takes zoo names or model folders, one or several. Results go to OUT/sr.json, OUT/jpeg.json and
OUT/speed.json, keyed by model name so that runs of several models fill one file; side-by-side crops go to
OUT/crops/; Markdown tables for BENCHMARKS.md go to stdout.

SR: HR is the image cropped at the bottom/right to a multiple of the scale (greyscale read as RGB), LR its Pillow
bicubic downscale. PSNR and SSIM are computed on the BT.601 Y channel (16..235, unrounded float as in BasicSR; the
MATLAB uint8 Y differs by about 0.01 dB) with ``scale`` pixels shaved from each border; SSIM is Wang et al.'s
(11×11 Gaussian, σ = 1.5, population covariance, data range 255). JPEG: Pillow JPEG at each quality; PSNR over
8-bit RGB and the same SSIM averaged over R, G and B, no border shaved. Both modes also give the high-frequency
ratio and patch KID of ``gancodec.evaluation.realism`` (whole RGB image). Speed: each model in a fresh process,
median of 3 timed runs after a warm-up; peak RSS (ru_maxrss, Linux) and its rise over the process after imports.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from skimage.metrics import structural_similarity
from tqdm import tqdm

from gancodec.enhance import Enhancer
from gancodec.errors import UserError
from gancodec.evaluation.realism import hf_ratio, kid, patch_features
from gancodec.imageio import IMAGE_SUFFIXES, atomic_output, load_rgb_array, save_image
from gancodec.metrics import psnr, y_channel
from gancodec.training.degradations import bicubic_down, jpeg
from gancodec.zoo import load_enhancer

LABELS = {"bicubic": "bicubic", "jpeg": "JPEG", "fidelity": "ours-fidelity", "gan": "ours-GAN",
          "fidelity-x8": "ours-fidelity x8"}

SPEED = textwrap.dedent("""
    import json, resource, statistics, sys, time
    import torch
    torch.set_num_threads(int(sys.argv[2]))
    import numpy as np
    from PIL import Image
    from skimage import data as skdata
    from gancodec.zoo import load_enhancer
    photo = Image.fromarray(skdata.astronaut())
    idle = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model = load_enhancer(sys.argv[1])
    side = int(sys.argv[3]) or (1024 if model.kind == "restore" else 512)
    img = np.asarray(photo.resize((side, side), Image.BICUBIC))
    out = model.run(img)  # warm-up: first-call allocations
    times = []
    for _ in range(int(sys.argv[4])):
        t = time.perf_counter(); model.run(img); times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    med, mp_in, mp_out = statistics.median(times), side * side / 1e6, out.shape[0] * out.shape[1] / 1e6
    print(json.dumps({"model": model.name, "kind": model.kind, "scale": model.config.scale,
                      "threads": int(sys.argv[2]), "input": [side, side], "output": list(out.shape[:2]),
                      "seconds": [round(t, 3) for t in times], "median_s": round(med, 3),
                      "s_per_mp_input": round(med / mp_in, 3), "s_per_mp_output": round(med / mp_out, 3),
                      "idle_rss_mb": round(idle), "peak_rss_mb": round(peak), "delta_rss_mb": round(peak - idle)}))
""")


def load_images(paths: list[str]) -> list[tuple[str, str, np.ndarray]]:
    """(dataset, image name, RGB uint8) for every image of the folders (or single files) given."""
    images = []
    for p in map(Path, paths):
        if not p.exists():
            raise UserError(f"data path not found: {p}")
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) if p.is_dir() else [p]
        if not files:
            raise UserError(f"no images in {p}")
        dataset = p.name if p.is_dir() else p.parent.name
        images += [(dataset, f.stem, load_rgb_array(f)) for f in files]
    return images


def ssim(a: np.ndarray, b: np.ndarray, channel_axis: int | None = None) -> float:
    return float(structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, channel_axis=channel_axis))


def scores(ref: np.ndarray, out: np.ndarray, ref_features: np.ndarray, border: int | None) -> dict[str, float]:
    """PSNR/SSIM on Y with ``border`` shaved (SR), or on RGB (and Y-PSNR) when ``border`` is None
    (JPEG); realism measures."""
    if border is None:
        # RGB, plus PSNR on Y: JPEG artefact removal papers (AR-CNN, DnCNN) report Y / greyscale.
        fid = {"psnr": psnr(ref, out), "ssim": ssim(ref, out, channel_axis=2),
               "psnr_y": psnr(y_channel(ref), y_channel(out))}
    else:
        crop = slice(border, -border or None)
        a, b = y_channel(ref)[crop, crop], y_channel(out)[crop, crop]
        fid = {"psnr": psnr(a, b), "ssim": ssim(a, b)}
    real = {"hf_ratio": hf_ratio(ref, out), "kid": kid(ref_features, patch_features(out))}
    return {k: round(v, 5) for k, v in (fid | real).items()}


def detailed_box(rgb: np.ndarray, side: int, step: int) -> tuple[int, int, int]:
    """(top, left, side) of the square window with the highest luma variance, on a ``step`` grid (first wins)."""
    y = y_channel(rgb)
    h, w = y.shape
    side = min(side, h // step * step, w // step * step)
    ts, ls = np.arange(0, h - side + 1, step), np.arange(0, w - side + 1, step)
    tt, ll = np.meshgrid(ts, ls, indexing="ij")

    def window_mean(a: np.ndarray) -> np.ndarray:
        ii = np.pad(a.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        return (ii[tt + side, ll + side] - ii[tt, ll + side] - ii[tt + side, ll] + ii[tt, ll]) / side**2

    var = window_mean(y * y) - window_mean(y) ** 2
    i, j = np.unravel_index(int(np.argmax(var)), var.shape)
    return int(ts[i]), int(ls[j]), side


def save_crops(path: Path, panels: list[tuple[str, np.ndarray]], side: int, step: int, zoom: int) -> None:
    """One PNG: a row of labelled crops of the most detailed region of the last panel (the original)."""
    top, left, side = detailed_box(panels[-1][1], side, step)
    font, label_h, gap, size = ImageFont.load_default(), 16, 4, side * zoom
    canvas = Image.new("RGB", (len(panels) * (size + gap) - gap, size + label_h), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (label, img) in enumerate(panels):
        crop = Image.fromarray(np.ascontiguousarray(img[top : top + side, left : left + side]))
        canvas.paste(crop.resize((size, size), Image.NEAREST), (i * (size + gap), label_h))
        draw.text((i * (size + gap) + 2, 2), label, fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(path, np.asarray(canvas))


def group_means(records: list[dict], keys: tuple[str, ...], methods: list[str]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    return [
        {**dict(zip(keys, g)), "images": len(rs),
         **{m: {k: round(float(np.mean([r[m][k] for r in rs])), 4) for k in rs[0][m]} for m in methods}}
        for g, rs in groups.items()
    ]


def crop_indices(n: int, count: int) -> set[int]:
    """``count`` images spread evenly over the list (first and last included)."""
    return set(np.linspace(0, n - 1, count).round().astype(int).tolist()) if count > 0 and n else set()


def stages(model: Enhancer, self_ensemble: bool = False) -> list[str]:
    return ["fidelity"] + (["fidelity-x8"] if self_ensemble else []) + (["gan"] if "gan" in model.weights else [])


def bench_sr(model: Enhancer, data: list[str], out: Path, n_crops: int, progress: bool,
             self_ensemble: bool = False) -> dict:
    s = model.config.scale
    images = load_images(data)
    crops, records = crop_indices(len(images), n_crops), []
    for i, (dataset, name, rgb) in enumerate(tqdm(images, desc=f"sr {model.name}", disable=not progress)):
        h, w = rgb.shape[0] // s * s, rgb.shape[1] // s * s
        hr = np.ascontiguousarray(rgb[:h, :w])
        lr = np.array(bicubic_down(hr, s))  # writable: torch.from_numpy warns on read-only arrays
        outs = {"bicubic": np.asarray(Image.fromarray(lr).resize((w, h), Image.BICUBIC))}
        outs |= {st: model.run(lr, realism=float(st == "gan"), self_ensemble=st.endswith("-x8"))
                 for st in stages(model, self_ensemble)}
        feats = patch_features(hr)
        rec = {"dataset": dataset, "image": name, "size": [h, w]}
        rec |= {m: scores(hr, o, feats, border=s) for m, o in outs.items()}
        records.append(rec)
        if i in crops:
            panels = [("LR (nearest)", np.asarray(Image.fromarray(lr).resize((w, h), Image.NEAREST)))]
            panels += [(f"{LABELS[m]} {rec[m]['psnr']:.2f} dB", o) for m, o in outs.items()] + [("original", hr)]
            save_crops(out / "crops" / f"{model.name}-{dataset}-{name}.png", panels, 96, 4 * s, 3)
    methods = ["bicubic", *stages(model, self_ensemble)]
    return {"model": model.name, "scale": s, "methods": methods, "border": s, "metric_channel": "Y (BT.601)",
            "means": group_means(records, ("dataset",), methods), "images": records}


def compressed(rgb: np.ndarray, codec: str, quality: int) -> np.ndarray:
    """The image after a lossy round trip through ``codec`` at ``quality`` (for ``noise``: additive
    Gaussian noise of σ = quality, seeded by the image so every model sees the same noise)."""
    if codec == "noise":
        rng = np.random.default_rng(int(rgb[::17, ::17].sum()) + quality)
        return np.clip(rgb + rng.normal(0, quality, rgb.shape) + 0.5, 0, 255).astype(np.uint8)
    if codec == "jpeg":
        return np.array(jpeg(rgb, quality))
    if codec == "webp":
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="WEBP", quality=quality, method=4)
        return np.array(Image.open(buf).convert("RGB"))
    import gancodec  # gcz: our own codec's MSE decoder, quality 1..levels

    return gancodec.decompress(gancodec.compress(rgb, quality=quality))


def bench_jpeg(model: Enhancer, data: list[str], qualities: list[int], out: Path, n_crops: int,
               progress: bool, codec: str = "jpeg") -> dict:
    images = load_images(data)
    crops, records = crop_indices(len(images), n_crops), []
    jobs = [(i, q) for i in range(len(images)) for q in qualities]
    # other codecs' artefacts are the "unknown mix"
    task = {"jpeg": "jpeg", "noise": "denoise"}.get(codec, "auto")
    for i, q in tqdm(jobs, desc=f"{codec} {model.name}", disable=not progress):
        dataset, name, rgb = images[i]
        degraded = compressed(rgb, codec, q)
        outs = {"jpeg": degraded}
        outs |= {st: model.run(degraded, realism=float(st == "gan"), task=task) for st in stages(model)}
        feats = patch_features(rgb)
        rec = {"dataset": dataset, "image": name, "quality": q, "size": list(rgb.shape[:2])}
        rec |= {m: scores(rgb, o, feats, border=None) for m, o in outs.items()}
        records.append(rec)
        if i in crops and q == min(qualities):
            label = {**LABELS, "jpeg": codec.upper() if codec != "gcz" else "gancodec"}
            panels = [(f"{label[m]} {rec[m]['psnr']:.2f} dB", o) for m, o in outs.items()] + [("original", rgb)]
            save_crops(out / "crops" / f"{model.name}-{codec}-{dataset}-{name}-q{q}.png", panels, 128, 8, 2)
    methods = ["jpeg", *stages(model)]  # "jpeg" holds the decoded input of whichever codec
    return {"model": model.name, "codec": codec, "methods": methods, "metric_channel": "RGB",
            "means": group_means(records, ("dataset", "quality"), methods), "images": records}


def bench_speed(name: str, threads: int, size: int, runs: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", SPEED, name, str(threads), str(size), str(runs)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"speed run of {name} failed:\n{proc.stderr.strip()}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def merge_json(path: Path, key: str, result: dict) -> None:
    """Store ``result`` under ``key`` in the JSON file, keeping the other models' entries."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[key] = result
    with atomic_output(path, "w") as fh:
        fh.write(json.dumps(data, indent=1) + "\n")


def cell(means: dict, method: str) -> str:
    return f"{means[method]['psnr']:.2f} / {means[method]['ssim']:.4f}" if method in means else "—"


def hf_cell(means: dict, methods: list[str]) -> str:
    return " / ".join(f"{means[m]['hf_ratio']:.2f}" if m in means else "—" for m in methods)


def markdown(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def sr_table(result: dict) -> str:
    header = ["model", "dataset", "images", "bicubic PSNR / SSIM", "ours-fidelity", "ours-GAN",
              "HF ratio bicubic / fid. / GAN"]
    name = f"{result['model']} ×{result['scale']}"
    ensembled = "fidelity-x8" in result["methods"]
    if ensembled:
        header.insert(5, "ours-fidelity, self-ensemble ×8")
    rows = [[name, g["dataset"], g["images"], cell(g, "bicubic"), cell(g, "fidelity"),
             *([cell(g, "fidelity-x8")] if ensembled else []), cell(g, "gan"),
             hf_cell(g, ["bicubic", "fidelity", "gan"])] for g in result["means"]]
    return markdown(header, rows)


def jpeg_table(result: dict) -> str:
    codec = result.get("codec", "jpeg").upper()
    header = ["model", "dataset", "quality", f"{codec} PSNR / SSIM", "ours-fidelity", "ours-GAN", "gain dB fid. / GAN",
              "Y-PSNR input / fid. (gain)", "HF ratio JPEG / fid. / GAN"]
    rows = []
    for g in result["means"]:
        gain = " / ".join(f"{g[m]['psnr'] - g['jpeg']['psnr']:+.2f}" if m in g else "—" for m in ("fidelity", "gan"))
        y = "—"
        if "psnr_y" in g["jpeg"] and "fidelity" in g:
            y_in, y_out = g["jpeg"]["psnr_y"], g["fidelity"]["psnr_y"]
            y = f"{y_in:.2f} / {y_out:.2f} ({y_out - y_in:+.2f})"
        rows.append([result["model"], g["dataset"], g["quality"], cell(g, "jpeg"), cell(g, "fidelity"),
                     cell(g, "gan"), gain, y, hf_cell(g, ["jpeg", "fidelity", "gan"])])
    return markdown(header, rows)


def speed_table(rows: list[dict]) -> str:
    header = ["model", "input px", "threads", "median s", "s / MP input", "s / MP output", "peak RSS MB",
              "Δ over idle MB"]
    return markdown(header, [[r["model"], f"{r['input'][1]}×{r['input'][0]}", r["threads"], f"{r['median_s']:.2f}",
                              f"{r['s_per_mp_input']:.2f}", f"{r['s_per_mp_output']:.2f}", r["peak_rss_mb"],
                              r["delta_rss_mb"]] for r in rows])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["sr", "jpeg", "speed"])
    p.add_argument("--model", nargs="+", required=True, help="zoo names or model folders")
    p.add_argument("--data", nargs="+", default=[], help="image folders (or files); needed for sr and jpeg")
    p.add_argument("--qualities", nargs="+", type=int, default=[10, 20, 30], help="qualities (jpeg mode)")
    p.add_argument("--codec", choices=["jpeg", "webp", "gcz", "noise"], default="jpeg",
                   help="jpeg mode: the codec whose output is restored (gcz: gancodec's own, quality 1..6; "
                        "noise: Gaussian noise, --qualities are σ, restored with --task denoise)")
    p.add_argument("-o", "--out", default="bench-enhance", help="output folder")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--crops", type=int, default=2, help="images per run with side-by-side crops (0: none)")
    p.add_argument("--size", type=int, default=0, help="speed input side in px (default 512 for SR, 1024 restore)")
    p.add_argument("--runs", type=int, default=3, help="timed runs per model after the warm-up (speed mode)")
    p.add_argument("--self-ensemble", action="store_true",
                   help="sr mode: also score the fidelity weights with the ×8 geometric self-ensemble")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args()
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(args.threads)
        if args.mode == "speed":
            for name in args.model:
                load_enhancer(name)  # fail early, with a plain message, on an unknown or broken model
            rows = [bench_speed(name, args.threads, args.size, args.runs) for name in args.model]
            for r in rows:
                merge_json(out / "speed.json", f"{r['model']}/{r['threads']}t", r)
            print(speed_table(rows))
            return
        if not args.data:
            raise UserError(f"{args.mode} needs --data")
        for name in args.model:
            model = load_enhancer(name, "sr" if args.mode == "sr" else "restore")
            if args.mode == "sr":
                result = bench_sr(model, args.data, out, args.crops, not args.no_progress, args.self_ensemble)
                table = sr_table(result)
            else:
                result = bench_jpeg(model, args.data, args.qualities, out, args.crops, not args.no_progress,
                                    args.codec)
                table = jpeg_table(result)
            key = model.name if args.mode == "sr" or args.codec == "jpeg" else f"{model.name}/{args.codec}"
            merge_json(out / f"{args.mode}.json", key, result)
            print(table)
    except UserError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
