"""Fréchet distance between Gaussians fitted to two feature sets (FID when the features are Inception's).

Staged as in torch-fidelity: features (N, D) -> `feature_stats` -> (mu, sigma) -> `frechet_distance`.
Callers that cache reference statistics keep the (mu, sigma) pair and skip the first stage.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict

import numpy as np

from gensemble.errors import GensembleError
from gensemble.metrics.extractor import ArrayLike, as_feature_array


def feature_stats(feats: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64."""
    x = as_feature_array(feats, "feats", min_rows=2)
    n, d = x.shape
    if n < d:
        warnings.warn(
            f"feature_stats: {n} samples < {d} feature dims, so the covariance is rank-deficient "
            "and FID is biased; use more samples",
            stacklevel=2,
        )
    mu = x.mean(axis=0)
    # atleast_2d: np.cov returns a 0-d array for D == 1.
    sigma = np.atleast_2d(np.cov(x, rowvar=False))
    return mu, sigma


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix; tiny negative eigenvalues (round-off) clip to 0."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


# Square roots of recent first covariances, by content: a reference's sqrt (an eigh, the costliest step
# at 1280-2048 dims) is computed once for all the rows graded against it, and is the same array.
_SQRT_CACHE: OrderedDict[bytes, np.ndarray] = OrderedDict()
_SQRT_CACHE_SIZE = 4


def _cached_psd_sqrt(a: np.ndarray) -> np.ndarray:
    key = hashlib.blake2b(np.ascontiguousarray(a).tobytes(), digest_size=20).digest() + str(a.shape).encode()
    if key in _SQRT_CACHE:
        _SQRT_CACHE.move_to_end(key)
        return _SQRT_CACHE[key]
    r = _psd_sqrt(a)
    _SQRT_CACHE[key] = r
    while len(_SQRT_CACHE) > _SQRT_CACHE_SIZE:
        _SQRT_CACHE.popitem(last=False)
    return r


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """||mu1 - mu2||² + Tr(S1 + S2 - 2 (S1 S2)^½) between N(mu1, S1) and N(mu2, S2). Pass the
    reference first: S1's square root is kept for the next call with the same S1."""
    mu1, mu2 = (np.atleast_1d(np.asarray(m, dtype=np.float64)) for m in (mu1, mu2))
    s1, s2 = (np.atleast_2d(np.asarray(s, dtype=np.float64)) for s in (sigma1, sigma2))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise GensembleError(
            f"frechet_distance: shapes disagree (mu1 {mu1.shape}, sigma1 {s1.shape}, mu2 {mu2.shape}, "
            f"sigma2 {s2.shape}); both sides need features of the same dimension"
        )
    # Tr (S1 S2)^½ = Σ sqrt(eig(S1^½ S2 S1^½)): the two matrices are similar, and the second is
    # symmetric PSD, so eigvalsh is exact where scipy.linalg.sqrtm on the non-symmetric product can
    # return complex values or NaN for rank-deficient covariances (the reference needs an eps offset).
    r = _cached_psd_sqrt(s1)
    m = r @ s2 @ r
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0.0, None)).sum()
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)
    # The distance is non-negative; identical statistics can land at -1e-12 by round-off.
    return max(value, 0.0)


def fid(real: ArrayLike, fake: ArrayLike) -> float:
    """Fréchet distance between Gaussians fitted to real and fake features (N, D)."""
    return frechet_distance(*feature_stats(real), *feature_stats(fake))


def principal_axes(real: np.ndarray, *others: np.ndarray, seed: int = 0) -> np.ndarray | None:
    """Where features have more dimensions than a quarter of the real rows (raw pixels of a small
    folder: 3,072 dims against 50 images), the top n/4 principal axes (at most 64), (d, k), of the
    real rows pooled with `others` (the members' samples: the axes along which they and the data
    differ); None where the features fit. A Fréchet distance in more dimensions than samples is
    mostly noise, and each costs an eigendecomposition in d: minutes at d = 3,072."""
    n, d = real.shape
    if d <= n // 4:
        return None
    k = max(2, min(64, n // 4))
    pooled = np.concatenate([real, *others])
    if len(pooled) > 4000:  # the leading axes need no more rows than this
        pooled = pooled[np.random.default_rng(seed).choice(len(pooled), 4000, replace=False)]
    _, _, vt = np.linalg.svd(pooled - pooled.mean(0), full_matrices=False)
    return np.ascontiguousarray(vt[:k].T)


def histogram_matched(
    labels: np.ndarray, target: np.ndarray, n: int | None = None, seed: int = 0
) -> np.ndarray:
    """Indices of a resample of rows (with replacement) whose class histogram matches `target` (k,
    shares summing to 1), as Kynkäänniemi et al. (ICLR 2023) match Top-1 class histograms before FID:
    a row that wins only by drawing the classes the reference draws keeps its gain, one that wins by
    re-weighting classes loses it. Classes the row never drew are left out and the rest renormalised
    (they cannot be resampled into existence); `n` defaults to len(labels)."""
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels) if n is None else n
    target = np.asarray(target, dtype=np.float64)
    present = np.bincount(labels, minlength=len(target))[: len(target)] > 0
    want = np.where(present, target, 0.0)
    if want.sum() <= 0:
        return np.arange(len(labels))
    want = want / want.sum()
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, want)
    picks = [rng.choice(np.flatnonzero(labels == c), size=k, replace=True) for c, k in enumerate(counts) if k]
    return np.concatenate(picks) if picks else np.arange(len(labels))
