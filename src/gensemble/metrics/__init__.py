"""Evaluation: feature extractors (images -> (N, D)) and metrics as pure functions of feature arrays.

Every metric takes numpy arrays or tensors of shape (N, D) and computes in float64 numpy. See
docs/metrics.md for the conventions (k for PRDC, the KID kernel, mode-coverage thresholds).
"""

from collections.abc import Callable

from gensemble.metrics import inception  # noqa: F401  (registers the "inception" extractor)
from gensemble.metrics.features import (
    FEATURES,
    ClassifierExtractor,
    FeatureExtractor,
    FeatureOutput,
    as_feature_array,
    get_extractor,
)
from gensemble.metrics.fid import feature_stats, fid, frechet_distance
from gensemble.metrics.inception_score import ISResult, inception_score
from gensemble.metrics.kid import KIDResult, kid, mmd2_unbiased, polynomial_kernel
from gensemble.metrics.modes import label_mode_stats, toy_mode_stats
from gensemble.metrics.prdc import prdc, precision_recall
from gensemble.registry import Registry

# Metric functions by name, for configs, the CLI and `gensemble list metrics`. Feature-set metrics
# take (real, fake) feature arrays; inception_score takes probs; the mode statistics take labels/points.
METRICS: Registry[Callable[..., object]] = Registry("metric")
METRICS.register("fid")(fid)
METRICS.register("kid")(kid)
METRICS.register("prdc")(prdc)
METRICS.register("precision_recall")(precision_recall)
METRICS.register("inception_score")(inception_score)
METRICS.register("toy_modes")(toy_mode_stats)
METRICS.register("label_modes")(label_mode_stats)

__all__ = [
    "FEATURES",
    "METRICS",
    "ClassifierExtractor",
    "FeatureExtractor",
    "FeatureOutput",
    "ISResult",
    "KIDResult",
    "as_feature_array",
    "feature_stats",
    "fid",
    "frechet_distance",
    "get_extractor",
    "inception_score",
    "kid",
    "label_mode_stats",
    "mmd2_unbiased",
    "polynomial_kernel",
    "precision_recall",
    "prdc",
    "toy_mode_stats",
]
