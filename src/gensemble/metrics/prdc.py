"""k-NN precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020).

Each real (fake) sample's manifold ball has the radius of its k-th nearest real (fake) neighbour,
the sample itself excluded. Precision: share of fakes inside some real ball. Recall: share of reals
inside some fake ball. Density: mean number of real balls holding a fake, divided by k. Coverage:
share of real balls holding at least one fake. Kynkäänniemi et al. use k=3 and count a point on the
boundary as inside (``<=``); Naeem et al. use k=5 and strict ``<`` (their reference code), so `prdc`
takes k for density/coverage and k_pr for precision/recall.
"""

from __future__ import annotations

import numpy as np

from gensemble.errors import GensembleError
from gensemble.metrics.extractor import ArrayLike, as_feature_array

BLOCK = 2**24  # entries per block of the distance matrix (128 MB of float64), to bound memory


def _chunk(other: int) -> int:
    return max(1, BLOCK // max(other, 1))


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (len(a), len(b)) through one matrix product (BLAS), clipped at 0."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.clip(sq, 0.0, None))


def knn_radii(x: np.ndarray, ks: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Distance from each row of x to its k-th nearest other row, for each k in ks."""
    n = x.shape[0]
    if max(ks) >= n:
        raise GensembleError(f"k-NN radii with k={max(ks)} need more than {max(ks)} samples, got {n}")
    out = {k: np.empty(n) for k in ks}
    chunk = _chunk(n)
    for start in range(0, n, chunk):
        d = pairwise_distances(x[start : start + chunk], x)
        rows = np.arange(d.shape[0])
        d[rows, start + rows] = np.inf  # exclude the point itself
        part = np.partition(d, [k - 1 for k in ks], axis=1)
        for k in ks:
            out[k][start : start + chunk] = part[:, k - 1]
    return out


def _check_pair(real: ArrayLike, fake: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x = as_feature_array(real, "real", min_rows=2)
    y = as_feature_array(fake, "fake", min_rows=2)
    if x.shape[1] != y.shape[1]:
        raise GensembleError(f"prdc: real has {x.shape[1]} feature dims but fake has {y.shape[1]}")
    return x, y


def prdc(real: ArrayLike, fake: ArrayLike, k: int = 5, k_pr: int | None = 3) -> dict[str, float]:
    """Precision and recall (k_pr-NN balls, default 3) and density and coverage (k-NN balls, default 5).

    k_pr=None uses k for all four, as in Naeem et al.'s reference code.
    """
    x, y = _check_pair(real, fake)
    k_pr = k if k_pr is None else k_pr
    if k < 1 or k_pr < 1:
        raise GensembleError(f"prdc needs k >= 1 and k_pr >= 1, got k={k}, k_pr={k_pr}")
    real_r = knn_radii(x, tuple(sorted({k, k_pr})))
    fake_r = knn_radii(y, (k_pr,))[k_pr]
    r_dc, r_pr = real_r[k], real_r[k_pr]

    fake_in_real = np.zeros(y.shape[0], bool)  # precision
    balls_per_fake = np.zeros(y.shape[0])  # density
    real_in_fake = np.zeros(x.shape[0], bool)  # recall
    nearest_fake = np.full(x.shape[0], np.inf)  # coverage
    # One pass over fake chunks; each block is real x fake_chunk.
    chunk = _chunk(x.shape[0])
    for start in range(0, y.shape[0], chunk):
        stop = start + chunk
        d = pairwise_distances(x, y[start:stop])
        fake_in_real[start:stop] = (d <= r_pr[:, None]).any(axis=0)
        balls_per_fake[start:stop] = (d < r_dc[:, None]).sum(axis=0)
        real_in_fake |= (d <= fake_r[None, start:stop]).any(axis=1)
        nearest_fake = np.minimum(nearest_fake, d.min(axis=1))
    return {
        "precision": float(fake_in_real.mean()),
        "recall": float(real_in_fake.mean()),
        "density": float(balls_per_fake.mean() / k),
        "coverage": float((nearest_fake < r_dc).mean()),
    }


def precision_recall(real: ArrayLike, fake: ArrayLike, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN manifold balls."""
    out = prdc(real, fake, k=k, k_pr=k)
    return {"precision": out["precision"], "recall": out["recall"]}
