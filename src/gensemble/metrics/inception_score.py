"""Inception Score (Salimans et al. 2016): exp E_x KL(p(y|x) || p(y)), mean ± std over splits.

It needs class probabilities. The ``inception`` extractor has none (its TorchScript network stops
at pool3), so in this package the score is computed from a ``classifier:DATASET`` extractor's probs.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import rel_entr

from gensemble.errors import GensembleError
from gensemble.metrics.extractor import ArrayLike, as_feature_array


class ISResult(NamedTuple):
    """Mean and standard deviation of the per-split scores."""

    mean: float
    std: float


def inception_score(probs: ArrayLike | None, splits: int = 10) -> ISResult:
    """IS of class probabilities (N, classes): split the rows into `splits` consecutive parts, as the reference does."""
    if probs is None:
        raise GensembleError(
            "the Inception Score needs class probabilities, and this extractor gives none "
            "('inception' ends at pool3); use a 'classifier:DATASET' extractor"
        )
    p = as_feature_array(probs, "probs")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise GensembleError(
            "inception_score needs probabilities (rows >= 0 summing to 1); apply softmax to logits"
        )
    n = p.shape[0]
    if not 1 <= splits <= n:
        raise GensembleError(f"inception_score needs 1 <= splits <= N ({n}), got {splits}")
    scores = []
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits]
        marginal = part.mean(axis=0, keepdims=True)
        # rel_entr gives 0 for p = 0, so one-hot rows need no epsilon.
        kl = rel_entr(part, marginal).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return ISResult(float(np.mean(scores)), float(np.std(scores)))
