"""The quality benchmark's jobs: train single models and ensembles with the shipped recipes, then
score every row (plain models, members, fusions of the ensemble, critic fusions of the single model).

Each job returns records, one per row, with how much compute the row used (generator updates,
training seconds) and, for fusions, what sampling cost (proposals per kept sample, seconds per
1,000 samples) and which members the kept samples came from.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gensemble.config import load_yaml
from gensemble.data import DataConfig, heldout_halves, load_dataset
from gensemble.data.toy import toy_modes
from gensemble.evaluation.coverage import Coverage, worst_class
from gensemble.evaluation.coverage import shares as class_shares
from gensemble.evaluation.evaluate import REFERENCE_SEED
from gensemble.evaluation.evaluator import Evaluator
from gensemble.evaluation.features import as_saved_images, default_feature_cache, resolve_features
from gensemble.fusion import FusionContext, build_fusion
from gensemble.fusion.average import snapshot_files
from gensemble.metrics import get_extractor, label_mode_stats, toy_mode_stats
from gensemble.run import load_run, train_run

CONFIGS = Path(str(resources.files("gensemble") / "configs"))
STACKED_MODES = 1000


@dataclass(frozen=True)
class FusionSpec:
    """A row label, a registered fusion and its parameters."""

    label: str
    name: str
    params: dict[str, Any]


CRITIC_FUSIONS = (
    FusionSpec("rejection", "rejection", {}),
    FusionSpec("mh", "mh", {}),
    FusionSpec("ddls", "ddls", {"steps": 100, "step_size": 0.05, "noise": 0.5}),
    FusionSpec("snapshots", "snapshots", {}),
    FusionSpec("auto", "auto", {}),  # chooses on held-out data: the free ensemble's headline row
)
ENSEMBLE_FUSIONS = (
    FusionSpec("uniform", "uniform", {}),
    FusionSpec("weighted", "weighted", {}),
    *CRITIC_FUSIONS,
    FusionSpec("top-3 + rejection", "rejection", {"top_k": 3}),
    FusionSpec("top-3 + mh", "mh", {"top_k": 3}),
)
ENSEMBLE_LABELS = {
    f.label: f
    for f in (*ENSEMBLE_FUSIONS, *CRITIC_FUSIONS, FusionSpec("top-2 + rejection", "rejection", {"top_k": 2}))
}


def recipe(name: str, members: int, seed: int, overrides: dict[str, Any]) -> dict[str, Any]:
    """A shipped one-member recipe (configs/NAME.yaml) as an ensemble of `members` copies with member
    seeds 100·seed + i, so that no two rows of the benchmark share a random stream."""
    cfg = load_yaml(CONFIGS / f"{name}.yaml")
    member = {k: cfg.pop(k) for k in ("model", "loss", "optim", "gp_weight", "n_critic") if k in cfg}
    cfg.pop("seed", None)
    cfg["members"] = [{**member, "name": f"m{i}", "seed": 100 * seed + i} for i in range(members)]
    for key, value in overrides.items():
        section, field = key.split(".")
        cfg.setdefault(section, {})[field] = value
    return cfg


# --reuse-trained: run folder name -> the training seconds recorded when it was trained. A run found
# here (and finished) is scored again without retraining, so a change to fusion or judging can be
# re-measured on the same members; its compute figures are the ones measured when it was trained.
REUSED: dict[str, float] = {}


def train_timed(cfg: dict[str, Any], out: Path) -> float:
    if out.name in REUSED and (out / "latest.json").exists():
        return REUSED[out.name]
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    train_run(cfg, out)
    return time.perf_counter() - start


def fusion_rows(
    run: Path, specs: Sequence[FusionSpec], n: int, seed: int, score: Callable[[torch.Tensor], dict]
) -> list[dict[str, Any]]:
    """Every fusion of one run in one FusionContext (one tournament, one fitted critic); each fitted
    on the calibration half of the held-out split, drawn with `seed`, scored. A fusion that does not
    apply is a row with its error."""
    ens = load_run(run)
    heldout = load_dataset(ens.cfg.data, "test")
    ctx = FusionContext.build(ens, heldout, REFERENCE_SEED)
    rows = []
    for spec in specs:
        start = time.perf_counter()
        try:
            sampler = build_fusion(ens, spec.name, heldout, spec.params, ctx=ctx)
            built = time.perf_counter()
            out = sampler.sample(n, torch.Generator().manual_seed(seed))
            sampled = time.perf_counter()
            row = {"fusion": spec.label, "build_s": built - start, "s_per_1000": 1000 * (sampled - built) / n}
            row |= score(out.x.cpu())
        except Exception as exc:  # reported in the tables, not fatal to the benchmark
            rows.append({"fusion": spec.label, "error": f"{type(exc).__name__}: {exc}"[:200]})
            continue
        proposed = getattr(sampler, "proposed", None)
        row["proposals_per_kept"] = proposed / n if proposed else 1.0
        shares = out.shares()
        row["top_share"] = max(shares.values())
        row["shares"] = {k: round(v, 4) for k, v in shares.items()}
        rows.append(row)
    return rows


def snapshot_steps(run: Path, member: str) -> list[int]:
    return [int(f.stem.removeprefix("step-")) for f in snapshot_files(run, member)]


# --- 2-D mixtures ---------------------------------------------------------------------------------
def toy_scorer(dataset: str) -> Callable[[torch.Tensor], dict]:
    centres, sigma = toy_modes(dataset)

    def score(x: torch.Tensor) -> dict[str, float]:
        stats = toy_mode_stats(x, centres, sigma)
        return {
            "modes_covered": float(stats["modes_covered"]),
            "high_quality": float(stats["high_quality_frac"]),
        }

    return score


def member_rows(run: Path, n: int, seed: int, score: Callable) -> list[dict[str, Any]]:
    ens = load_run(run)
    gen = torch.Generator().manual_seed(seed)
    return [{"member": m.name} | score(m.model.sample(n, gen).cpu()) for m in ens.members]


def snapshot_model_row(run: Path, step: int, n: int, seed: int, score: Callable) -> dict[str, Any]:
    """The single model's generator as it was at `step` (its snapshot), sampled plainly."""
    from safetensors.torch import load_file

    ens = load_run(run)
    model = ens.members[0].model
    path = run / "snapshots" / ens.members[0].name / f"step-{step:08d}.safetensors"
    model.generator_net().load_state_dict(load_file(str(path)))
    return score(model.sample(n, torch.Generator().manual_seed(seed)).cpu())


def compare_job(
    section: str,
    dataset: str,
    recipe_name: str,
    seed: int,
    s: Any,
    work: Path,
    score: Callable,
    with_single: bool,
) -> list[dict[str, Any]]:
    """One ensemble of M members × S steps (and, with `with_single`, one single model of M × S steps
    on both compute axes), every row scored; `s` holds the section's settings."""
    m, steps, n = s.members, s.steps, s.n
    base = {"section": section, "dataset": dataset, "seed": seed, "n": n}
    ens_run = work / f"{dataset}-s{seed}-ensemble"
    ens_cfg = recipe(recipe_name, m, seed, {"data.name": dataset, "train.steps": steps, **s.train})
    ens_s = train_timed(ens_cfg, ens_run)
    rows = []
    best = None
    for r in member_rows(ens_run, n, seed, score):
        rows.append(base | {"method": "member", "kind": "member", "members": 1, "gen_updates": steps} | r)
        best = r if best is None or s.better(r, best) else best
    ens_base = base | {"members": m, "gen_updates": m * steps, "train_s": ens_s}
    rows.append(
        base | {"method": "best member", "kind": "best member", "members": 1, "gen_updates": steps} | best
    )
    for r in fusion_rows(ens_run, s.ensemble_fusions, n, seed, score):
        rows.append(ens_base | {"method": f"ensemble + {r['fusion']}", "kind": "ensemble"} | r)
    if not with_single:
        return rows
    single_run = work / f"{dataset}-s{seed}-single"
    single_cfg = recipe(
        recipe_name,
        1,
        seed,
        {
            "data.name": dataset,
            "train.steps": m * steps,
            "train.snapshot_every": s.single_snapshot_every,
            **s.train,
        },
    )
    single_s = train_timed(single_cfg, single_run)
    single_base = base | {"members": 1, "gen_updates": m * steps, "train_s": single_s}
    (plain,) = member_rows(single_run, n, seed, score)
    rows.append(single_base | {"method": "single (equal updates)", "kind": "single"} | plain)
    for r in fusion_rows(single_run, s.single_fusions, n, seed, score):
        # The single run's snapshots form an ensemble of their own (free: no extra training); the
        # other fusions of one model are critic sampling, not ensembling.
        kind = "ensemble (snapshots)" if r["fusion"] == "snapshots" else "single + critic"
        rows.append(single_base | {"method": f"single + {r['fusion']}", "kind": kind} | r)
    # Equal wall-clock: the single model's state after the seconds the ensemble took to train.
    per_step = single_s / (m * steps)
    wall_steps = int(ens_s / per_step)
    snaps = [t for t in snapshot_steps(single_run, "m0") if t <= wall_steps]
    if wall_steps >= m * steps or not snaps:
        wall = plain | {
            "gen_updates": m * steps,
            "train_s": single_s,
            "note": "ran no longer than the ensemble",
        }
    else:
        wall = snapshot_model_row(single_run, snaps[-1], n, seed, score) | {
            "gen_updates": snaps[-1],
            "train_s": snaps[-1] * per_step,
        }
    rows.append(base | {"method": "single (equal wall-clock)", "kind": "single", "members": 1} | wall)
    return rows


# --- images ----------------------------------------------------------------------------------------
def image_scorer(
    dataset: str,
    n: int,
    features: str = "classifier",
    metrics: tuple[str, ...] = ("fid", "kid", "prdc"),
    clusters: bool = False,
) -> tuple[Callable, Evaluator]:
    """Scores against the evaluation half of the held-out split (the one fusions never fit on). With
    `clusters`, also the worst of the reference's k-means clusters on this space (`gensemble
    evaluate`'s per-cluster view): `worst_cluster`, the row's share of it over the reference's, and
    `worst_cluster_id`."""
    heldout = load_dataset(DataConfig(name=dataset), "test")
    featurizer, metrics, _ = resolve_features(features, dataset, True, metrics, True, "cpu")
    _, eval_half = heldout_halves(heldout.x, REFERENCE_SEED)
    cache = (default_feature_cache(), f"{dataset}-native-test-eval-n{n}")
    ev = Evaluator.prepare(featurizer, eval_half[:n], metrics, 0, cache=cache)
    assert ev.reference is not None
    view = Coverage.prepare(ev.reference, dataset, features, use_probs=False) if clusters else None

    def score(x: torch.Tensor) -> dict[str, float]:
        feats = ev.featurizer(x, "samples", None)
        out = {k: float(v) for k, v in ev.score_features(feats).items()}
        labels = None if view is None else view.labels(feats)
        if view is not None and labels is not None:
            worst, ratio = worst_class(class_shares(labels, len(view.names)), view.reference)
            out |= {"worst_cluster": ratio, "worst_cluster_id": float(worst)}
        return out

    return score, ev


def graded_scorer(
    dataset: str, n: int, also: tuple[str, ...] = ("effnet-lite0",), fewer: dict[str, int] | None = None
) -> Callable:
    """The classifier's metrics (which steer the feature judge, auto's choice and best) under their
    plain names, and FID/KID on each space in `also` and `fewer` (nothing in the ensemble steers by
    them) as SPACE_fid and SPACE_kid, from the same samples; a space in `fewer` reads only the first
    `fewer[space]` of them, against as many reference images (Inception is slow on a CPU). Each space
    in `also` adds SPACE_worst_cluster and SPACE_worst_cluster_id (`image_scorer`'s `clusters`)."""
    steered = image_scorer(dataset, n)[0]
    sizes = {space: n for space in also} | (fewer or {})
    # The full-size spaces also count the reference's clusters (goal free_coverage), as evaluate does.
    independent = {
        space: (image_scorer(dataset, k, space, ("fid", "kid"), clusters=space in also)[0], k)
        for space, k in sizes.items()
    }

    def score(x: torch.Tensor) -> dict[str, float]:
        out = steered(x)
        for space, (fn, k) in independent.items():
            key = space.split(":")[0].replace("-lite0", "")
            out |= {f"{key}_{m}": v for m, v in fn(x[:k]).items() if m in ("fid", "kid") or "cluster" in m}
        return out

    return score


def stacked_scorer() -> Callable[[torch.Tensor], dict]:
    """Modes of 1000 (one digit per channel) and KL to uniform, labelled by the mnist-5k classifier."""
    ext = get_extractor("classifier:stacked-mnist")

    def score(x: torch.Tensor) -> dict[str, float]:
        labels = np.concatenate([ext.extract(as_saved_images(c)).labels for c in x.split(2000)])
        stats = label_mode_stats(labels, STACKED_MODES)
        return {"modes_hit": float(stats["modes_hit"]), "kl": float(stats["kl"])}

    return score
