"""k-means clusters of the training images, for a *self-conditioned* GAN (Liu et al. 2020).

An unconditional generator maps one connected blob of noise onto data made of separate groups
(ten digits): part of its noise space must land between them, and those samples are the
ambiguous digits an unconditional MNIST GAN draws. A self-conditioned GAN partitions the
training images into clusters *without labels* and trains a conditional pair on the cluster
ids (conditional BN in G, projection in D): each cluster gets its own mapping, and sampling draws
a cluster in proportion to its size, then noise. It stays an unconditional model — no class
label is used anywhere — but its noise space is a mixture, like the data.

The paper re-clusters the discriminator's features during training; here the clusters are
computed once, on pixels, before training (k-means++ seeding, Lloyd iterations, seeded and
deterministic) and kept in the run's checkpoint, so a resumed run trains on the same ids.
"""

from __future__ import annotations

import numpy as np
import torch


def kmeans(images: torch.Tensor | np.ndarray, k: int, seed: int = 0, iterations: int = 30) -> np.ndarray:
    """Cluster ids (n,) int64 of ``images`` (n, ...) by k-means on their flattened pixels."""
    x = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    n = len(x)
    if not 2 <= k <= n:
        raise ValueError(f"k-means needs 2 <= k <= {n} clusters, got {k}")
    rng = np.random.default_rng(seed)
    sq = (x * x).sum(1)
    centres = [x[rng.integers(n)]]
    nearest = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):  # k-means++: each new centre drawn in proportion to squared distance
        p = nearest / nearest.sum() if nearest.sum() > 0 else np.full(n, 1 / n)
        centres.append(x[rng.choice(n, p=p)])
        nearest = np.minimum(nearest, ((x - centres[-1]) ** 2).sum(1))
    c = np.stack(centres)
    labels = np.full(n, -1)
    for _ in range(iterations):
        dist = sq[:, None] - 2 * x @ c.T + (c * c).sum(1)[None]
        new = dist.argmin(1)
        if np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = labels == j
            # an emptied cluster takes the point farthest from its centre
            c[j] = x[members].mean(0) if members.any() else x[dist[np.arange(n), labels].argmax()]
    return labels.astype(np.int64)


def cluster_prior(labels: np.ndarray, k: int) -> list[float]:
    """Each cluster's share of the images: the distribution a self-conditioned model samples."""
    counts = np.bincount(np.asarray(labels), minlength=k).astype(np.float64)
    return [float(v) for v in counts / counts.sum()]
