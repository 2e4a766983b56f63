"""Evaluation: feature extractors (images -> (N, D)) and metrics as pure functions of feature arrays;
suite.py registers the metrics `gensemble evaluate` computes, with their directions.

Every metric takes numpy arrays or tensors of shape (N, D) and computes in float64 numpy. See
docs/metrics.md for the conventions (k for PRDC, the KID kernel, mode-coverage thresholds).
"""

from gensemble.metrics import inception  # noqa: F401  (registers the "inception" extractor)
from gensemble.metrics.extractor import FEATURES, FeatureExtractor, FeatureOutput, as_feature_array
from gensemble.metrics.features import ClassifierExtractor, get_extractor
from gensemble.metrics.fid import feature_stats, fid, frechet_distance
from gensemble.metrics.inception_score import ISResult, inception_score
from gensemble.metrics.kid import KIDResult, kid, mmd2_unbiased, polynomial_kernel
from gensemble.metrics.modes import label_mode_stats, mode_kernel_features, toy_mode_stats
from gensemble.metrics.prdc import prdc, precision_recall
from gensemble.metrics.suite import (
    METRICS,
    Metric,
    MetricInputs,
    compute_metrics,
    default_metrics,
    directions,
    metric_names,
)

__all__ = [
    "FEATURES",
    "METRICS",
    "Metric",
    "MetricInputs",
    "compute_metrics",
    "default_metrics",
    "directions",
    "metric_names",
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
    "mode_kernel_features",
    "polynomial_kernel",
    "precision_recall",
    "prdc",
    "toy_mode_stats",
]
