"""Are the judges valid? Rank a population of generators of clearly different quality with every kind
of judge and every scoring, and compare the ranking with FID and KID on the evaluation half.

    python benchmarks/judges.py            # Fashion-MNIST and grid25 populations, then `best` over 5 seeds
    python benchmarks/judges.py --only toy # one section (fashion, toy, best, losses)
    python benchmarks/judges.py --only best --from-seed 3   # seeds 3 and 4, beside a process doing 0-2

Populations (benchmarks/configs/judges-*.yaml) are trained once into runs/bench-judges/ and reused.
Each holds the run's members plus the snapshots of its first member, so it has a collapsed or
barely trained GAN, a narrow one, well-trained ones and one run's snapshots (Fashion also a VAE).
Judges are fitted on the first part of the calibration half and calibrated on the second; FID and
KID are measured on the evaluation half, which no judge sees, on the domain classifier's features
(which steer the feature judge and `best`) and on two spaces nothing steers by: EfficientNet-Lite0 and
Inception (about 9 images a second on one core, so most of the benchmark's time). Writes
docs/results/judges.json (with the `goals` list) and the "Judges" section of docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import yaml
from judges_report import INDEPENDENT, KEPT, goals, render
from scipy.stats import spearmanr

from gensemble.data import heldout_halves, load_dataset
from gensemble.errors import GensembleError
from gensemble.evaluation.evaluator import Evaluator
from gensemble.evaluation.features import resolve_features
from gensemble.fusion import build_fusion
from gensemble.fusion.base import FusionContext
from gensemble.fusion.snapshots import SnapshotParams, snapshot_generators
from gensemble.metrics import feature_stats, fid, frechet_distance, kid, mode_kernel_features
from gensemble.metrics.features import feature_map, features_of
from gensemble.run import load_run, train_run
from gensemble.tournament import SCORINGS, judge_population, owner_of, table_from_judgements
from gensemble.tournament.judges import (
    JudgeConfig,
    feature_source,
    fit_judges,
    judge_split,
)

from _common import write_marked_table

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs" / "bench-judges"
OUT = ROOT / "docs" / "results" / "judges.json"
N_EVAL = 2000  # samples per generator, and evaluation-half images, for FID/KID
N_JUDGE = 1000  # samples per generator the judges score
JUDGES = {
    "raw": JudgeConfig("raw"),
    "finetuned": JudgeConfig("finetuned"),
    "features": JudgeConfig("features"),
}


def trained(config: str | dict, name: str) -> Path:
    """The population run `name`, trained to the end once (a run stopped part-way resumes exactly)."""
    run, done = RUNS / name, RUNS / f"{name}.trained"
    if not done.exists():
        cfg = ROOT / "benchmarks" / "configs" / config if isinstance(config, str) else config
        resume = (run / "latest.json").exists()
        if not resume:
            shutil.rmtree(run, ignore_errors=True)  # (stopped before its first checkpoint)
        train_run(cfg, run, resume=resume)
        done.write_text("")
    return run


def population(config: str | dict, name: str) -> tuple:
    """(ensemble, held-out split, generators: the members and the first member's snapshots)."""
    ens = load_run(trained(config, name))
    heldout = load_dataset(ens.cfg.data, "test")
    ctx = FusionContext.build(ens, heldout, 0)
    first = ens.members[0].name
    snaps = snapshot_generators(ctx, SnapshotParams(members=(first,)))
    gens = dict(ens.generators())
    gens |= {k: v for k, v in snaps.items() if not k.endswith("@final")}
    return ens, heldout, gens


# Populations trained from one config each (--only NAME). `holdout` tests the rule of the goal
# holdout_feature_judge, fixed before it was trained; it is not part of the default run.
POPULATIONS = (
    ("fashion", "judges-fashion.yaml"),
    ("toy", "judges-grid25.yaml"),
    ("holdout", "judges-fashion-holdout.yaml"),
)

# The widened population (--only losses): one run of every loss, and the generators of an MGAN run and
# of a boosting run (the judges are the first run's discriminators; the others' generators are judged).
LOSSES = ("judges-fashion-losses.yaml", "losses")
LOSSES_EXTRA = (
    ("judges-fashion-mgan.yaml", "losses-mgan"),
    ("judges-fashion-boosting.yaml", "losses-boosting"),
)


def widened_population() -> tuple:
    ens, heldout, gens = population(*LOSSES)
    for config, name in LOSSES_EXTRA:
        gens |= load_run(
            trained(config, name)
        ).generators()  # (member names are unique across the three configs)
    return ens, heldout, gens


_GRADERS: dict[tuple, Evaluator] = {}


def grader(features: str | None, dataset: str, heldout, metrics: tuple[str, ...], n: int) -> Evaluator:
    """An evaluator against the first n images of the evaluation half, prepared once per space: the
    reference's Inception features take minutes, and every seed of `best` shares the same half."""
    key = (features, dataset, metrics, n)
    if key not in _GRADERS:
        fz, m, _ = resolve_features(features, dataset, heldout.is_image, metrics, True, "cpu")
        toy = None if heldout.is_image else (heldout.modes, float(heldout.sigma))
        _GRADERS[key] = Evaluator.prepare(fz, heldout_halves(heldout.x, 0)[1][:n], m, 0, toy=toy)
    return _GRADERS[key]


def quality(
    ens, heldout, gens: dict, n: int = N_EVAL, seed: int = 0, spaces: tuple[str, ...] = tuple(INDEPENDENT)
) -> dict[str, dict[str, float]]:
    """FID and KID (and modes on toys) of every generator on the evaluation half. On 2-D toys FID and
    KID are taken on the mode-kernel features (metrics.modes.mode_kernel_features): on the raw points
    they compare only low moments and rank a blob between the modes as good. The raw-point figures
    are kept beside them (fid_raw, kid_raw). Images are also graded on the independent `spaces`."""
    dataset, is_image = ens.cfg.data.name, heldout.is_image
    metrics = ("fid", "kid", "prdc") if is_image else ("fid", "kid", "modes")
    ev = grader(None, dataset, heldout, metrics, n)
    toy = None if is_image else (heldout.modes, float(heldout.sigma))
    independent = {s: grader(INDEPENDENT[s], dataset, heldout, ("fid", "kid"), n) for s in spaces if is_image}
    _, eval_half = heldout_halves(heldout.x, 0)
    out = {}
    for i, (name, g) in enumerate(gens.items()):
        x = g.sample(n, torch.Generator().manual_seed(seed + 900 + i)).float().cpu()
        row = {k: float(v) for k, v in ev.score(x).items() if k in KEPT}
        for suffix, space in independent.items():  # the same samples
            row |= {f"{k}_{suffix}": float(v) for k, v in space.score(x).items() if k in ("fid", "kid")}
        if toy is not None:
            real, fake = (mode_kernel_features(v, *toy) for v in (eval_half[:n], x))
            row = {
                "fid": fid(fake, real),
                "kid": kid(real, fake).mean,
                "fid_raw": row.pop("fid"),
                "kid_raw": row.pop("kid"),
            } | row
        out[name] = row
    return out


def rank_corr(scores: np.ndarray, values: list[float]) -> float:
    """Spearman between S(G) and −metric (lower metric is better)."""
    return float(spearmanr(scores, -np.asarray(values)).statistic)


def judge_section(ens, heldout, gens: dict, q: dict) -> dict:
    """Spearman(S(G), −FID / −KID) for every judge kind × scoring, with and without self-judgement."""
    cal, ev = heldout_halves(heldout.x, 0)
    names = [m.name for m in ens.members]
    # On 2-D toys: FID on the raw points (means and covariances only) and the toys' own quality
    # measure, the share of samples within 3σ of a mode (hq), are reported beside FID on mode features.
    columns = {"fid": "fid", "kid": "kid", "fid_raw": "fid_raw", "hq": "high_quality"}
    columns |= {f"fid_{s}": f"fid_{s}" for s in INDEPENDENT}
    values = {c: [q[g].get(k) for g in gens] for c, k in columns.items()}

    def spearmans(scores) -> dict[str, float | None]:
        """Spearman(S, −metric) per column (S, +HQ for the share of good samples); None where absent."""
        return {
            f"spearman_{c}": None if None in v else (-1 if c == "hq" else 1) * rank_corr(scores, v)
            for c, v in values.items()
        }

    fid_best = min(gens, key=lambda g: q[g]["fid"])
    rows = []
    for kind, cfg in JUDGES.items():
        start = time.perf_counter()
        nets = fit_judges(ens.discriminators(), gens, judge_split(cal)[0], cfg, ens.cfg.data.name, 0)
        fit_s = time.perf_counter() - start
        owners = tuple(owner_of(d, names) for d in nets)
        for self_j in (True, False):
            c = JudgeConfig(cfg.kind, cfg.steps, cfg.lr, cfg.batch, self_judgement=self_j)
            j = judge_population(gens, nets, owners, (cal, ev), N_JUDGE, "platt", 0, c)
            for scoring in SCORINGS:
                if not self_j and scoring != "matrix":
                    continue  # self-judgement changes only the matrix mean
                t = table_from_judgements(j, scoring)
                pick = t.generator_ranking()[0]
                rows.append(
                    {
                        "judges": kind,
                        "self_judgement": self_j,
                        "scoring": scoring,
                        **spearmans(t.generator_scores),
                        "best_pick": pick,
                        "pick_is_fid_best": pick == fid_best,
                        "fit_s": round(fit_s, 1),
                        "scores": dict(zip(t.generators, np.round(t.generator_scores, 4).tolist())),
                    }
                )
                print(
                    f"  {kind:9s} self={self_j!s:5s} {scoring:7s} spearman(-FID) {rows[-1]['spearman_fid']:+.3f} "
                    f"(-KID) {rows[-1]['spearman_kid']:+.3f}  best: {pick}  fit {fit_s:.0f}s",
                    flush=True,
                )
    # The judge `best` uses by default: FID against the choice quarter of the calibration half.
    start = time.perf_counter()
    held = heldout_fids(ens, heldout, gens)
    ranked = sorted(held, key=held.get)
    rows.append(
        {
            "judges": "heldout-fid",
            "self_judgement": True,
            "scoring": "fid",
            **spearmans(-np.array([held[g] for g in gens])),
            "best_pick": ranked[0],
            "pick_is_fid_best": ranked[0] == fid_best,
            "fit_s": round(time.perf_counter() - start, 1),
            "scores": {g: round(held[g], 4) for g in gens},
        }
    )
    print(f"  heldout-fid spearman(-FID) {rows[-1]['spearman_fid']:+.3f}  best: {ranked[0]}", flush=True)
    # How far the grading spaces agree with each other: a judge cannot match two spaces that disagree.
    spaces = [c for c in ("fid", *(f"fid_{s}" for s in INDEPENDENT)) if None not in values[c]]
    agree = {
        f"{a}~{b}": rank_corr(-np.asarray(values[a]), values[b]) for a in spaces for b in spaces if a < b
    }
    return {"generators": q, "fid_best": fid_best, "rows": rows, "spaces_agree": agree}


def heldout_fids(ens, heldout, gens: dict) -> dict[str, float]:
    """FID of every generator against the choice quarter (what `best` ranks by), fresh samples, on
    the features `best` uses (FusionContext.heldout_fids: mode-kernel features on toys)."""
    ctx = FusionContext.build(ens, heldout, 0)
    fn = feature_map(feature_source(ens.cfg.data.name))
    stats = feature_stats(features_of(fn, ctx.choose_real).double().numpy())
    n = len(ctx.choose_real)
    out = {}
    for i, (name, g) in enumerate(gens.items()):
        x = g.sample(n, torch.Generator().manual_seed(300 + i)).float().cpu()
        out[name] = float(frechet_distance(*feature_stats(features_of(fn, x).double().numpy()), *stats))
    return out


def seeded(config: Path, s: int) -> dict:
    """The config with every member's seed moved by 10·s: ensembles that differ only in seed."""
    raw = yaml.safe_load(config.read_text())
    raw["members"] = [{**m, "seed": int(m.get("seed", i)) + 10 * s} for i, m in enumerate(raw["members"])]
    raw["train"] = {**raw.get("train", {}), "threads": 1}  # leaves a core for whatever else runs
    return raw


def best_section(config: str, seeds: range, kind: str) -> None:
    """`best` (the top of the default tournament) over ensembles that differ only in seed. The FID
    noise is the spread of one generator's FID over 3 sampling seeds (n = N_EVAL), twice its std.
    Each seed is stored as it finishes; one already measured on every space is not redone, so the
    seeds can be split between processes and resumed."""
    for s in seeds:
        if s in measured_seeds(kind):
            continue
        ens, heldout, _ = population(seeded(ROOT / "benchmarks" / "configs" / config, s), f"best-seed{s}")
        gens = ens.generators()
        q = quality(ens, heldout, gens)
        graded = {}  # per space: its FID-best generator, every FID, and the noise of the best one's
        for suffix in ("", *(f"_{k}" for k in INDEPENDENT)):
            col = f"fid{suffix}"
            top = min(q, key=lambda g: q[g][col])
            space = (suffix[1:],) if suffix else ()
            again = [
                quality(ens, heldout, {top: gens[top]}, seed=1000 * k, spaces=space)[top] for k in (1, 2)
            ]
            spread = [q[top][col]] + [r[col] for r in again]
            graded |= {
                f"fid_best{suffix}": top,
                f"fids{suffix}": {g: q[g][col] for g in q},
                f"noise{suffix}": 2.0 * float(np.std(spread)),
            }
        cal, ev = heldout_halves(heldout.x, 0)
        cfg = JUDGES[kind]
        nets = fit_judges(ens.discriminators(), gens, judge_split(cal)[0], cfg, ens.cfg.data.name, 0)
        owners = tuple(owner_of(d, [m.name for m in ens.members]) for d in nets)
        t = table_from_judgements(judge_population(gens, nets, owners, (cal, ev), N_JUDGE, "platt", 0, cfg))
        by_tournament = t.generator_ranking()[0]
        pick = build_fusion(ens, "best", heldout).names[0]  # the fusion as users get it
        entry = {"seed": s, "pick": pick, "tournament_pick": by_tournament} | graded
        print(
            f"  seed {s}: best picks {pick}; the tournament's top {by_tournament}; FID-best "
            + ", ".join(
                f"{k[9:] or 'classifier'} {v}" for k, v in graded.items() if k.startswith("fid_best")
            ),
            flush=True,
        )
        entries = measured_seeds(kind) | {s: entry}  # re-read: another process may have added seeds
        store("best", {"judges": kind, "ensembles": [entries[k] for k in sorted(entries)]})


def measured_seeds(kind: str) -> dict[int, dict]:
    """The `best` seeds in judges.json measured by `kind` judges on every space."""
    best = json.loads(OUT.read_text()).get("best", {}) if OUT.exists() else {}
    kept = best.get("ensembles", []) if best.get("judges") == kind else []
    return {e["seed"]: e for e in kept if all(f"fids_{s}" in e for s in INDEPENDENT)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=("fashion", "toy", "best", "losses", "holdout"), action="append")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument(
        "--from-seed", type=int, default=0, help="best: start at this seed (split seeds across processes)"
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--render", action="store_true", help="only re-render RESULTS.md from the JSON")
    args = ap.parse_args(argv)
    if args.render:
        result = json.loads(OUT.read_text())
        result["goals"] = goals(result)
        OUT.write_text(json.dumps(result, indent=1) + "\n")
        write_marked_table(
            ROOT / "docs" / "RESULTS.md", render(result), "<!-- judges:begin -->", "<!-- judges:end -->"
        )
        print(render(result))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    sections = args.only or ["fashion", "toy", "best"]
    for name, config in POPULATIONS:
        if name in sections:
            print(f"{name}: population and FID", flush=True)
            with timed(name):
                store(name, judge_section(*scored(population(config, name))))
    if "losses" in sections:
        print("losses: the widened population and FID", flush=True)
        with timed("losses"):
            store("losses", judge_section(*scored(widened_population())))
    if "best" in sections:
        print("best over seeds (the demo ensemble at 600 steps)", flush=True)
        with timed("best"):
            best_section("demo-600.yaml", range(args.from_seed, args.seeds), "finetuned")
    result = json.loads(OUT.read_text())
    write_marked_table(
        ROOT / "docs" / "RESULTS.md", render(result), "<!-- judges:begin -->", "<!-- judges:end -->"
    )
    print(json.dumps(result["goals"], indent=1))
    return 0


def scored(pop: tuple) -> tuple:
    """(ensemble, held-out split, generators, their quality), printing the quality."""
    ens, heldout, gens = pop
    q = quality(ens, heldout, gens)
    for g, v in q.items():
        print(f"  {g:14s} " + "  ".join(f"{k} {x:.4g}" for k, x in v.items()), flush=True)
    return ens, heldout, gens, q


def store(key: str, value) -> None:
    """Set one key of judges.json and its goals, re-reading the file first: sections may run as
    separate processes side by side, and each must keep what the others wrote."""
    result = json.loads(OUT.read_text()) if OUT.exists() else {}
    result[key] = value
    result["goals"] = goals(result)
    tmp = OUT.with_suffix(f".{os.getpid()}.tmp")  # (one per process: they may write at once)
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(OUT)


@contextmanager
def timed(section: str):
    """Records the section's wall-clock seconds under `seconds` in judges.json."""
    start = time.perf_counter()
    yield
    seconds = json.loads(OUT.read_text()).get("seconds", {})
    store(
        "seconds",
        (seconds if isinstance(seconds, dict) else {}) | {section: round(time.perf_counter() - start)},
    )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except GensembleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
