"""What an evaluation will do, decided before anything is scored: the run and its held-out split,
the reference images, the features, the metrics, n, and the notes that go with them. Everything
that can be refused is refused here, before a feature network or a fusion is built."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gensemble.data import Dataset, heldout_halves, load_dataset
from gensemble.data.images import read_image_folder
from gensemble.errors import ConfigError
from gensemble.evaluation.features import (
    Featurizer,
    announce_cost,
    check_features_name,
    classifier_datasets,
    default_feature_cache,
    fitting_classifiers,
    resolve_features,
)
from gensemble.evaluation.labels import ImageClassifier, ReferenceLabels, is_classifier_file, read_labels
from gensemble.evaluation.result import WARN_N
from gensemble.fusion import get_fusion, parse_fusion_settings
from gensemble.fusion.base import steered_by
from gensemble.fusion.params import concrete
from gensemble.metrics import METRICS, default_metrics, metric_names
from gensemble.metrics.effnet import missing as effnet_missing
from gensemble.run import Ensemble, load_run_and_heldout
from gensemble.tournament import require_discriminators

# Names, defaults and sample-size dependence all come from the metric registry (metrics/suite.py).
METRIC_NAMES = metric_names()
DEFAULT_METRICS = default_metrics()
# Below MIN_N samples a row, FID/KID/PRDC are refused (a 5-image FID is noise); below WARN_N they are
# reported with a warning and marked in the table and the report: FID's bias shrinks like 1/n.
MIN_N = 50
SAMPLE_SIZE_METRICS = tuple(n for n in METRIC_NAMES if METRICS.get(n).sample_size)
# The held-out split is halved with this seed, as the fusions halve it (FusionParams.fit_seed = 0):
# they fit on the first half, every row here is scored on the second.
REFERENCE_SEED = 0
FLOOR_SEED = 0  # which training examples form the floor row; fixed so that it is cached
MAX_N = 5000
TOY_N = 2500  # the VEEGAN/PacGAN protocol counts modes on 2,500 samples (docs/metrics.md)
INCEPTION_N = 500  # ~0.3 s per image on a CPU: 500 images per row is minutes, not hours
# The default independent space: nothing in gensemble steers by it (no judge, critic, choice or
# selection), so it grades every row; benchmarks/feature_spaces.py measured its speed and its
# agreement with Inception (docs/results/feature_spaces.json).
INDEPENDENT_SPACE = "effnet-lite0"
# What the spaces after the first are graded with: FID and KID, beside the first space's full table.
ALSO_METRICS = ("fid", "kid")
# `--reference train`: score against the training split instead of the held-out evaluation half.
TRAIN_REFERENCE = "train"


@dataclass(frozen=True)
class EvalRequest:
    """What the user asked for (the CLI's options). `metrics`: any of fid, kid, is, prdc, modes
    (default fid, kid, prdc, modes). `features`: spaces, the first graded in full: "effnet-lite0",
    "classifier" (the run dataset's domain classifier), "classifier:DATASET", "inception", "pixels",
    or for 2-D toys "points"; None: the defaults of `grading_spaces` (effnet-lite0, then the classifier).
    `n`: samples per row, default min(held-out evaluation half, 5000); 2500 for 2-D toys; 500 for
    inception. `reference`: a folder of real images, or "train". `fusion_settings`:
    "fusion.KEY=VALUE" items, applied to each fusion that has KEY, or {fusion: {KEY: VALUE}}. Real
    and generated features are cached in `cache_dir` (default $GENSEMBLE_CACHE/features)."""

    metrics: Sequence[str] | str | None = None
    features: Sequence[str] | str | None = None
    n: int | None = None
    fusions: Sequence[str] | str = ()
    seed: int = 0
    device: str = "cpu"
    cache_dir: str | Path | None = None
    step: int | None = None
    reference: str | Path | None = None
    fusion_settings: Sequence[str] | dict[str, dict[str, Any]] = ()
    labels: str | Path | None = (
        None  # a CSV of file,label rows for the --reference folder's images, or a TorchScript classifier
    )

    @property
    def on_training_split(self) -> bool:
        return self.reference is not None and str(self.reference) == TRAIN_REFERENCE


@dataclass
class EvalPlan:
    """Everything the scoring needs, resolved: the run, its data, the reference, features and n."""

    request: EvalRequest
    ens: Ensemble
    heldout: Dataset
    fusion_names: list[str]
    settings: dict[str, Any]  # fusion name -> its parsed parameters
    real: Tensor  # the reference images (n of them are scored against)
    where: str  # the reference, in words
    featurizer: Featurizer
    metrics: tuple[str, ...]
    n: int
    cache: Path
    label: str  # the cache entries' prefix
    notes: list[str] = field(default_factory=list)
    start: float = field(default_factory=time.perf_counter)
    also: list[Featurizer] = field(default_factory=list)  # further spaces, graded with ALSO_METRICS
    steered: dict[str, tuple[str, ...]] = field(default_factory=dict)  # row -> spaces that steered it
    labels: ReferenceLabels | None = None  # the user's classes of the reference images (--labels)
    classifier: ImageClassifier | None = None  # the user's classifier (--labels CLASSIFIER.pt), if any

    @property
    def toy(self) -> tuple[Tensor, float] | None:
        """(centres, sigma) of a 2-D mixture, None for images."""
        h = self.heldout
        return None if h.is_image else (h.modes, float(h.sigma))

    @property
    def real_heldout_half(self) -> Tensor:
        """The evaluation half of the held-out split (the default reference)."""
        return heldout_halves(self.heldout.x, REFERENCE_SEED)[1]

    @property
    def reference_text(self) -> str:
        held = "" if self.request.reference is not None else f"; {len(self.heldout)} held out"
        return f"{self.where} ({self.n} of {len(self.real)}{held})"


def resolve_metrics(metrics: Sequence[str] | str | None) -> tuple[tuple[str, ...], bool]:
    """Metric names (a list or "fid,kid") checked against the known ones; and whether they were given."""
    if metrics is None:
        return DEFAULT_METRICS, False
    names = [m.strip().lower() for m in (metrics.split(",") if isinstance(metrics, str) else metrics)]
    names = [m for m in dict.fromkeys(names) if m]
    if not names:
        raise ConfigError(f"no metrics given; known metrics: {', '.join(METRIC_NAMES)}")
    for m in names:
        if m not in METRIC_NAMES:
            raise ConfigError(f"unknown metric {m!r}; known metrics: {', '.join(METRIC_NAMES)}")
    return tuple(names), True


def fusion_list(fusions: Sequence[str] | str) -> list[str]:
    """ "--fusion a,b --fusion c" and ["a", "b"] alike; repeated names are evaluated once."""
    fusions = (fusions,) if isinstance(fusions, str) else fusions
    return [name for name in dict.fromkeys(p.strip() for f in fusions for p in f.split(",")) if name]


def plan_evaluation(run_dir: str | Path, req: EvalRequest) -> EvalPlan:
    """Check the request, load the run (for inference: no training memory check) and its data once,
    and decide the reference, features, metrics and n."""
    # Everything that can be checked without loading anything fails first.
    metrics, explicit = resolve_metrics(req.metrics)
    asked = feature_list(req.features)
    for name in asked or ():
        check_features_name(name)
    if req.n is not None and req.n < 2:
        raise ConfigError(f"--n must be at least 2 (FID needs a covariance), got {req.n}")
    names = fusion_list(req.fusions)
    settings = parse_fusion_settings(names, req.fusion_settings)
    start = time.perf_counter()
    ens, heldout = load_run_and_heldout(run_dir, req.device, req.step)
    for name in names:
        params = concrete(settings[name], ens.cfg.data.name)
        if get_fusion(name).needs_discriminators and getattr(params, "needs_discriminators", True):
            require_discriminators(ens, f"fusion {name!r}")
    real, where, labels = reference_of(req, ens, heldout)
    classifier = None
    if req.labels is not None and is_classifier_file(req.labels):
        classifier = ImageClassifier(req.labels, tuple(heldout.x.shape[1:]))
        labels = classifier.reference_labels(real)
    check_enough(req.n, real, where, metrics)
    dataset = ens.cfg.data.name
    spaces, notes = grading_spaces(asked, dataset, heldout.is_image, metrics)
    featurizer, metrics, more = resolve_features(
        spaces[0], dataset, heldout.is_image, metrics, explicit, req.device
    )
    notes += more
    also = [
        resolve_features(s, dataset, heldout.is_image, ALSO_METRICS, True, req.device)[0]
        for s in spaces[1:]
        if s != featurizer.name
    ]
    n = choose_n(req.n, featurizer, real, where, also)
    cache = Path(req.cache_dir).expanduser() if req.cache_dir is not None else default_feature_cache()
    label = f"{ens.cfg.data.name}-{ens.cfg.data.image_size or 'native'}px"
    plan = EvalPlan(
        req,
        ens,
        heldout,
        names,
        settings,
        real,
        where,
        featurizer,
        metrics,
        n,
        cache,
        label,
        notes,
        start,
        also,
        labels=labels,
        classifier=classifier,
    )
    plan.steered = {f"fusion:{name}": steered_by(name, settings[name], dataset) for name in names}
    warn_about_n(plan)
    if featurizer.name.startswith("inception") and asked is None and heldout.is_image:
        notes.extend(fitting_classifiers(tuple(heldout.x.shape[1:])))
    for f in (featurizer, *also):
        if f.name.startswith("inception"):
            announce_cost(f, n * (2 + len(ens.members) + len(names)), tuple(real.shape[1:]))
    return plan


def feature_list(features: Sequence[str] | str | None) -> list[str] | None:
    """ "effnet-lite0,classifier" and ["effnet-lite0", "classifier"] alike; None: the defaults."""
    if features is None:
        return None
    items = (features,) if isinstance(features, str) else features
    names = [p.strip() for f in items for p in str(f).split(",") if p.strip()]
    return list(dict.fromkeys(names)) or None


def grading_spaces(
    asked: list[str] | None, dataset: str, is_image: bool, metrics: Sequence[str] = ()
) -> tuple[list[str | None], list[str]]:
    """The spaces rows are graded on, first the one of the full table, and notes on the choice.

    By default images are graded first on the independent space (INDEPENDENT_SPACE: nothing steers
    by it), then, where the dataset has one, on its domain classifier, which steers the critics and
    choices, so its figures stand beside as steered. When the independent space cannot run here,
    the evaluation says so and grades on the old default alone."""
    if asked is not None:
        return list(asked), []
    if not is_image:
        return [None], []
    has_clf = dataset in classifier_datasets()
    why = effnet_missing()
    if why is not None:
        return [None], [
            f"no independent space: {why}. Rows are graded on "
            + (
                "the domain classifier, which steers the critics (self-graded rows are marked)"
                if has_clf
                else "Inception"
            )
        ]
    if "is" in metrics and has_clf:
        # IS is a score of the classifier's probabilities: that space gets the full table, and the
        # independent space stands beside it (the classifier's self-graded rows are marked).
        return ["classifier", INDEPENDENT_SPACE], []
    return [INDEPENDENT_SPACE, *(["classifier"] if has_clf else [])], []


def reference_of(
    req: EvalRequest, ens: Ensemble, heldout: Dataset
) -> tuple[Tensor, str, ReferenceLabels | None]:
    """The real images rows are scored against, how to name them, and their classes (--labels)."""
    data_cfg = ens.cfg.data
    csv = req.labels is not None and not is_classifier_file(req.labels)
    if csv and (req.reference is None or req.on_training_split):
        raise ConfigError(
            "--labels FILE.csv names the classes of a reference folder's images: pass --reference FOLDER "
            "with it (a TorchScript classifier, --labels FILE.pt, works with any reference)"
        )
    if req.on_training_split:
        # The convention of StudioGAN and of most FID tables: the training split, which the members
        # trained on (so memorised images score well); it gives a large n without retraining.
        x = load_dataset(replace(data_cfg, limit=None), "train").x
        return x, f"{data_cfg.name} training split ({len(x)} images; the members trained on it)", None
    if req.reference is not None:
        x, paths = reference_images(req.reference, heldout.x.shape[1:])
        labels = read_labels(req.labels, req.reference, paths) if csv else None
        return x, f"folder {req.reference} ({len(x)} images)", labels
    half = heldout_halves(heldout.x, REFERENCE_SEED)[1]
    return half, f"{data_cfg.name} test split, evaluation half", None


def check_enough(n: int | None, real: Tensor, where: str, metrics: tuple[str, ...]) -> None:
    """Too few real images is refused before any feature network is loaded."""
    have = min(n or len(real), len(real))
    sized = [m for m in metrics if m in SAMPLE_SIZE_METRICS]
    if have < MIN_N and sized:
        raise ConfigError(
            f"only {have} real images to compare against ({where}); {', '.join(sized)} need at least {MIN_N} "
            "per row: pass --reference FOLDER with more real images (or --reference train: the training "
            "split), hold out more (data.test_fraction, which needs retraining), or drop those metrics"
        )


def choose_n(
    n: int | None, featurizer: Featurizer, real: Tensor, where: str, also: Sequence[Featurizer] = ()
) -> int:
    """The samples per row: as asked, or the default for these features, never beyond the reference."""
    inception = any(f.name.startswith("inception") for f in (featurizer, *also))
    default = TOY_N if featurizer.extractor is None else INCEPTION_N if inception else MAX_N
    n = n if n is not None else min(len(real), default)
    if n > len(real):
        raise ConfigError(
            f"--n {n} exceeds the {len(real)} real images of the reference ({where}; the fusions fit on "
            f"the other half of the test split); use --n {len(real)} or less, a larger --reference FOLDER, "
            "or --reference train"
        )
    return n


def warn_about_n(plan: EvalPlan) -> None:
    sized = [m for m in plan.metrics if m in SAMPLE_SIZE_METRICS]
    if sized and plan.n < WARN_N:
        plan.notes.append(
            f"n = {plan.n} < {WARN_N}: {', '.join(sized)} are noisy and FID is biased upwards at this n; "
            "compare only at equal n"
        )
        warnings.warn(plan.notes[-1], stacklevel=4)
    if "fid" in plan.metrics and plan.n < plan.featurizer.dim:
        warnings.warn(
            f"n = {plan.n} < {plan.featurizer.dim} feature dims: the FID covariances are rank-deficient and "
            "FID is biased upwards; compare FIDs only at the same n",
            stacklevel=4,
        )


def reference_images(folder: str | Path, shape: tuple[int, ...]) -> tuple[Tensor, list[Path]]:
    """Every image of a reference folder, resized and converted to the run's (C, H, W), and its path."""
    if len(shape) != 3:
        raise ConfigError("--reference is a folder of images, but this run models 2-D points")
    return read_image_folder(folder, size=shape[1], channels=shape[0])


def floor_sample(data_cfg: Any, n: int) -> Tensor:
    """n training examples (all of the split, `limit` ignored), drawn with a fixed seed."""
    train = load_dataset(replace(data_cfg, limit=None), "train")
    if len(train) < n:
        raise ConfigError(
            f"the floor row needs {n} training examples, but {data_cfg.name} has {len(train)}; lower --n"
        )
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(FLOOR_SEED))
    return train.x[perm[:n]]
