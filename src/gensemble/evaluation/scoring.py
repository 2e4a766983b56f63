"""Scoring an evaluation plan: the floor row, every member and every fusion, each n samples through
the same features and metrics against the same reference. Returns rows and sample grids; writing
them is the caller's (evaluation/evaluate.py)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gensemble.ensemble.partition import assign
from gensemble.errors import ConfigError, GensembleError
from gensemble.evaluation.artefacts import GRID_N
from gensemble.evaluation.coverage import Coverage, fid_to
from gensemble.evaluation.evaluator import Evaluator
from gensemble.evaluation.plan import ALSO_METRICS, FLOOR_SEED, REFERENCE_SEED, EvalPlan, floor_sample
from gensemble.evaluation.result import FLOOR_ROW
from gensemble.fusion import FusionContext, build_fusion, parse_fusion_params
from gensemble.metrics import FeatureOutput, feature_stats
from gensemble.progress import progress

FUSION_PREFIX = "fusion:"


@dataclass
class Scored:
    """What scoring produced: rows of metrics, member shares and choices of fusions, sample grids."""

    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    graded: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # space -> rows (plan.also)
    shares: dict[str, dict[str, float]] = field(default_factory=dict)
    grids: dict[str, Tensor] = field(default_factory=dict)
    choices: dict[str, dict[str, Any]] = field(default_factory=dict)
    coverage: Coverage | None = None
    exemplars: Tensor | None = None  # a few reference images of each class (cluster) of `coverage`
    member_samples: dict[str, Tensor] = field(default_factory=dict)  # a few per member: health checks
    context: FusionContext | None = None  # what the fusions were built in (its judges, for the writer)


HEALTH_N = 500  # samples per member the colour check reads


def score_plan(plan: EvalPlan) -> Scored:
    """Every row of the plan, in order: the floor, the members, the fusions; each row's samples are
    drawn once and graded on the plan's first space (the full table) and on each further space."""
    feat, n, seed = plan.featurizer, plan.n, plan.request.seed
    evaluator = Evaluator.prepare(
        feat, plan.real[:n], plan.metrics, seed, plan.toy, (plan.cache, f"{plan.label}-test-eval-n{n}")
    )
    others = {
        f.name: Evaluator.prepare(
            f, plan.real[:n], ALSO_METRICS, seed, None, (plan.cache, f"{plan.label}-test-eval-n{n}")
        )
        for f in plan.also
    }
    out = Scored(graded={name: {} for name in others})
    # Which share of each row falls in each class (or k-means cluster) of the reference: the
    # classes of the first space's own network when it classifies, else clusters of its features.
    if plan.labels is not None and evaluator.reference is not None:
        mine = replace(plan.labels, index=plan.labels.index[:n])  # the n reference images scored
        out.coverage = (
            Coverage.from_classifier(plan.classifier, mine)
            if plan.classifier is not None
            else Coverage.from_labels(evaluator.reference, mine, feat.name, seed)
        )
    elif plan.toy is None and evaluator.reference is not None:
        own = feat.extractor is not None and feat.extractor.has_probs
        out.coverage = Coverage.prepare(evaluator.reference, plan.ens.cfg.data.name, feat.name, seed, own)
    if out.coverage is not None:
        out.exemplars = out.coverage.exemplars(plan.real[:n])
    # Generated samples' features are cached like real ones, keyed by a hash of the images themselves:
    # the same checkpoint, seed, n and fusion settings draw the same images, so a second evaluation
    # (another --reference, a re-render) extracts nothing again, and any change is a new entry.
    generated = (plan.cache, f"{plan.label}-generated")

    def score(feats: FeatureOutput, row: str, x: Tensor | None = None) -> dict[str, float]:
        values = evaluator.score_features(feats)
        if out.coverage is not None:
            out.coverage.add(row, feats, x)
            if "fid" in values and evaluator.real_stats is not None:
                values["fid_matched"] = out.coverage.matched_fid(row, feats, evaluator.real_stats, seed, x)
        return values

    def grade(x: Tensor | None, row: str, feats: FeatureOutput | None = None) -> dict[str, float]:
        """`row`'s samples x on every space (`feats`: the first space's features, when known)."""
        for name, ev in others.items():
            out.graded[name][row] = ev.score(x, row, generated) if x is not None else {}
        return score(feats if feats is not None else feat(x, row, generated), row, x)

    # One context for every fusion: the tournament (read from RUN/tournament.json when `score` saved
    # it), the proposals and the ensemble critic are computed once and shared.
    ctx = FusionContext.build(plan.ens, plan.heldout, REFERENCE_SEED) if plan.fusion_names else None
    out.context = ctx
    bar = progress(1 + len(plan.ens.members) + len(plan.fusion_names), "evaluate", unit="row")
    try:
        out.rows[FLOOR_ROW] = score(floor_features(plan, feat), FLOOR_ROW, floor_images(plan))
        for name, ev in others.items():
            out.graded[name][FLOOR_ROW] = ev.score_features(floor_features(plan, ev.featurizer))
        bar.update(1)
        own = own_cluster_stats(plan, evaluator)
        for member in plan.ens.members:
            x = member.model.sample(n, torch.Generator().manual_seed(seed)).cpu()
            feats = feat(x, member.name, generated)
            out.rows[member.name] = grade(x, member.name, feats)
            if member.name in own:  # a specialist, judged on its own cluster's part of the reference too
                out.rows[member.name]["fid_own"] = fid_to(feats.features, own[member.name])
            out.grids[member.name] = x[:GRID_N]
            out.member_samples[member.name] = x[:HEALTH_N]
            bar.update(1)
        for name in plan.fusion_names:
            row = FUSION_PREFIX + name
            out.rows[row], out.shares[row], x, choice = evaluate_fusion(
                ctx, name, n, seed, lambda x, d: grade(x, d), plan.settings[name]
            )
            if choice is not None:
                out.choices[row] = choice
            out.grids[row] = x[:GRID_N]
            bar.update(1)
    finally:
        bar.close()
    return out


def own_cluster_stats(plan: EvalPlan, evaluator: Evaluator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For a partition run, each member's reference statistics on its own cluster (the reference
    images assigned to it by the run's centres, on the run's partition space), where the cluster
    holds more images than the features have dimensions; empty for other schemes."""
    ref = evaluator.reference
    if plan.ens.cfg.scheme.name != "partition" or ref is None or plan.toy is not None:
        return {}
    labels = assign(plan.ens, plan.real[: plan.n])
    out = {}
    for i, m in enumerate(plan.ens.members):
        part = ref.features[labels == i]
        if len(part) > part.shape[1]:  # (no Fréchet distance where the covariance is singular)
            out[m.name] = feature_stats(part)
    return out


def floor_images(plan: EvalPlan) -> Tensor:
    """The floor row's n real images that are not the reference, in a generator's place."""
    n = plan.n
    if plan.request.on_training_split:
        # The reference is the training split, so held-out images stand in for a generator.
        held = plan.real_heldout_half
        if len(held) < n:
            raise ConfigError(
                f"--reference train with --n {n}: the floor row needs {n} held-out images but the "
                f"evaluation half has {len(held)}; use --n {len(held)} or less"
            )
        return held[:n]
    return floor_sample(plan.ens.cfg.data, n)


def floor_features(plan: EvalPlan, featurizer: Any) -> FeatureOutput:
    """The floor row's features on `featurizer` (cached under the images' origin)."""
    n, cache, label = plan.n, plan.cache, plan.label
    key = (
        f"{label}-test-eval-n{n}"
        if plan.request.on_training_split
        else f"{label}-train-n{n}-seed{FLOOR_SEED}"
    )
    return featurizer(floor_images(plan), "floor", (cache, key))


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
