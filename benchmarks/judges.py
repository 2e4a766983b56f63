"""Are the judges valid? Rank a population of generators of clearly different quality with every kind
of judge and every scoring, and compare the ranking with FID and KID on the evaluation half.

    python benchmarks/judges.py            # Fashion-MNIST and grid25 populations, then `best` over 5 seeds
    python benchmarks/judges.py --only toy # one section (fashion, toy, best, losses)

Populations (benchmarks/configs/judges-*.yaml) are trained once into runs/bench-judges/ and reused.
Each holds the run's members plus the snapshots of its first member, so it has a collapsed or
barely trained GAN, a narrow one, well-trained ones and one run's snapshots (Fashion also a VAE).
Judges are fitted on the first part of the calibration half and calibrated on the second; FID and
KID are measured on the evaluation half, which no judge sees. Writes docs/results/judges.json (with
the `goals` list) and the "Judges" section of docs/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
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
    "fid_raw",
    "kid_raw",
    "precision",
    "recall",
    "modes_covered",
    "high_quality",
)
# Images are graded on EfficientNet-Lite0 too: nothing in gensemble steers by it, while the domain
# classifier steers the feature judge and `best`'s held-out ranking (docs/evaluation.md).
INDEPENDENT = "effnet-lite0"
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


def quality(ens, heldout, gens: dict, n: int = N_EVAL, seed: int = 0) -> dict[str, dict[str, float]]:
    """FID and KID (and modes on toys) of every generator on the evaluation half. On 2-D toys FID and
    KID are taken on the mode-kernel features (metrics.modes.mode_kernel_features): on the raw points
    they compare only low moments and rank a blob between the modes as good. The raw-point figures
    are kept beside them (fid_raw, kid_raw)."""
    dataset, is_image = ens.cfg.data.name, heldout.is_image
    metrics = ("fid", "kid", "prdc") if is_image else ("fid", "kid", "modes")
    featurizer, metrics, _ = resolve_features(None, dataset, is_image, metrics, True, "cpu")
    _, eval_half = heldout_halves(heldout.x, 0)
    toy = None if is_image else (heldout.modes, float(heldout.sigma))
    ev = Evaluator.prepare(featurizer, eval_half[:n], metrics, 0, toy=toy)
    independent = None
    if is_image:
        fz, m, _ = resolve_features(INDEPENDENT, dataset, True, ("fid", "kid"), True, "cpu")
        independent = Evaluator.prepare(fz, eval_half[:n], m, 0)
    out = {}
    for i, (name, g) in enumerate(gens.items()):
        x = g.sample(n, torch.Generator().manual_seed(seed + 900 + i)).float().cpu()
        row = {k: float(v) for k, v in ev.score(x).items() if k in KEPT}
        if independent is not None:  # the same samples
            row |= {f"{k}_effnet": float(v) for k, v in independent.score(x).items() if k in ("fid", "kid")}
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
    fids = [q[g]["fid"] for g in gens]
    kids = [q[g]["kid"] for g in gens]
    # On 2-D toys: FID on the raw points (means and covariances only) and the toys' own quality
    # measure, the share of samples within 3σ of a mode, are reported beside FID on mode features.
    raws = [q[g].get("fid_raw") for g in gens]
    hqs = [q[g].get("high_quality") for g in gens]
    effs = [q[g].get("fid_effnet") for g in gens]
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
                        "spearman_fid": rank_corr(t.generator_scores, fids),
                        "spearman_kid": rank_corr(t.generator_scores, kids),
                        "spearman_fid_effnet": None if None in effs else rank_corr(t.generator_scores, effs),
                        "spearman_fid_raw": None if None in raws else rank_corr(t.generator_scores, raws),
                        "spearman_hq": None if None in hqs else -rank_corr(t.generator_scores, hqs),
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
            "spearman_fid": rank_corr(-np.array([held[g] for g in gens]), fids),
            "spearman_kid": rank_corr(-np.array([held[g] for g in gens]), kids),
            "spearman_fid_effnet": None
            if None in effs
            else rank_corr(-np.array([held[g] for g in gens]), effs),
            "spearman_fid_raw": None if None in raws else rank_corr(-np.array([held[g] for g in gens]), raws),
            "spearman_hq": None if None in hqs else -rank_corr(-np.array([held[g] for g in gens]), hqs),
            "best_pick": ranked[0],
            "pick_is_fid_best": ranked[0] == fid_best,
            "fit_s": round(time.perf_counter() - start, 1),
            "scores": {g: round(held[g], 4) for g in gens},
        }
    )
    print(f"  heldout-fid spearman(-FID) {rows[-1]['spearman_fid']:+.3f}  best: {ranked[0]}", flush=True)
    return {"generators": q, "fid_best": fid_best, "rows": rows}


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


def best_section(config: str, seeds: int, kind: str, save: Callable[[dict], None]) -> dict:
    """`best` (the top of the default tournament) over ensembles that differ only in seed. The FID
    noise is the spread of one generator's FID over 3 sampling seeds (n = N_EVAL), twice its std."""
    out = []
    for s in range(seeds):
        ens, heldout, _ = population(seeded(ROOT / "benchmarks" / "configs" / config, s), f"best-seed{s}")
        gens = ens.generators()
        q = quality(ens, heldout, gens)
        best = min(q, key=lambda g: q[g]["fid"])
        best_eff = min(q, key=lambda g: q[g]["fid_effnet"])
        again = [quality(ens, heldout, {best: gens[best]}, seed=1000 * k)[best] for k in (1, 2)]
        spread = [q[best]["fid"]] + [r["fid"] for r in again]
        again_eff = [
            quality(ens, heldout, {best_eff: gens[best_eff]}, seed=1000 * k)[best_eff] for k in (1, 2)
        ]
        spread_eff = [q[best_eff]["fid_effnet"]] + [r["fid_effnet"] for r in again_eff]
        cal, ev = heldout_halves(heldout.x, 0)
        cfg = JUDGES[kind]
        nets = fit_judges(ens.discriminators(), gens, judge_split(cal)[0], cfg, ens.cfg.data.name, 0)
        owners = tuple(owner_of(d, [m.name for m in ens.members]) for d in nets)
        t = table_from_judgements(judge_population(gens, nets, owners, (cal, ev), N_JUDGE, "platt", 0, cfg))
        by_tournament = t.generator_ranking()[0]
        pick = build_fusion(ens, "best", heldout).names[0]  # the fusion as users get it
        noise = 2.0 * float(np.std(spread))
        out.append(
            {
                "seed": s,
                "pick": pick,
                "tournament_pick": by_tournament,
                "fid_best": best,
                "fids": {g: q[g]["fid"] for g in q},
                "noise": noise,
                "fid_best_effnet": best_eff,
                "fids_effnet": {g: q[g]["fid_effnet"] for g in q},
                "noise_effnet": 2.0 * float(np.std(spread_eff)),
            }
        )
        print(
            f"  seed {s}: best picks {pick} (FID {q[pick]['fid']:.2f}); the tournament's top {by_tournament}; "
            f"FID-best {best} ({q[best]['fid']:.2f}); noise ±{noise:.2f}",
            flush=True,
        )
        save({"judges": kind, "ensembles": out})  # each finished seed is kept
    return {"judges": kind, "ensembles": out}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=("fashion", "toy", "best", "losses"), action="append")
    ap.add_argument("--seeds", type=int, default=5)
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
    result = json.loads(OUT.read_text()) if OUT.exists() else {}
    started = time.perf_counter()
    for name, config in (("fashion", "judges-fashion.yaml"), ("toy", "judges-grid25.yaml")):
        if name in sections:
            print(f"{name}: population and FID", flush=True)
            ens, heldout, gens = population(config, name)
            q = quality(ens, heldout, gens)
            for g, v in q.items():
                print(f"  {g:14s} " + "  ".join(f"{k} {x:.4g}" for k, x in v.items()), flush=True)
            result[name] = judge_section(ens, heldout, gens, q)
            OUT.write_text(json.dumps(result, indent=1) + "\n")
    if "losses" in sections:
        print("losses: the widened population and FID", flush=True)
        ens, heldout, gens = widened_population()
        q = quality(ens, heldout, gens)
        for g, v in q.items():
            print(f"  {g:14s} " + "  ".join(f"{k} {x:.4g}" for k, x in v.items()), flush=True)
        result["losses"] = judge_section(ens, heldout, gens, q)
        OUT.write_text(json.dumps(result, indent=1) + "\n")
    if "best" in sections:
        print("best over seeds (the demo ensemble at 600 steps)", flush=True)

        def save(best: dict) -> None:
            result["best"] = best
            OUT.write_text(json.dumps(result, indent=1) + "\n")

        result["best"] = best_section("demo-600.yaml", args.seeds, "finetuned", save)
    result["goals"] = goals(result)
    result["seconds"] = round(time.perf_counter() - started, 1)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    write_marked_table(
        ROOT / "docs" / "RESULTS.md", render(result), "<!-- judges:begin -->", "<!-- judges:end -->"
    )
    print(json.dumps(result["goals"], indent=1))
    return 0


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
            "| judges | self-judgement | scoring | Spearman(S, −FID) | Spearman(S, −FID EfficientNet-Lite0) | Spearman(S, −KID) | Spearman(S, −FID raw) | Spearman(S, HQ) | `best` picks | fit s |",
        ]
        lines += ["|---|---|---|---|---|---|---|---|---|---|"]
        for r in sec["rows"]:
            hq, raw, eff = (
                "–" if r.get(k) is None else f"{r[k]:+.3f}"
                for k in ("spearman_hq", "spearman_fid_raw", "spearman_fid_effnet")
            )
            lines.append(
                f"| {r['judges']} | {'on' if r['self_judgement'] else 'off'} | {r['scoring']} | {r['spearman_fid']:+.3f} | {eff} | "
                f"{r['spearman_kid']:+.3f} | {raw} | {hq} | {r['best_pick']}{' (FID-best)' if r['pick_is_fid_best'] else ''} | {r['fit_s']} |"
            )
        lines.append("")
    if "best" in result:
        lines += [
            "**`best` over ensembles that differ only in seed** (the demo's 3 DCGANs + VAE at 600 steps; "
            "`best` ranks by held-out FID, the tournament column is the default judges' top S(G)):",
            "",
            "| seed | `best` picks (FID) | the tournament's top (FID) | FID-best (FID) | noise (2σ, 3 sampling seeds) "
            "| on EfficientNet-Lite0: pick's FID, FID-best (FID), noise |",
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


def independent_cell(e: dict) -> str:
    if "fids_effnet" not in e:
        return "–"
    f = e["fids_effnet"]
    return f"{f[e['pick']]:.1f}, {e['fid_best_effnet']} ({f[e['fid_best_effnet']]:.1f}), ±{e['noise_effnet']:.1f}"


def note(goal: dict) -> str:
    return f" ({goal['note']})" if "note" in goal else ""


def goals(result: dict) -> list[dict]:
    """The issue's three goals, from whatever sections have been measured."""
    out = []
    for key, name in (("fashion", "judges_fashion"), ("toy", "judges_toy"), ("losses", "judges_all_losses")):
        rows = [
            r
            for r in result.get(key, {}).get("rows", [])
            if r["judges"] == "finetuned" and r["scoring"] == "matrix" and r["self_judgement"]
        ]
        if rows:
            v, raw = rows[0]["spearman_fid"], rows[0].get("spearman_fid_raw")
            where = " on mode-kernel features" if key == "toy" else ""
            eff = rows[0].get("spearman_fid_effnet")
            if eff is not None:  # images: graded where nothing steers
                v, where = eff, " on EfficientNet-Lite0 features"
            goal = {
                "name": name,
                "target": f"Spearman(S(G), -FID{where}) >= 0.9 (default judges, matrix)",
                "measured": round(v, 3),
                "met": v >= 0.9,
            }
            if raw is not None:
                goal["note"] = f"against FID on the raw points: {raw:+.3f}"
            if eff is not None:
                goal["note"] = f"against FID on classifier features: {rows[0]['spearman_fid']:+.3f}"
            out.append(goal)
    if "best" in result:
        ens = result["best"]["ensembles"]
        steered = sum(e["fids"][e["pick"]] <= e["fids"][e["fid_best"]] + e["noise"] for e in ens)
        graded = [e for e in ens if "fids_effnet" in e]
        hits = sum(
            e["fids_effnet"][e["pick"]] <= e["fids_effnet"][e["fid_best_effnet"]] + e["noise_effnet"]
            for e in graded
        )
        out.append(
            {
                "name": "best_picks",
                "target": "best is the FID-best member (or within noise) in >= 4 of 5 seeds, on "
                "EfficientNet-Lite0 features (best ranks on the classifier's)",
                "measured": f"{hits} of {len(graded)}",
                "met": len(graded) >= 5 and hits >= 4,
                "note": f"on classifier features, which steer it: {steered} of {len(ens)}",
            }
        )
    return out


if __name__ == "__main__":
    try:
        sys.exit(main())
    except GensembleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
