"""An evaluator: the reference's features, FID statistics and KID sums prepared once, then any tensor
of samples scored against them. `gensemble evaluate` and the benchmarks both score through one."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

from gensemble.evaluation.features import Featurizer
from gensemble.metrics import FeatureOutput, MetricInputs, as_feature_array, compute_metrics, feature_stats
from gensemble.metrics.kid import kid_real_sums
from gensemble.metrics.suite import KID_SUBSETS, kid_subset_size


@dataclass
class Evaluator:
    """Scores samples (images or 2-D points) with `metrics` against a fixed reference of n rows."""

    featurizer: Featurizer
    metrics: tuple[str, ...]
    real: np.ndarray  # reference features (n, D)
    real_labels: np.ndarray | None  # the reference's predicted labels, the KL target (None: uniform)
    toy: tuple[np.ndarray, float] | None  # (centres, sigma) of a 2-D mixture
    real_stats: tuple[np.ndarray, np.ndarray] | None
    kid_sums: np.ndarray | None
    seed: int = 0
    reference: FeatureOutput | None = None  # the reference's features and probabilities as extracted

    @classmethod
    def prepare(
        cls,
        featurizer: Featurizer,
        reference: Tensor,
        metrics: tuple[str, ...],
        seed: int = 0,
        toy: tuple[Tensor, float] | None = None,
        cache: tuple[Path, str] | None = None,
    ) -> Evaluator:
        """Extract the reference's features (cached on disk under `cache`) and everything the metrics
        need from them alone."""
        ref = featurizer(reference, "reference", cache)
        real = as_feature_array(ref.features, "reference features", min_rows=2)
        stats = None
        if "fid" in metrics:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="feature_stats:")  # the caller warns once
                stats = feature_stats(real)
        # Rows of n samples draw the same real KID subsets, so their kernel sums are shared.
        n = len(real)
        sums = (
            kid_real_sums(real, n, KID_SUBSETS, kid_subset_size(n), seed=seed) if "kid" in metrics else None
        )
        labels = None if featurizer.uniform_kl or ref.probs is None else ref.labels
        toy_np = None if toy is None else (np.asarray(toy[0]), float(toy[1]))
        return cls(featurizer, tuple(metrics), real, labels, toy_np, stats, sums, seed, ref)

    @property
    def n(self) -> int:
        return len(self.real)

    def score_features(self, feats: FeatureOutput) -> dict[str, float]:
        fake = as_feature_array(feats.features, "fake", min_rows=2)
        inputs = MetricInputs(
            self.real,
            fake,
            fake_probs=None if feats.probs is None else np.asarray(feats.probs),
            real_labels=self.real_labels,
            toy_modes=self.toy,
            fake_points=feats.points,
            real_stats=self.real_stats,
            kid_real_sums=self.kid_sums if len(fake) == self.n else None,
            seed=self.seed,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="feature_stats:")
            return compute_metrics(self.metrics, inputs)

    def score(
        self, x: Tensor, desc: str = "samples", cache: tuple[Path, str] | None = None
    ) -> dict[str, float]:
        """The metrics of samples x (images in [-1, 1], or 2-D points)."""
        return self.score_features(self.featurizer(x, desc, cache))
