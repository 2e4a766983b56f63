"""k-means clusters of feature arrays: the per-cluster coverage view of an unlabelled reference
(evaluation.coverage) and the partition scheme's split of the training data (ensemble.partition)."""

from __future__ import annotations

import numpy as np


def nearest(features: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre (Euclidean) of every row."""
    d = (features**2).sum(1)[:, None] - 2.0 * features @ centres.T + (centres**2).sum(1)[None, :]
    return d.argmin(1)


def kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 50) -> np.ndarray:
    """(k, D) centres by Lloyd's algorithm from a k-means++ start (numpy only: importing scikit-learn
    would add 1.5 s to every command's start)."""
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    d = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):  # k-means++: each next centre far from those chosen, in proportion to d²
        nxt = x[rng.choice(len(x), p=d / d.sum())] if d.sum() > 0 else x[rng.integers(len(x))]
        centres.append(nxt)
        d = np.minimum(d, ((x - nxt) ** 2).sum(1))
    c = np.asarray(centres)
    for _ in range(iters):
        labels = nearest(x, c)
        new = np.array([x[labels == j].mean(0) if (labels == j).any() else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return c
