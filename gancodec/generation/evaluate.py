"""``gancodec eval gan``: every judge metric of a generator (a run directory or a model), beside
the floor of real digits, and whether the issue's targets are met."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .data import MNIST_TRAIN, is_mnist_spec, load_mnist, mnist_folder, to_tensor

DEFAULT_MNIST = Path("../shared/data/mnist")
#: the issue's targets for the shipped models
TARGETS = {"confident": 0.95, "class_share": (0.07, 0.13), "agreement": 0.97}


def _load_target(target: str, weights: str):
    """(generator in eval mode, GANConfig, description) from a run directory or a model."""
    path = Path(target)
    if (path / "checkpoint.pt").is_file() or (path.is_file() and path.suffix == ".pt"):
        from ..training.run import load_gan_checkpoint

        config, generator, state = load_gan_checkpoint(path, ema=weights == "ema")
        used = "ema" if weights == "ema" and "ema" in state else "raw"
        info = {"run": str(path), "step": int(state["step"]), "weights": used, "loss": state.get("loss")}
        return generator, config, info
    from ..zoo import load_generator

    model = load_generator(target)
    # a copy: the zoo caches the model, and evaluate_gan moves the net to its device, which would
    # leave the cached model on the GPU for the next caller's CPU noise
    info = {"model": model.name, "weights": model.meta.get("weights"), "loss": model.meta.get("loss")}
    return copy.deepcopy(model.net), model.config, info


def _real_folder(real: str | None, target: str) -> Path:
    if real:
        folder = mnist_folder(real) if is_mnist_spec(real) or Path(real).exists() else None
        if folder is None:
            raise UserError(f"--real {real}: no MNIST files there")
        return folder
    run_json = Path(target) / "run.json"
    if run_json.is_file():
        held = json.loads(run_json.read_text()).get("heldout")
        if held and Path(held).is_dir():
            return Path(held)
    if mnist_folder(DEFAULT_MNIST):
        return DEFAULT_MNIST
    raise UserError("the held-out real digits were not found: pass --real mnist:DIR (the folder of mnist_5k.csv.gz)")


def evaluate_gan(target: str, n: int = 10000, seed: int = 0, real: str | None = None, judge: str = "mnist-judge",
                 device: str = "auto", weights: str = "ema", floor: bool = True,
                 truncation: float | None = None) -> dict:
    """Draw ``n`` samples (seeded; ``truncation`` as in ``gancodec generate``) and measure them
    with the judge against the held-out digits."""
    from ..generator import noise, sample_conditions
    from ..training.gan_task import to_unit
    from .judge import load_judge
    from .metrics import judge_metrics, real_floor

    if n < 10:
        raise UserError(f"-n must be at least 10, got {n}")
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    start = time.time()
    generator, config, info = _load_target(target, weights)
    if (config.size, config.channels) != (28, 1):
        raise UserError("the judge measures 28×28 greyscale digits; this generator makes "
                        f"{config.size}×{config.size}×{config.channels} images")
    generator = generator.to(dev).eval()
    folder = _real_folder(real, target)
    held, _ = load_mnist(f"mnist:{folder}", "heldout")
    judge_net = load_judge(judge, dev)
    if truncation is not None and not truncation > 0:
        raise UserError(f"--truncation must be positive, got {truncation}")
    z = noise(n, config.nz, seed, truncation)
    labels = torch.arange(n) % 10 if config.conditional else None
    inputs = sample_conditions(config, n, seed)  # as `gancodec generate` draws them
    images = []
    with torch.no_grad():
        for i in range(0, n, 1000):
            y = None if inputs is None else inputs[i : i + 1000].to(dev)
            images.append(to_unit(generator(z[i : i + 1000].to(dev), y)))
    feats, probs = judge_net.run(torch.cat(images))
    real_feats, _ = judge_net.run(to_tensor(held))
    metrics = judge_metrics(feats.cpu().numpy(), probs.cpu().numpy(), real_feats.cpu().numpy(),
                            None if labels is None else labels.numpy())
    result = {**info, "conditional": config.conditional, "n": n, "seed": seed, "truncation": truncation,
              "judge": judge, "heldout": str(folder / "mnist_5k.csv.gz"), "metrics": metrics}
    lo, hi = TARGETS["class_share"]
    result["targets"] = {
        "confident>=0.95": metrics["confident"] >= TARGETS["confident"],
        "every_class_7-13%": lo <= metrics["min_class_share"] and metrics["max_class_share"] <= hi,
    }
    if config.conditional:
        result["targets"]["agreement>=0.97"] = metrics["agreement"] >= TARGETS["agreement"]
    if floor and (folder / MNIST_TRAIN[0]).is_file():
        train, _ = load_mnist(f"mnist:{folder}", "train")
        result["floor"] = real_floor(judge_net, to_tensor(train), to_tensor(held))
        result["floor"]["what"] = "real t10k digits vs real held-out digits (same N)"
    result["seconds"] = round(time.time() - start, 1)
    return result


def summary_line(result: dict) -> str:
    m = result["metrics"]
    parts = [f"classifier FID {m['classifier_fid']:.3f}"]
    if "floor" in result:
        parts[0] += f" (floor {result['floor']['classifier_fid']:.3f})"
    parts += [f"MNIST score {m['mnist_score']:.3f}", f"confident {m['confident']:.3f}",
              f"KL {m['kl_uniform']:.4f}",
              f"classes {100 * m['min_class_share']:.1f}-{100 * m['max_class_share']:.1f} %",
              f"P/R {m['precision']:.3f}/{m['recall']:.3f}", f"D/C {m['density']:.3f}/{m['coverage']:.3f}"]
    if "agreement" in m:
        parts.append(f"agreement {m['agreement']:.4f}")
    return ", ".join(parts)


def jsonable(obj):
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    return obj
