"""Does bf16 training cost quality? Compare runs trained from the same start in two precisions.

    python benchmarks/precision_parity.py codec RUN_FP32 RUN_BF16 --images ../shared/data/kodak [--limit 8]
    python benchmarks/precision_parity.py sr RUN_FP32 RUN_BF16 --images ../shared/data/kodak --scale 4
        [--plot curves.png] [--json out.json]

``codec``: the rate–distortion runs' (raw) weights evaluated on the images at qualities 1..levels
with the network's own rate estimate (−log2 of the quantised likelihoods, the quantity the
training minimises) and PSNR of the quantised reconstruction, both in float32 whatever the run's
training precision; the two curves' BD-rate (bf16 against fp32) says whether they differ.
``sr``: PSNR-Y (shave = scale) of each run's EMA generator on bicubic-downscaled images.
Both modes also compare the logged training losses (mean of the last 20 % of steps) and can plot
the two runs' curves.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch


def _log(run: Path) -> list[dict[str, float]]:
    with open(run / "log.csv") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _images(folder: Path, limit: int) -> list[np.ndarray]:
    from gancodec.imageio import load_rgb_array
    from gancodec.training.data import list_images

    return [load_rgb_array(p) for p in list_images([folder])[:limit]]


@torch.no_grad()
def codec_points(run: Path, images: list[np.ndarray], device: torch.device) -> list[dict[str, float]]:
    from gancodec.training.run import load_codec_checkpoint

    model = load_codec_checkpoint(run, ema=False).to(device).eval()
    points = []
    for q in range(1, model.config.levels + 1):
        bpp, psnr = [], []
        for img in images:
            h, w = img.shape[:2]
            x = torch.from_numpy(img).permute(2, 0, 1)[None].float().div(255).to(device)
            ph, pw = (-h) % 64, (-w) % 64
            xp = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
            out = model(xp, torch.tensor([float(q)], device=device))
            bits = sum((-torch.log2(out[k])).sum() for k in ("y_likelihoods", "z_likelihoods"))
            bpp.append(float(bits) / (h * w))
            x_hat = out["x_hat"][..., :h, :w].clamp(0, 1).mul(255).round()
            mse = torch.mean((x_hat - x * 255) ** 2).item()
            psnr.append(10 * np.log10(255**2 / mse))
        points.append({"quality": q, "bpp": float(np.mean(bpp)), "psnr": float(np.mean(psnr))})
    return points


@torch.no_grad()
def sr_psnr(run: Path, images: list[np.ndarray], scale: int, device: torch.device) -> float:
    from gancodec.metrics import psnr, y_channel
    from gancodec.training.degradations import bicubic_down
    from gancodec.training.enhance_task import EnhanceConfig

    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    net = EnhanceConfig.from_dict(state["config"]).build()
    net.load_state_dict(state.get("ema") or state["nets"]["generator"])
    net = net.to(device).eval()
    scores = []
    for img in images:
        h, w = (img.shape[0] // scale) * scale, (img.shape[1] // scale) * scale
        hr = img[:h, :w]
        lr = torch.from_numpy(bicubic_down(hr, scale)).permute(2, 0, 1)[None].float().div(255).to(device)
        sr = net(lr).clamp(0, 1)[0].permute(1, 2, 0).mul(255).round().byte().cpu().numpy()
        crop = (slice(scale, -scale), slice(scale, -scale))
        scores.append(psnr(y_channel(hr)[crop], y_channel(sr)[crop]))
    return float(np.mean(scores))


def main() -> None:
    from gancodec.evaluation.bdrate import bd_rate

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["codec", "sr"])
    p.add_argument("fp32_run", type=Path)
    p.add_argument("bf16_run", type=Path)
    p.add_argument("--images", type=Path, default=Path("../shared/data/kodak"))
    p.add_argument("--limit", type=int, default=24)
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--plot", type=Path)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    device = torch.device(args.device)
    images = _images(args.images, args.limit)
    runs = {"fp32": args.fp32_run, "bf16": args.bf16_run}
    result: dict = {"mode": args.mode, "images": len(images), "runs": {k: str(v) for k, v in runs.items()}}
    loss_key = "loss" if args.mode == "codec" else "l1"
    for name, run in runs.items():
        log = _log(run)
        tail = log[int(len(log) * 0.8):]
        result[name] = {"steps": int(log[-1]["step"]), "seconds": log[-1]["seconds"],
                        f"{loss_key}_last20pct": float(np.mean([r[loss_key] for r in tail]))}
        if args.mode == "codec":
            result[name]["kodak"] = codec_points(run, images, device)
        else:
            result[name]["psnr_y"] = sr_psnr(run, images, args.scale, device)
    if args.mode == "codec":
        a, b = result["fp32"]["kodak"], result["bf16"]["kodak"]
        result["bd_rate_bf16_vs_fp32_percent"] = bd_rate(
            [r["bpp"] for r in a], [r["psnr"] for r in a], [r["bpp"] for r in b], [r["psnr"] for r in b])
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        keys = ["loss", "bpp", "psnr"] if args.mode == "codec" else ["l1", "psnr"]
        fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2))
        for ax, key in zip(axes, keys):
            for name, run in runs.items():
                log = _log(run)
                ax.plot([r["step"] for r in log], [r[key] for r in log], label=name, lw=1)
            ax.set_xlabel("step")
            ax.set_title(key)
            ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)


if __name__ == "__main__":
    main()
