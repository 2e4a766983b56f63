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
KEPT = (
    "fid",
    "kid",
    "fid_effnet",
    "kid_effnet",
    "fid_inception",
    "kid_inception",
    "fid_raw",
    "kid_raw",
    "precision",
    "recall",
    "modes_covered",
    "high_quality",
)
# Images are graded on two spaces that nothing in gensemble steers by (the domain classifier steers
# the feature judge and `best`'s held-out ranking; docs/evaluation.md): EfficientNet-Lite0, fast, and
# Inception, the field's reference, which benchmarks/feature_spaces.py validates EfficientNet against.
# Keyed by the suffix of their columns (fid_effnet, fid_inception).
INDEPENDENT = {"effnet": "effnet-lite0", "inception": "inception"}
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


def render(result: dict) -> str:
    """The RESULTS.md section: one table per population, then the `best` check and the goals."""
    lines = []
    titles = (
        ("fashion", "Fashion-MNIST (classifier features, and EfficientNet-Lite0's, which nothing steers by)"),
        ("toy", "grid25 (FID and KID on mode-kernel features; on the raw points beside them)"),
        (
            "losses",
            "Fashion-MNIST, every loss and scheme (non-saturating, hinge + SN, WGAN-GP, least squares, "
            "minimax, a VAE, MGAN's and boosting's generators, snapshots)",
        ),
        ("holdout", "Fashion-MNIST, held out: trained after the rule of holdout_feature_judge was fixed"),
    )
    for key, title in titles:
        sec = result.get(key)
        if not sec:
            continue
        gens = sec["generators"]
        lines += [f"**{title}**: {len(gens)} generators; FID-best {sec['fid_best']}.", ""]
        cols = [k for k in KEPT if any(k in v for v in gens.values())]
        lines += ["| generator | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        lines += [f"| {g} | " + " | ".join(f"{v[c]:.4g}" for c in cols) + " |" for g, v in gens.items()]
        lines += [
            "",
            "| judges | self-judgement | scoring | Spearman(S, −FID) | Spearman(S, −FID EfficientNet-Lite0) | Spearman(S, −FID Inception) | Spearman(S, −KID) | Spearman(S, −FID raw) | Spearman(S, HQ) | `best` picks | fit s |",
        ]
        lines += ["|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in sec["rows"]:
            hq, raw, eff, inc = (
                "–" if r.get(k) is None else f"{r[k]:+.3f}"
                for k in ("spearman_hq", "spearman_fid_raw", "spearman_fid_effnet", "spearman_fid_inception")
            )
            lines.append(
                f"| {r['judges']} | {'on' if r['self_judgement'] else 'off'} | {r['scoring']} | {r['spearman_fid']:+.3f} | {eff} | {inc} | "
                f"{r['spearman_kid']:+.3f} | {raw} | {hq} | {r['best_pick']}{' (FID-best)' if r['pick_is_fid_best'] else ''} | {r['fit_s']} |"
            )
        if sec.get("spaces_agree"):
            lines += [
                "",
                "The grading spaces' FIDs agree with each other (Spearman over the generators): "
                + ", ".join(f"{k.replace('~', ' with ')} {v:+.3f}" for k, v in sec["spaces_agree"].items())
                + ".",
            ]
        lines.append("")
    if "best" in result:
        lines += [
            "**`best` over ensembles that differ only in seed** (the demo's 3 DCGANs + VAE at 600 steps; "
            "`best` ranks by held-out FID, the tournament column is the default judges' top S(G)):",
            "",
            "| seed | `best` picks (FID) | the tournament's top (FID) | FID-best (FID) | noise (2σ, 3 sampling seeds) "
            "| on the independent spaces: pick's FID, FID-best (FID), noise |",
            "|---|---|---|---|---|---|",
        ]
        for e in result["best"]["ensembles"]:
            f, t = e["fids"], e.get("tournament_pick", e["pick"])
            lines.append(
                f"| {e['seed']} | {e['pick']} ({f[e['pick']]:.2f}) | {t} ({f[t]:.2f}) | "
                f"{e['fid_best']} ({f[e['fid_best']]:.2f}) | ±{e['noise']:.2f} | {independent_cell(e)} |"
            )
        lines.append("")
    lines += ["| goal | target | measured | met |", "|---|---|---|---|"]
    lines += [
        f"| {g['name']} | {g['target']} | {g['measured']}{note(g)} | {'yes' if g['met'] else 'no'} |"
        for g in result.get("goals", [])
    ]
    return "\n".join(lines)


SPACE_NAMES = {"effnet": "EfficientNet-Lite0", "inception": "Inception"}


def independent_cell(e: dict) -> str:
    """The pick's FID, the FID-best generator (its FID) and the noise, on every independent space."""
    cells = []
    for s in INDEPENDENT:
        if f"fids_{s}" in e:
            f, top = e[f"fids_{s}"], e[f"fid_best_{s}"]
            cells.append(
                f"{SPACE_NAMES[s]}: {f[e['pick']]:.1f}, {top} ({f[top]:.1f}), ±{e[f'noise_{s}']:.1f}"
            )
    return "; ".join(cells) or "–"


def note(goal: dict) -> str:
    return f" ({goal['note']})" if "note" in goal else ""


def goals(result: dict) -> list[dict]:
    """The issue's goals, from whatever sections have been measured. On images a goal is graded on
    every independent space measured and is met only where it holds on all of them: choosing the one
    space where it holds would be choosing the yardstick by the result."""
    out = []
    for key, name in (("fashion", "judges_fashion"), ("toy", "judges_toy"), ("losses", "judges_all_losses")):
        rows = [
            r
            for r in result.get(key, {}).get("rows", [])
            if r["judges"] == "finetuned" and r["scoring"] == "matrix" and r["self_judgement"]
        ]
        if not rows:
            continue
        r = rows[0]
        graded = {s: r[f"spearman_fid_{s}"] for s in INDEPENDENT if r.get(f"spearman_fid_{s}") is not None}
        if graded:  # images: graded where nothing steers
            where = " and ".join(SPACE_NAMES[s] for s in graded)
            goal = {
                "name": name,
                "target": f"Spearman(S(G), -FID) >= 0.9 on {where} features (default judges, matrix)",
                "measured": ", ".join(f"{SPACE_NAMES[s]} {v:+.3f}" for s, v in graded.items()),
                "met": min(graded.values()) >= 0.9,
                "note": f"against FID on classifier features: {r['spearman_fid']:+.3f}",
            }
        else:
            v, raw = r["spearman_fid"], r.get("spearman_fid_raw")
            where = " on mode-kernel features" if key == "toy" else ""
            goal = {
                "name": name,
                "target": f"Spearman(S(G), -FID{where}) >= 0.9 (default judges, matrix)",
                "measured": round(v, 3),
                "met": v >= 0.9,
            }
            if raw is not None:
                goal["note"] = f"against FID on the raw points: {raw:+.3f}"
        agree = result[key].get("spaces_agree")
        if agree:
            goal["note"] += "; the spaces' FIDs agree at " + ", ".join(
                f"{k} {v:+.3f}" for k, v in agree.items()
            )
        out.append(goal)
    if result.get("holdout", {}).get("rows"):
        out.append(holdout_goal(result["holdout"]["rows"]))
    if "best" in result:
        ens = result["best"]["ensembles"]
        steered = sum(e["fids"][e["pick"]] <= e["fids"][e["fid_best"]] + e["noise"] for e in ens)
        hits = {
            s: sum(
                e[f"fids_{s}"][e["pick"]] <= e[f"fids_{s}"][e[f"fid_best_{s}"]] + e[f"noise_{s}"] for e in ens
            )
            for s in INDEPENDENT
            if all(f"fids_{s}" in e for e in ens)
        }
        out.append(
            {
                "name": "best_picks",
                "target": "best is the FID-best member (or within noise) in >= 4 of 5 seeds, on "
                + " and ".join(SPACE_NAMES[s] for s in hits)
                + " features (best ranks on the classifier's)",
                "measured": ", ".join(f"{SPACE_NAMES[s]} {h} of {len(ens)}" for s, h in hits.items()),
                "met": len(ens) >= 5 and bool(hits) and min(hits.values()) >= 4,
                "note": f"on classifier features, which steer it: {steered} of {len(ens)}",
            }
        )
    return out


def holdout_goal(rows: list[dict]) -> dict:
    """The rule for making the feature judge the default, fixed (2026-12-07) after the fashion and
    losses populations suggested it and before the held-out population was trained: on that
    population, it must rank at least as close to FID as the fine-tuned judges on every independent
    space (matrix scoring, self-judgement on, as the defaults)."""

    def spearman(kind: str) -> dict[str, float]:
        r = next(r for r in rows if r["judges"] == kind and r["scoring"] == "matrix" and r["self_judgement"])
        return {s: r[f"spearman_fid_{s}"] for s in INDEPENDENT}

    feat, fine = spearman("features"), spearman("finetuned")
    return {
        "name": "holdout_feature_judge",
        "target": "on the held-out population the feature judge's Spearman(S(G), -FID) >= the default "
        "(fine-tuned) judges' on EfficientNet-Lite0 and on Inception; if so, it becomes the default",
        "measured": "; ".join(
            f"{SPACE_NAMES[s]}: features {feat[s]:+.3f}, fine-tuned {fine[s]:+.3f}" for s in INDEPENDENT
        ),
        "met": all(feat[s] >= fine[s] for s in INDEPENDENT),
    }


if __name__ == "__main__":
    try:
        sys.exit(main())
    except GensembleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
