"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD² with a polynomial kernel.

k(x, y) = (gamma x·y + coef0)^degree with gamma = 1/D by default, i.e. (x·y/D + 1)³. The estimate is
averaged over random subsets, as in the reference implementation and torch-fidelity.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gensemble.errors import GensembleError
from gensemble.metrics.extractor import ArrayLike, as_feature_array


class PolyKernel(NamedTuple):
    """KID's kernel (gamma x·y + coef0)^degree; gamma None is 1/D, the reference implementation's."""

    degree: int = 3
    gamma: float | None = None
    coef0: float = 1.0


class KIDResult(NamedTuple):
    """Mean and standard deviation of the per-subset MMD² estimates."""

    mean: float
    std: float


def polynomial_kernel(
    x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef0: float = 1.0
) -> np.ndarray:
    """Gram matrix (gamma x·y + coef0)^degree for rows of x (N, D) and y (M, D); gamma defaults to 1/D."""
    g = 1.0 / x.shape[1] if gamma is None else gamma
    base = g * (x @ y.T) + coef0
    if not (isinstance(degree, int) and 1 <= degree <= 4):
        return base**degree
    # Repeated products: numpy's float ** 3 is a general pow, ~10x slower, and KID builds 300 such
    # matrices of 1000 x 1000 per fake set.
    out = base.copy()
    for _ in range(degree - 1):
        out *= base
    return out


def mmd2_unbiased(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """Unbiased MMD² from the three m x m Gram matrices (diagonals of k_xx and k_yy excluded)."""
    return mmd2_from_sums(off_diagonal_sum(k_xx), off_diagonal_sum(k_yy), float(k_xy.sum()), k_xx.shape[0])


def mmd2_from_sums(sum_xx: float, sum_yy: float, sum_xy: float, m: int) -> float:
    """Unbiased MMD² from the off-diagonal within-set kernel sums and the full cross sum of m rows each."""
    # x_i and y_j are independent for every (i, j), so the cross term keeps its diagonal and stays unbiased.
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * sum_xy / (m * m))


def kid_subsets(
    n_real: int, n_fake: int, subsets: int, m: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (real, fake) row indices of every subset, drawn as the reference implementation does."""
    rng = np.random.default_rng(seed)
    return [
        (rng.choice(n_real, m, replace=False), rng.choice(n_fake, m, replace=False)) for _ in range(subsets)
    ]


def off_diagonal_sum(k: np.ndarray) -> float:
    return float(k.sum() - np.trace(k))


# Up to this many entries (N × M) a whole Gram matrix is built once and every subset's sum read off it
# (200 MB of float64); beyond it each subset's blocks are built on their own, as the reference does.
WHOLE_GRAM = 25_000_000


def block_sums(
    x: np.ndarray, y: np.ndarray, rows: np.ndarray, cols: np.ndarray, kernel: PolyKernel
) -> np.ndarray:
    """Σ_{i ∈ rows[s], j ∈ cols[s]} k(x_i, y_j) for every subset s; rows (S, m) index x, cols (S, m) y.

    One Gram matrix and two matrix products (1ᵀ K 1 per subset, with 0/1 indicator columns) in place
    of 2S blocks of m × m: at N = 2,000 and 100 subsets of 1,000 about ten times less arithmetic, and
    the same sums up to float64 rounding."""
    if x.shape[0] * y.shape[0] > WHOLE_GRAM:
        return np.array([float(polynomial_kernel(x[r], y[c], *kernel).sum()) for r, c in zip(rows, cols)])
    k = polynomial_kernel(x, y, *kernel)
    a, b = indicators(rows, x.shape[0]), indicators(cols, y.shape[0])
    return np.einsum("is,is->s", a, k @ b)


def indicators(idx: np.ndarray, n: int) -> np.ndarray:
    """(n, S) 0/1 matrix whose column s marks the rows idx[s]."""
    out = np.zeros((n, len(idx)))
    out[idx, np.arange(len(idx))[:, None]] = 1.0
    return out


def within_sums(x: np.ndarray, rows: np.ndarray, kernel: PolyKernel) -> np.ndarray:
    """Off-diagonal within-set kernel sums of every subset rows[s] of x."""
    total = block_sums(x, x, rows, rows, kernel)
    self_k = (1.0 / x.shape[1] if kernel.gamma is None else kernel.gamma) * np.einsum("ij,ij->i", x, x)
    self_k = (self_k + kernel.coef0) ** kernel.degree
    return total - self_k[rows].sum(1)


def kid_real_sums(
    real: ArrayLike,
    n_fake: int,
    subsets: int = 100,
    subset_size: int = 1000,
    kernel: PolyKernel = PolyKernel(),
    seed: int = 0,
) -> np.ndarray:
    """The real-real kernel sum of every subset `kid` draws against `n_fake` fake rows. It depends on
    the real features only, so an evaluation that scores many fake sets computes it once."""
    x = as_feature_array(real, "real", min_rows=2)
    m = min(subset_size, x.shape[0], n_fake)
    idx = kid_subsets(x.shape[0], n_fake, subsets, m, seed)
    return within_sums(x, np.stack([ix for ix, _ in idx]), kernel)


def kid(
    real: ArrayLike,
    fake: ArrayLike,
    subsets: int = 100,
    subset_size: int = 1000,
    kernel: PolyKernel = PolyKernel(),
    seed: int = 0,
    real_sums: np.ndarray | None = None,
) -> KIDResult:
    """KID between real and fake features (N, D): mean ± std of unbiased MMD² over random subsets.
    `real_sums`: `kid_real_sums` of the same real features and settings, to skip recomputing them."""
    x = as_feature_array(real, "real", min_rows=2)
    y = as_feature_array(fake, "fake", min_rows=2)
    if x.shape[1] != y.shape[1]:
        raise GensembleError(f"kid: real has {x.shape[1]} feature dims but fake has {y.shape[1]}")
    if subsets < 1 or subset_size < 2:
        raise GensembleError(f"kid needs subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
    m = min(subset_size, x.shape[0], y.shape[0])
    if real_sums is not None and len(real_sums) != subsets:
        raise GensembleError(f"kid: real_sums has {len(real_sums)} subsets, not {subsets}")
    idx = kid_subsets(x.shape[0], y.shape[0], subsets, m, seed)
    rows, cols = np.stack([ix for ix, _ in idx]), np.stack([iy for _, iy in idx])
    sum_xx = within_sums(x, rows, kernel) if real_sums is None else real_sums
    sum_yy, sum_xy = within_sums(y, cols, kernel), block_sums(x, y, rows, cols, kernel)
    estimates = np.array([mmd2_from_sums(a, b, c, m) for a, b, c in zip(sum_xx, sum_yy, sum_xy)])
    return KIDResult(float(estimates.mean()), float(estimates.std()))
