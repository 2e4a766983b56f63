"""Distances of sample features to one fixed reference set, for choosing among candidates: FID, or a
multi-scale Gaussian-kernel MMD² where FID cannot work (raw 2-D points, more dimensions than rows / 4).

The fusions that choose (auto, rejection's γ, best by held-out FID, learned weights by MMD) score
candidates with these; the reference's statistics are computed once per `ReferenceDistance`.
"""

from __future__ import annotations

import numpy as np

from gensemble.metrics.fid import feature_stats, frechet_distance


def sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T, 0.0)


def median_bandwidths(pooled: np.ndarray, seed: int = 0, n: int = 500) -> tuple[float, ...]:
    """Median pairwise distance × 2^-6 … 2^0: from the modes' fine scale up to the data's spread."""
    rng = np.random.default_rng(seed)
    sub = pooled[rng.choice(len(pooled), min(n, len(pooled)), replace=False)]
    med = float(np.sqrt(np.median(sq_dists(sub, sub)[np.triu_indices(len(sub), 1)]))) or 1.0
    return tuple(med * 2.0**k for k in range(-6, 1))


def mean_kernel(a: np.ndarray, b: np.ndarray, bandwidths: tuple[float, ...], same: bool) -> float:
    """Mean multi-scale Gaussian kernel between rows of a and b (diagonal left out when a is b)."""
    d2 = sq_dists(a, b)
    k = sum(np.exp(-d2 / (2.0 * h * h)) for h in bandwidths) / len(bandwidths)
    if same:
        return float((k.sum() - np.trace(k)) / (len(a) * (len(a) - 1)))
    return float(k.mean())


def fid_or_mmd(dims: int, n: int) -> str:
    """ "fid" where the reference has at least 4 images per feature dimension, else "mmd": with fewer,
    the Fréchet distance's covariances are rank-deficient, mostly noise, and take minutes in
    thousands of dimensions (raw pixels of a small folder), where the kernel MMD² stays unbiased."""
    return "mmd" if dims > n // 4 else "fid"


class ReferenceDistance:
    """Distance of a feature set to the reference `real`: "fid", or "mmd" (unbiased multi-scale
    Gaussian-kernel MMD², widths from the reference's median distance)."""

    def __init__(self, kind: str, real: np.ndarray, seed: int = 0) -> None:
        self.kind, self.real = kind, real
        if kind == "fid":
            self.stats = feature_stats(real)
        else:
            self.widths = median_bandwidths(real, seed)
            self.rr = mean_kernel(real, real, self.widths, same=True)

    def __call__(self, feats: np.ndarray) -> float:
        if self.kind == "fid":
            return float(frechet_distance(*feature_stats(feats), *self.stats))
        ff = mean_kernel(feats, feats, self.widths, same=True)
        return float(ff + self.rr - 2.0 * mean_kernel(feats, self.real, self.widths, same=False))


class BlockDistance:
    """Distance to one reference on several feature spaces at once: the features are the spaces'
    columns side by side (`dims` wide each), one ReferenceDistance per block. With one block it is
    that distance; with several, the geometric mean of the blocks' distances, so that no space's scale
    outweighs another's (a constant factor on one space shifts every candidate's log score alike) and
    a candidate must do well on all of them to score well."""

    # A distance at or below this (an unbiased MMD² can dip under 0) counts as this: the log stays finite.
    FLOOR = 1e-12

    def __init__(self, names: list[str], parts: list[ReferenceDistance], dims: list[int]) -> None:
        if not parts or len(parts) != len(dims) or len(names) != len(parts):
            raise ValueError("BlockDistance needs one name, one distance and one width per block")
        self.names, self.parts, self.dims = names, parts, dims
        self.kind = parts[0].kind if len(parts) == 1 else "geometric mean"

    @property
    def label(self) -> str:
        """What the score is, in words: "FID", or "geometric mean of FID on A and MMD² on B"."""
        word = {"fid": "FID", "mmd": "MMD²"}
        if len(self.parts) == 1:
            return word[self.parts[0].kind]
        each = " and ".join(f"{word[p.kind]} on {n}" for n, p in zip(self.names, self.parts))
        return f"geometric mean of {each}"

    def __call__(self, feats: np.ndarray) -> float:
        if len(self.parts) == 1:
            return self.parts[0](feats)
        edges = np.cumsum([0, *self.dims])
        logs = [
            np.log(max(part(feats[:, a:b]), self.FLOOR))
            for part, a, b in zip(self.parts, edges[:-1], edges[1:])
        ]
        return float(np.exp(np.mean(logs)))
