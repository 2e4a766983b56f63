"""`gensemble evaluate`: every member and fusion of a run against held-out real data, in one table.

Every row is measured the same way: n samples -> the same features -> the same metric functions,
against the same n held-out real examples. The first row, ``real:train-vs-test``, puts n training
images in the generators' place: it is what a perfect generator would score at this n (the floor
of FID/KID, the ceiling of precision, recall and coverage), so it gives the scale of sampling noise.

The reference is the *evaluation half* of the held-out split, halved exactly as the fusion methods
halve it (`gensemble.tournament.heldout_halves`, seed 0): the fusions fit their calibrators and
weights on the other half, so no row is scored on data it was fitted to. Real features are cached
on disk (safetensors + json), keyed by a hash of the images and of the extractor's weights.
See docs/evaluation.md.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from gensemble.checkpoint import atomic_write_bytes, atomic_write_text
from gensemble.errors import ConfigError, GensembleError
from gensemble.metrics import (
    FeatureOutput,
    as_feature_array,
    feature_stats,
    frechet_distance,
    inception_score,
    kid,
    label_mode_stats,
    prdc,
    toy_mode_stats,
)
from gensemble.metrics.features import ArrayLike, FeatureExtractor
from gensemble.sampling import DOMINANT_SHARE

if TYPE_CHECKING:
    from gensemble.data import Dataset
    from gensemble.run import Ensemble

METRIC_NAMES = ("fid", "kid", "is", "prdc", "modes")
DEFAULT_METRICS = ("fid", "kid", "prdc", "modes")
# On raw 2-D points FID and KID compare only low-order moments (a mean and a 2x2 covariance cannot
# tell 25 modes from one blob), so toys default to mode coverage and the k-NN manifold metrics.
DEFAULT_TOY_METRICS = ("modes", "prdc")
FEATURE_KINDS = ("classifier", "classifier:DATASET", "inception", "pixels", "points")
# Below MIN_N samples a row, FID/KID/PRDC are refused (a 5-image FID is noise); below WARN_N they are
# reported with a warning and marked in the table and the report: FID's bias shrinks like 1/n.
MIN_N = 50
WARN_N = 500
SAMPLE_SIZE_METRICS = ("fid", "kid", "prdc")
# Precision (and density) of a collapsed generator is high: it is crowned only with recall above this.
RECALL_FLOOR = 0.1
FLOOR_ROW = "real:train-vs-test"
FUSION_PREFIX = "fusion:"
# The held-out split is halved with this seed, as the fusions halve it (FusionParams.fit_seed = 0):
# they fit on the first half, every row here is scored on the second.
REFERENCE_SEED = 0
FLOOR_SEED = 0  # which training examples form the floor row; fixed so that it is cached
MAX_N = 5000
TOY_N = 2500  # the VEEGAN/PacGAN protocol counts modes on 2,500 samples (docs/metrics.md)
INCEPTION_N = 500  # ~0.3 s per image on a CPU: 500 images per row is minutes, not hours
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
CACHE_FORMAT = 1
# Direction of each key, for marking the best row; None: no direction (density > 1 is not "better").
HIGHER_IS_BETTER: dict[str, bool | None] = {
    "fid": False,
    "kid": False,
    "kid_std": None,
    "is": True,
    "is_std": None,
    "precision": True,
    "recall": True,
    "density": None,
    "coverage": True,
    "modes_covered": True,
    "high_quality": True,
    "modes_hit": True,
    "kl": False,
    "acceptance_rate": None,
    "top_share": None,
}


def crownable(col: str, row: dict[str, Any]) -> bool:
    """Whether `row` may be marked best in column `col`: precision and density only with recall (or,
    without recall, coverage) above RECALL_FLOOR, so a generator that collapsed onto one good blob
    is never crowned for the quality of that blob."""
    if col not in ("precision", "density"):
        return True
    spread = row.get("recall", row.get("coverage"))
    return not isinstance(spread, (int, float)) or spread >= RECALL_FLOOR


# --- pure composition of the metrics -----------------------------------------------------------
def kid_subset_size(n: int) -> int:
    """1000 (the reference protocol) when n >= 2000, else n // 2: subsets of all n rows would all be
    the same set and report a KID std of 0."""
    return max(2, min(KID_SUBSET_SIZE, n // 2))


def evaluate_samples(
    real: ArrayLike,
    fake: ArrayLike,
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    fake_probs: ArrayLike | None = None,
    real_labels: ArrayLike | None = None,
    toy_modes: tuple[ArrayLike, float] | None = None,
    real_stats: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Metrics of one fake feature set (N, D) against real features (M, D), as a flat dict.

    `fake_probs` (N, classes) are class probabilities for ``is`` and, on labelled images, ``modes``
    (KL against the histogram of `real_labels`, or uniform when None). `toy_modes` = (centres,
    sigma) makes ``modes`` the 2-D mixture statistics of `fake` (raw points). `real_stats` is
    `feature_stats(real)`, passed to skip recomputing it for every fake set.
    """
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown:
        raise ConfigError(f"unknown metric {unknown[0]!r}; known metrics: {', '.join(METRIC_NAMES)}")
    real_arr = as_feature_array(real, "real", min_rows=2)
    fake_arr = as_feature_array(fake, "fake", min_rows=2)
    out: dict[str, float] = {}
    for name in metrics:
        if name == "fid":
            mu, sigma = real_stats if real_stats is not None else feature_stats(real_arr)
            out["fid"] = frechet_distance(mu, sigma, *feature_stats(fake_arr))
        elif name == "kid":
            size = kid_subset_size(min(len(real_arr), len(fake_arr)))
            res = kid(real_arr, fake_arr, subsets=KID_SUBSETS, subset_size=size, seed=seed)
            out["kid"], out["kid_std"] = res.mean, res.std
        elif name == "is":
            n = 0 if fake_probs is None else len(fake_probs)
            res = inception_score(fake_probs, splits=max(1, min(10, n)))
            out["is"], out["is_std"] = res.mean, res.std
        elif name == "prdc":
            out.update(prdc(real_arr, fake_arr))
        elif toy_modes is not None:
            stats = toy_mode_stats(fake_arr, toy_modes[0], toy_modes[1])
            out["modes_covered"], out["high_quality"] = stats["modes_covered"], stats["high_quality_frac"]
        elif fake_probs is not None:
            probs = np.asarray(fake_probs)
            stats = label_mode_stats(probs.argmax(axis=1), probs.shape[1], real_labels)
            out["modes_hit"], out["kl"] = stats["modes_hit"], stats["kl"]
        else:
            raise GensembleError(
                "the 'modes' metric needs class probabilities (a classifier) or 2-D mode centres"
            )
    return out


# --- features, and the on-disk cache of real ones ---------------------------------------------
def as_saved_images(x: Tensor) -> Tensor:
    """Clamp to [-1, 1] and round to 8-bit levels, as saving a PNG would: real and generated images
    reach the extractor through the same pipeline (real ones come from 8-bit files, then resizing)."""
    x = (x.to(torch.float32).clamp(-1.0, 1.0) + 1.0) * 127.5
    return torch.round(x) / 127.5 - 1.0


def extract_features(ext: FeatureExtractor, images: Tensor, desc: str) -> FeatureOutput:
    """Features (and probs) of images, batch by batch, with a progress bar."""
    from gensemble.progress import progress

    bs = ext.default_batch_size
    parts: list[FeatureOutput] = []
    bar = progress(len(images), desc, unit="img")
    try:
        for i in range(0, len(images), bs):
            chunk = images[i : i + bs]
            parts.append(ext.extract(chunk))
            bar.update(len(chunk))
    finally:
        bar.close()
    features = np.concatenate([p.features for p in parts]) if parts else np.zeros((0, ext.dim), np.float32)
    probs = np.concatenate([p.probs for p in parts]) if parts and parts[0].probs is not None else None
    return FeatureOutput(features, probs)


_FINGERPRINTS: weakref.WeakKeyDictionary[FeatureExtractor, str] = weakref.WeakKeyDictionary()


def extractor_fingerprint(ext: FeatureExtractor) -> str:
    """sha256 of what decides an extractor's output: its class, name, settings and network weights."""
    if ext in _FINGERPRINTS:
        return _FINGERPRINTS[ext]
    h = hashlib.sha256()
    h.update(f"{type(ext).__qualname__}|{ext.name}|{ext.dim}|{getattr(ext, 'quantize', None)}".encode())
    for attr, value in sorted(vars(ext).items()):
        if isinstance(value, torch.nn.Module):
            for key, t in value.state_dict().items():
                h.update(f"{attr}.{key}|{t.dtype}|{tuple(t.shape)}".encode())
                h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    _FINGERPRINTS[ext] = h.hexdigest()
    return _FINGERPRINTS[ext]


def default_feature_cache() -> Path:
    """$GENSEMBLE_CACHE/features, else ~/.cache/gensemble/features."""
    from gensemble.models.classifier import default_cache_dir

    return default_cache_dir() / "features"


def cached_features(
    ext: FeatureExtractor, images: Tensor, label: str, cache_dir: Path, desc: str
) -> FeatureOutput:
    """Features of real images from the cache, or extracted and cached.

    The key hashes the images themselves (so any change to the dataset, its preprocessing, the split
    or n is a new entry) and the extractor's weights. Files: <label>-<key>.safetensors, then
    <label>-<key>.json naming its sha256; a damaged pair is recomputed with a one-line warning.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load, save

    x = images.detach().cpu().to(torch.float32).contiguous()
    h = hashlib.sha256(f"{CACHE_FORMAT}|{ext.name}|{extractor_fingerprint(ext)}|{tuple(x.shape)}".encode())
    h.update(x.numpy().tobytes())
    key = h.hexdigest()[:24]
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", f"{label}-{ext.name}")[:120] + f"-{key}"
    data_path, meta_path = cache_dir / f"{stem}.safetensors", cache_dir / f"{stem}.json"
    if meta_path.exists() or data_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            raw = data_path.read_bytes()
            if meta.get("format") != CACHE_FORMAT or hashlib.sha256(raw).hexdigest() != meta.get("sha256"):
                raise ValueError("the file does not match the hash in its .json (truncated or overwritten)")
            arrays = load(raw)
            feats, probs = arrays["features"], arrays.get("probs")
            if feats.shape != (len(x), ext.dim) or (probs is None) == ext.has_probs:
                raise ValueError(f"features of shape {feats.shape} where ({len(x)}, {ext.dim}) was expected")
            return FeatureOutput(feats, probs)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, SafetensorError) as exc:
            warnings.warn(
                f"feature cache {str(data_path)!r} is unreadable ({str(exc).splitlines()[0]}); recomputing",
                stacklevel=2,
            )
    out = extract_features(ext, x, desc)
    arrays = {"features": np.ascontiguousarray(out.features, np.float32)}
    if out.probs is not None:
        arrays["probs"] = np.ascontiguousarray(out.probs, np.float32)
    raw = save(arrays)
    meta = {
        "format": CACHE_FORMAT,
        "label": label,
        "extractor": ext.name,
        "extractor_sha256": extractor_fingerprint(ext),
        "images_shape": list(x.shape),
        "sha256": hashlib.sha256(raw).hexdigest(),
    }
    try:
        # Data first, then the .json naming its hash: a crash between the two reads as a mismatch.
        atomic_write_bytes(data_path, raw)
        atomic_write_text(meta_path, json.dumps(meta, indent=2))
    except OSError as exc:  # a read-only or full cache costs time, not the evaluation
        warnings.warn(
            f"could not write feature cache {str(data_path)!r} ({exc.strerror or exc})", stacklevel=2
        )
    return out


# --- what a run is evaluated with -------------------------------------------------------------
def classifier_datasets() -> list[str]:
    """Datasets with a domain classifier (a training recipe, or another dataset's per channel)."""
    from gensemble.models.classifier import PER_CHANNEL_SOURCES, RECIPES

    return sorted({*RECIPES, *PER_CHANNEL_SOURCES})


@dataclass
class Featurizer:
    """How samples become the arrays the metrics take: an extractor (None: the raw 2-D points),
    and a classifier for labels (``is``, ``modes``) when the extractor gives no probabilities."""

    name: str
    extractor: FeatureExtractor | None = None
    labeller: FeatureExtractor | None = None
    uniform_kl: bool = False  # KL against uniform labels (the stacked-MNIST protocol)

    @property
    def dim(self) -> int:
        return 2 if self.extractor is None else self.extractor.dim

    def __call__(self, x: Tensor, desc: str, cache: tuple[Path, str] | None = None) -> FeatureOutput:
        """Features and probs of samples x; `cache` = (folder, label) for real data."""
        if self.extractor is None:
            return FeatureOutput(x.detach().cpu().numpy().astype(np.float64))
        x = as_saved_images(x.cpu())

        def run(ext: FeatureExtractor) -> FeatureOutput:
            if cache is None:
                return extract_features(ext, x, f"{desc}: {ext.name} features")
            return cached_features(ext, x, cache[1], cache[0], f"{desc}: {ext.name} features")

        out = run(self.extractor)
        if out.probs is None and self.labeller is not None:
            out = FeatureOutput(out.features, run(self.labeller).probs)
        return out


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


def check_features_name(features: str | None) -> None:
    """A one-line error for a feature name that is not classifier, classifier:DATASET, inception or points."""
    if features is None or features in ("classifier", "inception", "pixels", "points"):
        return
    if features.startswith("classifier:") and len(features) > len("classifier:"):
        return
    raise ConfigError(f"unknown feature extractor {features!r}; known: {', '.join(FEATURE_KINDS)}")


def resolve_features(
    features: str | None,
    dataset: str,
    is_image: bool,
    metrics: tuple[str, ...],
    explicit: bool,
    device: str = "cpu",
) -> tuple[Featurizer, tuple[str, ...], list[str]]:
    """The featurizer for a run's data, the metrics that apply, and notes on any defaults dropped."""
    from gensemble.metrics import get_extractor
    from gensemble.models.classifier import per_channel_source

    check_features_name(features)
    notes: list[str] = []
    if not is_image:
        if features not in (None, "points"):
            raise ConfigError(
                f"{dataset} is 2-D points, evaluated on the raw coordinates; drop --features {features}"
            )
        if "is" in metrics:
            raise ConfigError("'is' needs class probabilities, and 2-D toy data have no classifier; drop it")
        return Featurizer("points"), metrics if explicit else DEFAULT_TOY_METRICS, notes
    if features == "points":
        raise ConfigError(f"'points' features are for 2-D toy data; {dataset} is images")
    has_clf = dataset in classifier_datasets()
    if features is None and not has_clf:
        # An unlabelled folder: Inception, the field's standard, and say so in the result.
        features = "inception"
        notes.append(
            f"features: inception by default ({dataset} has no domain classifier); ImageNet features, "
            "the standard for FID; --features pixels is faster and cruder"
        )
    if features in (None, "classifier"):
        if not has_clf:
            raise ConfigError(
                f"{dataset!r} has no domain classifier (those with one: {', '.join(classifier_datasets())}); "
                "use --features inception or pixels"
            )
        features = f"classifier:{dataset}"
    if features == "inception" and "is" in metrics:  # before loading 100 MB of weights
        raise ConfigError(
            "'is' needs class probabilities, and inception features have none (the TorchScript file "
            "ends at pool3, no logits); use --features classifier for IS"
        )
    ext = get_extractor(features, device)
    featurizer = Featurizer(features, ext)
    if not ext.has_probs:
        if "is" in metrics:
            raise ConfigError(f"'is' needs class probabilities, and {features} features have none")
        if "modes" in metrics:
            if has_clf:
                featurizer.labeller = get_extractor(f"classifier:{dataset}", device)
            elif explicit:
                raise ConfigError(
                    f"'modes' counts labels predicted by a domain classifier, and {dataset!r} has none; drop it"
                )
            else:
                metrics = tuple(m for m in metrics if m != "modes")
                notes.append(f"modes skipped: {dataset} has no domain classifier")
    labeller = featurizer.labeller or (ext if ext.has_probs else None)
    if labeller is not None:
        source = labeller.name.split(":", 1)[1] if ":" in labeller.name else ""
        featurizer.uniform_kl = per_channel_source(source) is not None
    return featurizer, metrics, notes


# --- the result ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalResult:
    """Rows (floor, members, fusions) of metric values, and how they were measured."""

    rows: dict[str, dict[str, float]]
    features: str
    n: int
    seed: int
    metrics: tuple[str, ...]
    reference: str
    notes: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, dict[str, float]]:
        """{"<row>": {"<metric>": value}}: what `--json` prints."""
        return {row: dict(values) for row, values in self.rows.items()}

    def to_file_json(self) -> dict[str, Any]:
        """What RUN/evaluation.json holds: the rows and how they were measured."""
        return {
            "rows": self.to_json(),
            "features": self.features,
            "n": self.n,
            "seed": self.seed,
            "metrics": list(self.metrics),
            "reference": self.reference,
            "floor_row": FLOOR_ROW,
            "notes": list(self.notes),
            **self.info,
        }

    def best(self) -> dict[str, set[str]]:
        """The best row(s) per column with a direction, among members and fusions (not the floor)."""
        out: dict[str, set[str]] = {}
        rows = {r: v for r, v in self.rows.items() if r != FLOOR_ROW}
        for col in {c for v in rows.values() for c in v}:
            direction = HIGHER_IS_BETTER.get(col)
            values = {r: v[col] for r, v in rows.items() if isinstance(v.get(col), (int, float))}
            if direction is None or len(set(values.values())) < 2:
                continue  # nothing to choose between
            values = {r: v for r, v in values.items() if crownable(col, rows[r])}
            if not values:
                continue
            target = max(values.values()) if direction else min(values.values())
            out[col] = {r for r, v in values.items() if v == target}
        return out

    def format(self) -> str:
        """An aligned table, rows x metrics, best per column marked with *, then how it was measured."""
        cols: list[str] = []
        for values in self.rows.values():
            cols += [c for c in values if c not in cols and c not in ("kid_std", "is_std")]
        best = self.best()

        def cell(row: str, col: str) -> str:
            v = self.rows[row].get(col)
            if v is None:
                return "-"
            text = str(v) if isinstance(v, int) else f"{v:.4g}"
            std = {"kid": "kid_std", "is": "is_std"}.get(col)
            if std and std in self.rows[row]:
                text += f" ± {self.rows[row][std]:.2g}"
            return text + ("*" if row in best.get(col, ()) else "")

        arrows = {True: " ↑", False: " ↓", None: ""}
        header = ["row", *(c + arrows[HIGHER_IS_BETTER.get(c)] for c in cols)]
        body = [[r, *(cell(r, c) for c in cols)] for r in self.rows]
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
        lines = [
            "  ".join(t.ljust(w) if i == 0 else t.rjust(w) for i, (t, w) in enumerate(zip(line, widths)))
            for line in [header, *body]
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines += [
            "",
            f"features: {self.features}; n = {self.n} per row; reference: {self.reference}; seed {self.seed}",
            f"{FLOOR_ROW}: {self.n} training examples in a generator's place, the best score at this n. "
            "* marks the best member or fusion per column.",
            *self.notes,
        ]
        return "\n".join(lines)


# --- the run-level entry point -------------------------------------------------------------------
def evaluate_run(
    run_dir: str | Path,
    metrics: Sequence[str] | str | None = None,
    features: str | None = None,
    n: int | None = None,
    fusions: Sequence[str] = (),
    seed: int = 0,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    write: bool = True,
    step: int | None = None,
    reference: str | Path | None = None,
) -> EvalResult:
    """Evaluate every member and every requested fusion of a run, and the real floor, in one table.

    `metrics`: any of fid, kid, is, prdc, modes (default fid, kid, prdc, modes). `features`:
    "classifier" (the run dataset's domain classifier; the default for images), "classifier:DATASET",
    "inception", or for 2-D toys "points" (the default there). `n`: samples per row, default
    min(held-out evaluation half, 5000); 2500 for 2-D toys; 500 for inception. Writes
    RUN/evaluation.json unless `write` is False; real features are cached in `cache_dir`
    (default $GENSEMBLE_CACHE/features or ~/.cache/gensemble/features).
    """
    from gensemble.data import load_dataset
    from gensemble.fusion import get_fusion
    from gensemble.progress import progress
    from gensemble.run import load_run
    from gensemble.tournament import heldout_halves, require_discriminators

    # Everything that can be checked without loading anything fails first.
    metric_names, explicit = resolve_metrics(metrics)
    check_features_name(features)
    if n is not None and n < 2:
        raise ConfigError(f"--n must be at least 2 (FID needs a covariance), got {n}")
    # "--fusion a,b --fusion c" and ["a", "b"] alike; repeated names are evaluated once.
    fusions = (fusions,) if isinstance(fusions, str) else fusions
    fusion_names = [name for name in dict.fromkeys(p.strip() for f in fusions for p in f.split(",")) if name]
    for name in fusion_names:
        get_fusion(name)

    start = time.perf_counter()
    ens = load_run(run_dir, device, step)
    data_cfg = ens.cfg.data
    heldout = load_dataset(data_cfg, "test")
    for name in fusion_names:
        if get_fusion(name).needs_discriminators:
            require_discriminators(ens, f"fusion {name!r}")
    if reference is not None:
        eval_half = reference_images(reference, heldout.x.shape[1:])
        where = f"folder {reference} ({len(eval_half)} images)"
    else:
        _, eval_half = heldout_halves(heldout.x, REFERENCE_SEED)
        where = f"{data_cfg.name} test split, evaluation half"
    # Too few real images is refused before any feature network is loaded.
    if min(n or len(eval_half), len(eval_half)) < MIN_N and any(
        m in SAMPLE_SIZE_METRICS for m in metric_names
    ):
        raise ConfigError(
            f"only {min(n or len(eval_half), len(eval_half))} real images to compare against ({where}); "
            f"{', '.join(m for m in metric_names if m in SAMPLE_SIZE_METRICS)} need at least {MIN_N} per row: "
            "pass --reference FOLDER with more real images, hold out more (data.test_fraction), or drop those metrics"
        )
    featurizer, metric_names, notes = resolve_features(
        features, data_cfg.name, heldout.is_image, metric_names, explicit, device
    )
    default_n = (
        TOY_N if featurizer.extractor is None else INCEPTION_N if featurizer.name == "inception" else MAX_N
    )
    n = n if n is not None else min(len(eval_half), default_n)
    if n > len(eval_half):
        raise ConfigError(
            f"--n {n} exceeds the {len(eval_half)} real images of the reference ({where}; the fusions fit on "
            f"the other half of the test split); use --n {len(eval_half)} or less, or a larger --reference"
        )
    sized = [m for m in metric_names if m in SAMPLE_SIZE_METRICS]
    if sized and n < WARN_N:
        notes.append(
            f"n = {n} < {WARN_N}: {', '.join(sized)} are noisy and FID is biased upwards at this n; compare only at equal n"
        )
        warnings.warn(notes[-1], stacklevel=2)
    if "fid" in metric_names and n < featurizer.dim:
        warnings.warn(
            f"n = {n} < {featurizer.dim} feature dims: the FID covariances are rank-deficient and FID is "
            "biased upwards; compare FIDs only at the same n",
            stacklevel=2,
        )
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_feature_cache()
    label = f"{data_cfg.name}-{data_cfg.image_size or 'native'}px"

    reference = featurizer(eval_half[:n], "reference", (cache, f"{label}-test-eval-n{n}"))
    floor_x = floor_sample(data_cfg, n)
    floor = featurizer(floor_x, "floor", (cache, f"{label}-train-n{n}-seed{FLOOR_SEED}"))
    real_arr = as_feature_array(reference.features, "reference features", min_rows=2)
    toy = None if heldout.is_image else (heldout.modes, float(heldout.sigma))
    real_labels = None if featurizer.uniform_kl or reference.probs is None else reference.labels

    real_stats = None
    if "fid" in metric_names:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="feature_stats:")  # said once above
            real_stats = feature_stats(real_arr)

    def score(feats: FeatureOutput) -> dict[str, float]:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="feature_stats:")
            return evaluate_samples(
                real_arr,
                feats.features,
                metric_names,
                fake_probs=feats.probs,
                real_labels=real_labels,
                toy_modes=toy,
                real_stats=real_stats,
                seed=seed,
            )

    rows: dict[str, dict[str, float]] = {}
    shares: dict[str, dict[str, float]] = {}
    bar = progress(1 + len(ens.members) + len(fusion_names), "evaluate", unit="row")
    try:
        rows[FLOOR_ROW] = score(floor)
        bar.update(1)
        for member in ens.members:
            x = member.model.sample(n, torch.Generator().manual_seed(seed)).cpu()
            rows[member.name] = score(featurizer(x, member.name))
            bar.update(1)
        for name in fusion_names:
            rows[FUSION_PREFIX + name], shares[FUSION_PREFIX + name] = evaluate_fusion(
                ens, name, heldout, n, seed, lambda x, d: score(featurizer(x, d))
            )
            bar.update(1)
    finally:
        bar.close()

    info: dict[str, Any] = {"dataset": data_cfg.name, "seconds": round(time.perf_counter() - start, 1)}
    if shares:
        info["member_shares"] = {row: {k: round(v, 4) for k, v in s.items()} for row, s in shares.items()}
        for row, s in shares.items():
            top = max(s, key=s.get)
            if len(s) > 1 and s[top] >= DOMINANT_SHARE:
                notes.append(
                    f"{row} keeps {100 * s[top]:.0f}% of its samples from {top}: the ensemble's diversity is lost"
                )
    if toy is not None:
        info["num_modes"] = len(toy[0])
    if "modes" in metric_names and toy is None:
        info["kl_reference"] = "uniform" if featurizer.uniform_kl else "labels predicted on the reference"
    result = EvalResult(
        rows=rows,
        features=featurizer.name,
        n=n,
        seed=seed,
        metrics=metric_names,
        reference=f"{where} ({n} of {len(eval_half)})"
        if reference is not None
        else f"{where} ({n} of {len(eval_half)}; {len(heldout)} held out)",
        notes=tuple(notes),
        info=info,
    )
    if write:
        # evaluation.json is the latest; evaluations/ keeps one file per (features, n, reference), so an
        # evaluation with other features never silently replaces an earlier one in the report.
        text = json.dumps(result.to_file_json(), indent=2) + "\n"
        atomic_write_text(Path(run_dir) / "evaluation.json", text)
        atomic_write_text(Path(run_dir) / "evaluations" / f"{evaluation_key(result)}.json", text)
    return result


def evaluation_key(result: EvalResult) -> str:
    """A file name for one kind of evaluation: features, n, and which reference."""
    ref = (
        "heldout"
        if "test split" in result.reference
        else "reference-" + hashlib.sha1(result.reference.encode()).hexdigest()[:8]
    )
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", result.features)
    return f"{safe}-n{result.n}-{ref}"


def reference_images(folder: str | Path, shape: tuple[int, ...]) -> Tensor:
    """Every image of a reference folder, resized and converted to the run's (C, H, W)."""
    from gensemble.data.images import list_images
    from gensemble.imageio import load_image

    root = Path(folder)
    if len(shape) != 3:
        raise ConfigError("--reference is a folder of images, but this run models 2-D points")
    if not root.is_dir():
        raise ConfigError(f"--reference {str(root)!r} is not a folder; give a folder of PNG/JPEG images")
    paths = list_images(root)
    if not paths:
        raise ConfigError(f"--reference folder {str(root)!r} holds no PNG/JPEG images")
    return torch.stack([load_image(p, size=shape[1], channels=shape[0]) for p in paths])


def floor_sample(data_cfg: Any, n: int) -> Tensor:
    """n training examples (all of the split, `limit` ignored), drawn with a fixed seed."""
    from gensemble.data import load_dataset

    train = load_dataset(replace(data_cfg, limit=None), "train")
    if len(train) < n:
        raise ConfigError(
            f"the floor row needs {n} training examples, but {data_cfg.name} has {len(train)}; lower --n"
        )
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(FLOOR_SEED))
    return train.x[perm[:n]]


def evaluate_fusion(
    ens: Ensemble, name: str, heldout: Dataset, n: int, seed: int, score: Any
) -> dict[str, float]:
    """One fusion's row: build it on the calibration half of the held-out split, draw n, score them."""
    from gensemble.fusion import build_fusion, parse_fusion_params

    params = parse_fusion_params(name, {})
    if getattr(params, "fit_seed", REFERENCE_SEED) != REFERENCE_SEED:
        raise GensembleError(
            f"fusion {name!r} would fit on the evaluation half; its fit_seed must be {REFERENCE_SEED}"
        )
    sampler = build_fusion(ens, name, heldout, params)
    samples = sampler.sample(n, torch.Generator().manual_seed(seed))
    row = score(samples.x.cpu(), FUSION_PREFIX + name)
    rate = getattr(sampler, "acceptance_rate", None)
    if rate is not None:
        row["acceptance_rate"] = float(rate)
    shares = samples.shares()
    row["top_share"] = max(shares.values())  # the largest share of one member among kept samples
    return row, shares


__all__ = [
    "DEFAULT_METRICS",
    "FLOOR_ROW",
    "HIGHER_IS_BETTER",
    "METRIC_NAMES",
    "EvalResult",
    "Featurizer",
    "cached_features",
    "evaluate_run",
    "evaluate_samples",
    "extract_features",
    "extractor_fingerprint",
    "kid_subset_size",
]
