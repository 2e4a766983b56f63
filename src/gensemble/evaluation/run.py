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

import time
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gensemble.artefacts import dumps
from gensemble.data import load_dataset
from gensemble.data.images import read_image_folder
from gensemble.errors import ConfigError, GensembleError
from gensemble.evaluation.artefacts import GRID_N, log_acceptance_rates, stage_grids
from gensemble.evaluation.coverage import Coverage, coverage_notes
from gensemble.evaluation.evaluator import Evaluator
from gensemble.evaluation.features import (  # noqa: F401  (re-exported: the entry point)
    Featurizer,
    announce_cost,
    cached_features,
    check_features_name,
    default_feature_cache,
    extract_features,
    extractor_fingerprint,
    fitting_classifiers,
    resolve_features,
)
from gensemble.evaluation.result import (  # noqa: F401
    FLOOR_ROW,
    HIGHER_IS_BETTER,
    RECALL_FLOOR,
    WARN_N,
    EvalResult,
    crownable,
    evaluation_key,
)
from gensemble.fusion import (
    FusionContext,
    build_fusion,
    get_fusion,
    parse_fusion_params,
    parse_fusion_settings,
)
from gensemble.metrics import (
    METRICS,
    FeatureOutput,
    MetricInputs,
    as_feature_array,
    compute_metrics,
    default_metrics,
    metric_names,
)
from gensemble.metrics.extractor import ArrayLike
from gensemble.metrics.suite import KID_SUBSET_SIZE, KID_SUBSETS, kid_subset_size  # noqa: F401  (re-exported)
from gensemble.progress import progress
from gensemble.run import load_run
from gensemble.runfolder import Outputs, writes_into_run
from gensemble.sampling import DOMINANT_SHARE
from gensemble.tournament import heldout_halves, require_discriminators

# Names, defaults and sample-size dependence all come from the metric registry (metrics/suite.py).
METRIC_NAMES = metric_names()
DEFAULT_METRICS = default_metrics()
# Below MIN_N samples a row, FID/KID/PRDC are refused (a 5-image FID is noise); below WARN_N they are
# reported with a warning and marked in the table and the report: FID's bias shrinks like 1/n.
MIN_N = 50
SAMPLE_SIZE_METRICS = tuple(n for n in METRIC_NAMES if METRICS.get(n).sample_size)
FUSION_PREFIX = "fusion:"
# The held-out split is halved with this seed, as the fusions halve it (FusionParams.fit_seed = 0):
# they fit on the first half, every row here is scored on the second.
REFERENCE_SEED = 0
FLOOR_SEED = 0  # which training examples form the floor row; fixed so that it is cached
MAX_N = 5000
TOY_N = 2500  # the VEEGAN/PacGAN protocol counts modes on 2,500 samples (docs/metrics.md)
INCEPTION_N = 500  # ~0.3 s per image on a CPU: 500 images per row is minutes, not hours


# --- pure composition of the metrics -----------------------------------------------------------
def evaluate_samples(
    real: ArrayLike,
    fake: ArrayLike,
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    fake_probs: ArrayLike | None = None,
    real_labels: ArrayLike | None = None,
    toy_modes: tuple[ArrayLike, float] | None = None,
    real_stats: tuple[np.ndarray, np.ndarray] | None = None,
    kid_real_sums: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Metrics of one fake feature set (N, D) against real features (M, D), as a flat dict.

    `fake_probs` (N, classes) are class probabilities for ``is`` and, on labelled images, ``modes``
    (KL against the histogram of `real_labels`, or uniform when None). `toy_modes` = (centres,
    sigma) makes ``modes`` the 2-D mixture statistics of `fake` (raw points). `real_stats` is
    `feature_stats(real)` and `kid_real_sums` the real half of KID, passed to skip recomputing them
    for every fake set.
    """
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown:
        raise ConfigError(f"unknown metric {unknown[0]!r}; known metrics: {', '.join(METRIC_NAMES)}")
    inputs = MetricInputs(
        as_feature_array(real, "real", min_rows=2),
        as_feature_array(fake, "fake", min_rows=2),
        fake_probs=None if fake_probs is None else np.asarray(fake_probs),
        real_labels=None if real_labels is None else np.asarray(real_labels),
        toy_modes=None if toy_modes is None else (np.asarray(toy_modes[0]), float(toy_modes[1])),
        real_stats=real_stats,
        kid_real_sums=kid_real_sums,
        seed=seed,
    )
    return compute_metrics(tuple(metrics), inputs)


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


# `--reference train`: score against the training split instead of the held-out evaluation half.
TRAIN_REFERENCE = "train"


# --- the run-level entry point -------------------------------------------------------------------
@writes_into_run("evaluate", unless="write")
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
    fusion_settings: Sequence[str] | dict[str, dict[str, Any]] = (),
) -> EvalResult:
    """Evaluate every member and every requested fusion of a run, and the real floor, in one table.

    `metrics`: any of fid, kid, is, prdc, modes (default fid, kid, prdc, modes). `features`:
    "classifier" (the run dataset's domain classifier; the default for images), "classifier:DATASET",
    "inception", or for 2-D toys "points" (the default there). `n`: samples per row, default
    min(held-out evaluation half, 5000); 2500 for 2-D toys; 500 for inception. Writes
    RUN/evaluation.json unless `write` is False; real features are cached in `cache_dir`
    (default $GENSEMBLE_CACHE/features or ~/.cache/gensemble/features). `fusion_settings`:
    "fusion.KEY=VALUE" items, applied to each fusion that has KEY, or {fusion: {KEY: VALUE}}.
    """
    # Everything that can be checked without loading anything fails first.
    metric_names, explicit = resolve_metrics(metrics)
    check_features_name(features)
    if n is not None and n < 2:
        raise ConfigError(f"--n must be at least 2 (FID needs a covariance), got {n}")
    # "--fusion a,b --fusion c" and ["a", "b"] alike; repeated names are evaluated once.
    fusions = (fusions,) if isinstance(fusions, str) else fusions
    fusion_names = [name for name in dict.fromkeys(p.strip() for f in fusions for p in f.split(",")) if name]
    settings = parse_fusion_settings(fusion_names, fusion_settings)

    start = time.perf_counter()
    ens = load_run(run_dir, device, step)
    data_cfg = ens.cfg.data
    heldout = load_dataset(data_cfg, "test")
    for name in fusion_names:
        if get_fusion(name).needs_discriminators and getattr(settings[name], "needs_discriminators", True):
            require_discriminators(ens, f"fusion {name!r}")
    if reference is not None and str(reference) == TRAIN_REFERENCE:
        # The convention of StudioGAN and of most FID tables: the training split, which the members
        # trained on (so memorised images score well); it gives a large n without retraining.
        eval_half = load_dataset(replace(data_cfg, limit=None), "train").x
        where = f"{data_cfg.name} training split ({len(eval_half)} images; the members trained on it)"
    elif reference is not None:
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
            "pass --reference FOLDER with more real images (or --reference train: the training split), hold out more "
            "(data.test_fraction, which needs retraining), or drop those metrics"
        )
    featurizer, metric_names, notes = resolve_features(
        features, data_cfg.name, heldout.is_image, metric_names, explicit, device
    )
    default_n = (
        TOY_N
        if featurizer.extractor is None
        else INCEPTION_N
        if featurizer.name.startswith("inception")
        else MAX_N
    )
    n = n if n is not None else min(len(eval_half), default_n)
    if n > len(eval_half):
        raise ConfigError(
            f"--n {n} exceeds the {len(eval_half)} real images of the reference ({where}; the fusions fit on "
            f"the other half of the test split); use --n {len(eval_half)} or less, a larger --reference FOLDER, "
            "or --reference train"
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
    if featurizer.name.startswith("inception") and features is None and heldout.is_image:
        notes.extend(fitting_classifiers(tuple(heldout.x.shape[1:])))
    if featurizer.name.startswith("inception"):
        announce_cost(featurizer, n * (2 + len(ens.members) + len(fusion_names)), tuple(eval_half.shape[1:]))
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_feature_cache()
    label = f"{data_cfg.name}-{data_cfg.image_size or 'native'}px"

    toy = None if heldout.is_image else (heldout.modes, float(heldout.sigma))
    evaluator = Evaluator.prepare(
        featurizer, eval_half[:n], metric_names, seed, toy, (cache, f"{label}-test-eval-n{n}")
    )
    if reference is not None and str(reference) == TRAIN_REFERENCE:
        # The floor's real images must not be the reference's: held-out ones stand in for a generator.
        floor_x = heldout_halves(heldout.x, REFERENCE_SEED)[1]
        if len(floor_x) < n:
            raise ConfigError(
                f"--reference train with --n {n}: the floor row needs {n} held-out images but the "
                f"evaluation half has {len(floor_x)}; use --n {len(floor_x)} or less"
            )
        floor = featurizer(floor_x[:n], "floor", (cache, f"{label}-test-eval-n{n}"))
    else:
        floor = featurizer(
            floor_sample(data_cfg, n), "floor", (cache, f"{label}-train-n{n}-seed{FLOOR_SEED}")
        )

    # Which share of each row falls in each class (or k-means cluster) of the reference.
    coverage = (
        None
        if toy is not None or evaluator.reference is None
        else Coverage.prepare(evaluator.reference, data_cfg.name, featurizer.name, seed)
    )

    def score(feats: FeatureOutput, row: str) -> dict[str, float]:
        if coverage is not None:
            coverage.add(row, feats)
        return evaluator.score_features(feats)

    # Generated samples' features are cached like real ones, keyed by a hash of the images themselves:
    # the same checkpoint, seed, n and fusion settings draw the same images, so a second evaluation
    # (another --reference, a re-render) extracts nothing again, and any change is a new entry.
    generated = (cache, f"{label}-generated")

    rows: dict[str, dict[str, float]] = {}
    shares: dict[str, dict[str, float]] = {}
    grids: dict[str, Tensor] = {}
    choices: dict[str, dict[str, Any]] = {}
    # One context for every fusion: the tournament (read from RUN/tournament.json when `score` saved
    # it), the proposals and the ensemble critic are computed once and shared.
    ctx = FusionContext.build(ens, heldout, REFERENCE_SEED) if fusion_names else None
    bar = progress(1 + len(ens.members) + len(fusion_names), "evaluate", unit="row")
    try:
        rows[FLOOR_ROW] = score(floor, FLOOR_ROW)
        bar.update(1)
        for member in ens.members:
            x = member.model.sample(n, torch.Generator().manual_seed(seed)).cpu()
            rows[member.name] = score(featurizer(x, member.name, generated), member.name)
            grids[member.name] = x[:GRID_N]
            bar.update(1)
        for name in fusion_names:
            row = FUSION_PREFIX + name
            rows[row], shares[row], x, choice = evaluate_fusion(
                ctx, name, n, seed, lambda x, d: score(featurizer(x, d, generated), d), settings[name]
            )
            if choice is not None:
                choices[row] = choice
            grids[row] = x[:GRID_N]
            bar.update(1)
    finally:
        bar.close()

    info: dict[str, Any] = {"dataset": data_cfg.name, "seconds": round(time.perf_counter() - start, 1)}
    if reference is not None:
        info["reference_folder"] = str(reference)
    if choices:
        info["choices"] = choices  # what `auto` chose on held-out data, and every candidate's FID there
    if fusion_settings:
        info["fusion_settings"] = (
            fusion_settings if isinstance(fusion_settings, dict) else list(fusion_settings)
        )
    if shares:
        info["member_shares"] = {row: {k: round(v, 4) for k, v in s.items()} for row, s in shares.items()}
        for row, s in shares.items():
            top = max(s, key=s.get)
            if len(s) > 1 and s[top] >= DOMINANT_SHARE:
                notes.append(
                    f"{row} keeps {100 * s[top]:.0f}% of its samples from {top}: the ensemble's diversity is lost"
                )
    if not fusion_names:
        notes.append(
            "no fusion was evaluated, so this table cannot say whether the ensemble beats its members: add "
            "--fusion auto (or the demo's: auto uniform weighted best rejection snapshots)"
        )
    if coverage is not None and coverage.rows:
        info["per_class"] = coverage.to_json()
        notes.extend(coverage_notes(info["per_class"]))
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
        # All or nothing: a kill or an error leaves the previous set exactly as it was.
        out = Outputs(run_dir)
        text = dumps(result.to_file_json(), indent=2)
        out.add(Path(run_dir) / "evaluation.json", text)
        out.add(Path(run_dir) / "evaluations" / f"{evaluation_key(result)}.json", text)
        stage_grids(out, grids, heldout.modes)
        out.commit()
        rates = {
            r[len(FUSION_PREFIX) :]: v["acceptance_rate"] for r, v in rows.items() if "acceptance_rate" in v
        }
        log_acceptance_rates(run_dir, rates, ens.step)
    return result


def reference_images(folder: str | Path, shape: tuple[int, ...]) -> Tensor:
    """Every image of a reference folder, resized and converted to the run's (C, H, W)."""

    if len(shape) != 3:
        raise ConfigError("--reference is a folder of images, but this run models 2-D points")
    return read_image_folder(folder, size=shape[1], channels=shape[0])[0]


def floor_sample(data_cfg: Any, n: int) -> Tensor:
    """n training examples (all of the split, `limit` ignored), drawn with a fixed seed."""

    train = load_dataset(replace(data_cfg, limit=None), "train")
    if len(train) < n:
        raise ConfigError(
            f"the floor row needs {n} training examples, but {data_cfg.name} has {len(train)}; lower --n"
        )
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(FLOOR_SEED))
    return train.x[perm[:n]]


def evaluate_fusion(
    ctx: FusionContext, name: str, n: int, seed: int, score: Any, params: Any = None
) -> tuple[dict[str, float], dict[str, float], Tensor, dict[str, Any] | None]:
    """One fusion's row, its member shares, its samples and what it chose (`auto`; else None): build
    it in `ctx` (on the calibration half of the held-out split) with `params` (default: its
    defaults), draw n, score them."""
    params = parse_fusion_params(name, {}) if params is None else params
    if getattr(params, "fit_seed", REFERENCE_SEED) != REFERENCE_SEED:
        raise GensembleError(
            f"fusion {name!r} would fit on the evaluation half; its fit_seed must be {REFERENCE_SEED}"
        )
    sampler = build_fusion(ctx.ens, name, ctx.real, params, ctx=ctx)
    samples = sampler.sample(n, torch.Generator().manual_seed(seed))
    row = score(samples.x.cpu(), FUSION_PREFIX + name)
    rate = getattr(sampler, "acceptance_rate", None)
    if rate is not None:
        row["acceptance_rate"] = float(rate)
    shares = samples.shares()
    row["top_share"] = max(shares.values())  # the largest share of one member among kept samples
    return row, shares, samples.x.cpu(), getattr(sampler, "choice", None)


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
