"""The metrics `gensemble evaluate` computes, registered by name with the columns each one writes and
their direction (higher or lower is better, or neither). This registry is the one source of metric
names: `gensemble list metrics`, `evaluate --metrics`, the result table and the report read it.

Each metric is a pure function of one `MetricInputs` (feature arrays and, where needed, class
probabilities or 2-D mode centres) returning a flat dict of floats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gensemble.errors import GensembleError
from gensemble.metrics.fid import feature_stats, frechet_distance
from gensemble.metrics.inception_score import inception_score
from gensemble.metrics.kid import kid
from gensemble.metrics.modes import label_mode_stats, toy_mode_stats
from gensemble.metrics.prdc import prdc
from gensemble.registry import Registry

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
# Direction of a column: True if higher is better, False if lower is, None if neither.
Direction = bool | None


@dataclass(frozen=True)
class MetricInputs:
    """What one row's metrics are computed from; `real` and `fake` are float64 arrays (N, D)."""

    real: np.ndarray
    fake: np.ndarray
    fake_probs: np.ndarray | None = None  # (N, classes): for "is" and label modes
    real_labels: np.ndarray | None = None  # the reference's predicted labels (KL target); None: uniform
    toy_modes: tuple[np.ndarray, float] | None = None  # (centres, sigma) of a 2-D mixture
    fake_points: np.ndarray | None = None  # the 2-D samples, where `fake` are features of them
    real_stats: tuple[np.ndarray, np.ndarray] | None = None  # feature_stats(real), computed once
    kid_real_sums: np.ndarray | None = None  # kid_real_sums(real, ...) for this n, computed once
    seed: int = 0


@dataclass(frozen=True)
class Metric:
    """One registered metric: its columns with directions, whether its value depends on the sample
    size (such metrics are refused or flagged at small n), and its compute function."""

    columns: dict[str, Direction]
    compute: Callable[[MetricInputs], dict[str, float]]
    sample_size: bool
    default: bool
    doc: str


METRICS: Registry[Metric] = Registry("metric")


def register_metric(
    name: str, columns: dict[str, Direction], doc: str, sample_size: bool = True, default: bool = True
) -> Callable:
    arrows = {True: "↑", False: "↓", None: ""}
    described = f"{doc} (columns: {', '.join(c + arrows[d] for c, d in columns.items())})"

    def deco(fn: Callable[[MetricInputs], dict[str, float]]) -> Callable[[MetricInputs], dict[str, float]]:
        METRICS.register(name, described)(Metric(columns, fn, sample_size, default, described))
        return fn

    return deco


def kid_subset_size(n: int) -> int:
    """1000 (the reference protocol) when n >= 2000, else n // 2: subsets of all n rows would all be
    the same set and report a KID std of 0."""
    return max(2, min(KID_SUBSET_SIZE, n // 2))


@register_metric("fid", {"fid": False}, "Fréchet distance between Gaussian fits of the features")
def _fid(inp: MetricInputs) -> dict[str, float]:
    mu, sigma = inp.real_stats if inp.real_stats is not None else feature_stats(inp.real)
    return {"fid": frechet_distance(mu, sigma, *feature_stats(inp.fake))}


@register_metric(
    "kid", {"kid": False, "kid_std": None}, "kernel inception distance (unbiased MMD², cubic kernel)"
)
def _kid(inp: MetricInputs) -> dict[str, float]:
    size = kid_subset_size(min(len(inp.real), len(inp.fake)))
    sums = inp.kid_real_sums
    res = kid(inp.real, inp.fake, subsets=KID_SUBSETS, subset_size=size, seed=inp.seed, real_sums=sums)
    return {"kid": res.mean, "kid_std": res.std}


@register_metric(
    "is",
    {"is": True, "is_std": None},
    "inception score of the class probabilities",
    sample_size=False,
    default=False,
)
def _is(inp: MetricInputs) -> dict[str, float]:
    n = 0 if inp.fake_probs is None else len(inp.fake_probs)
    res = inception_score(inp.fake_probs, splits=max(1, min(10, n)))
    return {"is": res.mean, "is_std": res.std}


@register_metric(
    "prdc",
    {"precision": True, "recall": True, "density": None, "coverage": True},
    "precision, recall, density and coverage (k-NN manifolds, k = 5)",
)
def _prdc(inp: MetricInputs) -> dict[str, float]:
    return prdc(inp.real, inp.fake)


@register_metric(
    "modes",
    {"modes_covered": True, "high_quality": True, "modes_hit": True, "kl": False},
    "modes covered and high-quality share (2-D mixtures), or label modes hit and KL (classified images)",
    sample_size=False,
)
def _modes(inp: MetricInputs) -> dict[str, float]:
    if inp.toy_modes is not None:
        points = inp.fake if inp.fake_points is None else inp.fake_points
        stats = toy_mode_stats(points, inp.toy_modes[0], inp.toy_modes[1])
        return {"modes_covered": stats["modes_covered"], "high_quality": stats["high_quality_frac"]}
    if inp.fake_probs is not None:
        probs = np.asarray(inp.fake_probs)
        stats = label_mode_stats(probs.argmax(axis=1), probs.shape[1], inp.real_labels)
        return {"modes_hit": stats["modes_hit"], "kl": stats["kl"]}
    raise GensembleError("the 'modes' metric needs class probabilities (a classifier) or 2-D mode centres")


def metric_names() -> tuple[str, ...]:
    """Every metric, in the order their columns appear in tables."""
    return tuple(METRICS.registered())


def default_metrics() -> tuple[str, ...]:
    return tuple(n for n in metric_names() if METRICS.get(n).default)


def directions() -> dict[str, Direction]:
    """Every column any metric writes, with its direction."""
    return {col: d for n in metric_names() for col, d in METRICS.get(n).columns.items()}


def compute_metrics(names: tuple[str, ...] | list[str], inputs: MetricInputs) -> dict[str, float]:
    """The named metrics of one row, as one flat dict of columns."""
    out: dict[str, float] = {}
    for name in names:
        out.update(METRICS.get(name).compute(inputs))
    return out
