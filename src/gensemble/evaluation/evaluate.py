"""`gensemble evaluate`: every member and fusion of a run against held-out real data, in one table.

Every row is measured the same way: n samples -> the same features -> the same metric functions,
against the same n held-out real examples. The first row, ``real:train-vs-test``, puts n training
images in the generators' place: it is what a perfect generator would score at this n (the floor
of FID/KID, the ceiling of precision, recall and coverage), so it gives the scale of sampling noise.

The reference is the *evaluation half* of the held-out split, halved exactly as the fusion methods
halve it (`gensemble.data.heldout_halves`, seed 0): the fusions fit their calibrators and
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

from gensemble.artefacts import dumps
from gensemble.errors import ConfigError
from gensemble.evaluation.artefacts import log_acceptance_rates, stage_exemplars, stage_grids
from gensemble.evaluation.coverage import EXEMPLARS, coverage_notes
from gensemble.evaluation.features import (  # noqa: F401  (re-exported: the entry point)
    Featurizer,
    cached_features,
    extract_features,
    extractor_fingerprint,
)
from gensemble.evaluation.plan import (  # noqa: F401  (re-exported)
    DEFAULT_METRICS,
    FLOOR_SEED,
    INCEPTION_N,
    MAX_N,
    METRIC_NAMES,
    MIN_N,
    REFERENCE_SEED,
    SAMPLE_SIZE_METRICS,
    TOY_N,
    TRAIN_REFERENCE,
    EvalPlan,
    EvalRequest,
    floor_sample,
    plan_evaluation,
    reference_images,
    resolve_metrics,
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
from gensemble.evaluation.scoring import FUSION_PREFIX, Scored, evaluate_fusion, score_plan  # noqa: F401
from gensemble.health import colour_problems, curve_problems, merge, read_curves, warning_lines
from gensemble.metrics import MetricInputs, as_feature_array, compute_metrics
from gensemble.metrics.extractor import ArrayLike
from gensemble.metrics.suite import KID_SUBSET_SIZE, KID_SUBSETS, kid_subset_size  # noqa: F401  (re-exported)
from gensemble.runfolder import Outputs, writes_into_run
from gensemble.sampling import DOMINANT_SHARE


# --- pure composition of the metrics -----------------------------------------------------------
def evaluate_samples(
    real: ArrayLike,
    fake: ArrayLike,
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    fake_probs: ArrayLike | None = None,
    real_labels: ArrayLike | None = None,
    toy_modes: tuple[ArrayLike, float] | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Metrics of one fake feature set (N, D) against real features (M, D), as a flat dict.

    `fake_probs` (N, classes) are class probabilities for ``is`` and, on labelled images, ``modes``
    (KL against the histogram of `real_labels`, or uniform when None). `toy_modes` = (centres,
    sigma) makes ``modes`` the 2-D mixture statistics of `fake` (raw points). To score many fake
    sets against one reference, prepare it once with `evaluation.evaluator.Evaluator`.
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
        seed=seed,
    )
    return compute_metrics(tuple(metrics), inputs)


# --- the run-level entry point -------------------------------------------------------------------
@writes_into_run("evaluate", unless="write")
def evaluate_run(
    run_dir: str | Path, request: EvalRequest | None = None, *, write: bool = True, **options: Any
) -> EvalResult:
    """Evaluate every member and every requested fusion of a run, and the real floor, in one table:
    plan (what to score, at which n, with which features), score, then write RUN/evaluation.json
    (unless `write` is False). `options` are EvalRequest's fields (metrics, features, n, fusions,
    seed, device, cache_dir, step, reference, fusion_settings), or pass an EvalRequest."""
    try:
        req = request if request is not None else EvalRequest(**options)
    except TypeError as exc:
        raise ConfigError(f"evaluate_run: {exc}") from None
    plan = plan_evaluation(run_dir, req)
    scored = score_plan(plan)
    result = assemble(plan, scored)
    if write:
        write_evaluation(run_dir, plan, result, scored)
        if scored.context is not None:
            scored.context.keep_judges()
    return result


def member_health(plan: EvalPlan, scored: Scored) -> dict[str, str]:
    """Members that look failed (their loss log, or samples whose colours are far from the
    reference's), one warning line each; {member: why}."""
    curves = read_curves(plan.ens.run_dir) if plan.ens.run_dir is not None else {}
    found = curve_problems(curves)
    if plan.toy is None and plan.real.dim() == 4:
        samples = {m: x.numpy() for m, x in scored.member_samples.items()}
        found = merge(found, colour_problems(samples, plan.real[: plan.n].cpu().numpy()))
    for line in warning_lines(found):
        warnings.warn(line, stacklevel=3)
    return found


def assemble(plan: EvalPlan, scored: Scored) -> EvalResult:
    """The result: rows, how they were measured, and the notes a reader needs."""
    req, notes = plan.request, list(plan.notes)
    info: dict[str, Any] = {
        "dataset": plan.ens.cfg.data.name,
        "seconds": round(time.perf_counter() - plan.start, 1),
    }
    if req.reference is not None:
        info["reference_folder"] = str(req.reference)
    if scored.choices:
        info["choices"] = (
            scored.choices
        )  # what `auto` chose on held-out data, and every candidate's FID there
    if req.fusion_settings:
        settings = req.fusion_settings
        info["fusion_settings"] = settings if isinstance(settings, dict) else list(settings)
    if scored.shares:
        info["member_shares"] = {r: {k: round(v, 4) for k, v in s.items()} for r, s in scored.shares.items()}
        for row, s in scored.shares.items():
            top = max(s, key=s.get)
            # `best` draws from one member by definition: nothing to warn about there.
            if len(s) > 1 and s[top] >= DOMINANT_SHARE and row != f"{FUSION_PREFIX}best":
                notes.append(
                    f"{row} keeps {100 * s[top]:.0f}% of its samples from {top}: it is {top}, refined, "
                    "not a mixture (the ensemble's diversity is lost)"
                )
    if not plan.fusion_names:
        notes.append(
            "no fusion was evaluated, so this table cannot say whether the ensemble beats its members: add "
            "--fusion auto (or the demo's: auto uniform best rejection)"
        )
    failed = member_health(plan, scored)
    if failed:
        info["failed_members"] = failed
    if scored.coverage is not None and scored.coverage.rows:
        info["per_class"] = scored.coverage.to_json()
        notes.extend(coverage_notes(info["per_class"]))
    if plan.toy is not None:
        info["num_modes"] = len(plan.toy[0])
    if "modes" in plan.metrics and plan.toy is None:
        uniform = plan.featurizer.uniform_kl
        info["kl_reference"] = "uniform" if uniform else "labels predicted on the reference"
    steered = {r: () for r in scored.rows} | plan.steered
    result = EvalResult(
        rows=scored.rows,
        features=plan.featurizer.name,
        n=plan.n,
        seed=req.seed,
        metrics=plan.metrics,
        reference=plan.reference_text,
        notes=tuple(notes),
        info=info,
        graded=scored.graded,
        steered_by=steered,
    )
    if scored.exemplars is not None and "per_class" in info:
        # Named after the evaluation's key, so each kept evaluation's table points at its own clusters.
        table = {**info["per_class"], "exemplars": f"clusters-{evaluation_key(result)}.png"}
        result = replace(result, info={**info, "per_class": table})
    return replace(result, notes=(*result.notes, *matching_notes(result)))


def matching_notes(result: EvalResult) -> list[str]:
    """A fusion whose FID gain over the best member disappears once each row is resampled to the
    reference's class (cluster) histogram is flagged: its gain came from re-weighting the mix."""
    rows = result.rows
    members = {
        r: v for r, v in rows.items() if ":" not in r and isinstance(v.get("fid_matched"), (int, float))
    }
    if not members:
        return []
    best = min(members, key=lambda r: members[r]["fid"])
    out = []
    for r, v in rows.items():
        if not r.startswith(FUSION_PREFIX) or not isinstance(v.get("fid_matched"), (int, float)):
            continue
        if v["fid"] < members[best]["fid"] and v["fid_matched"] >= members[best]["fid_matched"]:
            out.append(
                f"{r} beats {best} on FID ({v['fid']:.4g} against {members[best]['fid']:.4g}) but not once both "
                f"are resampled to the reference's class mix ({v['fid_matched']:.4g} against "
                f"{members[best]['fid_matched']:.4g}): its gain is a re-weighting of classes"
            )
    return out


def write_evaluation(run_dir: str | Path, plan: EvalPlan, result: EvalResult, scored: Scored) -> None:
    """evaluation.json is the latest; evaluations/ keeps one file per (features, n, reference), so an
    evaluation with other features never silently replaces an earlier one in the report. All or
    nothing: a kill or an error leaves the previous set exactly as it was."""
    out = Outputs(run_dir)
    text = dumps(result.to_file_json(), indent=2)
    out.add(Path(run_dir) / "evaluation.json", text)
    out.add(Path(run_dir) / "evaluations" / f"{evaluation_key(result)}.json", text)
    stage_grids(out, scored.grids, plan.heldout.modes)
    exemplars = result.info.get("per_class", {}).get("exemplars")
    if exemplars is not None and scored.exemplars is not None:
        stage_exemplars(out, exemplars, scored.exemplars, EXEMPLARS)
    out.commit()
    rates = {
        r[len(FUSION_PREFIX) :]: v["acceptance_rate"]
        for r, v in result.rows.items()
        if "acceptance_rate" in v
    }
    log_acceptance_rates(run_dir, rates, plan.ens.step)


__all__ = [
    "DEFAULT_METRICS",
    "FLOOR_ROW",
    "HIGHER_IS_BETTER",
    "METRIC_NAMES",
    "EvalRequest",
    "EvalResult",
    "Featurizer",
    "cached_features",
    "evaluate_run",
    "evaluate_samples",
    "extract_features",
    "extractor_fingerprint",
    "kid_subset_size",
]
