"""Generative metrics with the project's own MNIST judge — nothing to download.

All of them read the judge's outputs on generated and real held-out digits:

* **classifier FID** — the Fréchet distance between Gaussians fitted to the judge's 128-d
  penultimate features. It is *not* FID (no Inception network) and not comparable with FIDs in
  papers; its floor is the distance between two sets of real digits (:func:`real_floor`).
* **MNIST score** — the Inception-score formula exp(E_x KL(p(y|x) ‖ p(y))) with the judge; at most
  10 (confident and evenly spread over the ten classes).
* **class histogram** — share of each class among samples; ``kl_uniform`` is KL(histogram ‖
  uniform) (log 10 ≈ 2.303 when all samples are one class), ``classes_missing`` counts classes
  with no sample. This is the mode-collapse check.
* **confident** — share of samples whose top class probability is ≥ 0.9.
* **precision / recall** (Kynkäänniemi et al. 2019) and **density / coverage** (Naeem et al.
  2020) on k-nearest-neighbour balls, k = 5, in the judge's feature space.
* **agreement** — for a conditional model, how often the judge's class is the requested one.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from scipy import linalg

CONFIDENT = 0.9
K = 5


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N, D)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # dead features (collapsed samples) make the product singular
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(covmean).all():  # regularise, as pytorch-fid does
            eps = np.eye(len(cov_a)) * 1e-6
            covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = np.real(covmean)
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))
    return max(value, 0.0)  # rounding can leave a tiny negative number for identical sets


def mnist_score(probs: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) ‖ p(y))) over class probabilities (N, 10)."""
    p = np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)
    marginal = p.mean(0, keepdims=True)
    return float(math.exp((p * (np.log(p) - np.log(marginal))).sum(1).mean()))


def class_histogram(labels: np.ndarray, classes: int = 10) -> dict:
    """Share of each class, KL to uniform (nats) and how many classes never appear."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=classes)[:classes]
    share = counts / max(counts.sum(), 1)
    nz = share > 0
    kl = float((share[nz] * np.log(share[nz] * classes)).sum())
    return {"histogram": [round(float(s), 5) for s in share], "kl_uniform": kl,
            "classes_missing": int((counts == 0).sum()), "min_class_share": float(share.min()),
            "max_class_share": float(share.max())}


def _kth_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    d = torch.cdist(x, x)
    return d.kthvalue(k + 1, dim=1).values  # +1: the point itself is at distance 0


def prdc(real: np.ndarray, fake: np.ndarray, k: int = K) -> dict:
    """Precision, recall (Kynkäänniemi 2019), density, coverage (Naeem 2020) with k-NN balls."""
    # float32 distances: ample for k-NN ranks, half the memory of float64 at N = 10,000
    r = torch.as_tensor(np.asarray(real), dtype=torch.float32)
    f = torch.as_tensor(np.asarray(fake), dtype=torch.float32)
    r_rad, f_rad = _kth_radius(r, k), _kth_radius(f, k)
    d = torch.cdist(r, f)  # (n_real, n_fake)
    inside_real = d <= r_rad[:, None]  # fake j inside real i's ball
    precision = inside_real.any(0).double().mean()
    recall = (d <= f_rad[None, :]).any(1).double().mean()
    density = inside_real.sum(0).double().mean() / k
    coverage = (d.min(1).values <= r_rad).double().mean()
    return {"precision": float(precision), "recall": float(recall), "density": float(density),
            "coverage": float(coverage)}


def judge_metrics(fake_feats: np.ndarray, fake_probs: np.ndarray, real_feats: np.ndarray | None,
                  requested: np.ndarray | None = None, prdc_n: int | None = None) -> dict:
    """Every metric from the judge's outputs on samples (and on real held-out digits).

    Distribution metrics (classifier FID, precision/recall, density/coverage) use the first
    ``min(len(fake), len(real))`` samples, so that both sets have the same size (the distance is
    biased by N); ``prdc_n`` caps that further (k-NN costs N²)."""
    fake_feats, fake_probs = np.asarray(fake_feats), np.asarray(fake_probs)
    top = fake_probs.argmax(1)
    out: dict = {"n": int(len(fake_probs)), "mnist_score": mnist_score(fake_probs),
                 "confident": float((fake_probs.max(1) >= CONFIDENT).mean())}
    out.update(class_histogram(top, fake_probs.shape[1]))
    if requested is not None:
        out["agreement"] = float((top == np.asarray(requested)).mean())
    if real_feats is not None:
        # a fixed shuffle: a real set stored in class order (mnist_5k is) must not be cut to a few classes
        real_feats = np.asarray(real_feats)[np.random.default_rng(0).permutation(len(real_feats))]
        m = min(len(fake_feats), len(real_feats))
        out["fid_n"] = m
        out["classifier_fid"] = frechet_distance(fake_feats[:m], real_feats[:m])
        m = min(m, prdc_n or m)
        out.update(prdc(real_feats[:m], fake_feats[:m]))
    return out


def real_floor(judge, train_images: torch.Tensor, heldout_images: torch.Tensor, prdc_n: int | None = None) -> dict:
    """The metrics of real training digits against real held-out digits: what a generator that
    reproduced its training set perfectly would score (the classifier FID's floor)."""
    m = min(len(train_images), len(heldout_images))
    tf, tp = judge.run(train_images[:m])
    hf, _ = judge.run(heldout_images[:m])
    return judge_metrics(tf.cpu().numpy(), tp.cpu().numpy(), hf.cpu().numpy(), prdc_n=prdc_n)
