"""Equal compute, settled by learning curves (issue #33): one model against ensembles of three
(independent, partition, mgan) and Lucic et al.'s best of three restarts, at several budgets of
total generator updates, graded on spaces nothing in the rows steered by.

    nohup python benchmarks/curves.py --dataset fashion-mnist &   # resumable: run it again to go on
    python benchmarks/curves.py --render                          # docs/CURVES.md from the JSON

A budget T is T generator updates in all: the single model trains T steps; an ensemble's three
members train T/3 each (MGAN's round updates all three generators, so it too makes T). Each run
trains once, up to the largest budget, and its folder is copied aside at every smaller budget on the
way (resuming a run is exact), so the curve's points are the same runs at different lengths. Runs
live in --work (default runs/curves), rows in docs/results/curves.json; both are picked up again.

Rows per budget (seed s: member seeds 100·s + i, as in benchmarks/quality.py):
  single                 one model, T steps, sampled plainly
  best of 3 restarts     the independent trio's member that `best` picks on the calibration half
                         (Lucic et al. 2018's fair baseline for K runs)
  independent + uniform  the trio mixed uniformly;  independent + auto  auto's choice
  partition + shares     specialists on 3 k-means clusters, mixed by the clusters' shares;
  partition + auto       auto's choice among mixtures (shares included) and refinements
  mgan + uniform / auto  MGAN's three generators (shared discriminator and classifier head)

What steers: on Fashion-MNIST the domain classifier's features draw the partition and steer `best`
and `auto` (their held-out FID and the feature judge); the discriminators steer auto's critics.
Graded on EfficientNet-Lite0 (n = --n) and Inception (n = --n-inception), which nothing steers; the
classifier's FID is kept beside them, labelled steered. On stacked-MNIST the partition is drawn on
16×16 pixels (the classifier counts the modes, so it must not draw the clusters) and rows are graded
by modes hit of 1000 and KL to uniform.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality_jobs import graded_scorer, recipe, stacked_scorer  # noqa: E402

from gensemble.data import load_dataset  # noqa: E402
from gensemble.evaluation.evaluate import REFERENCE_SEED  # noqa: E402
from gensemble.fusion import FusionContext, build_fusion  # noqa: E402
from gensemble.progress import set_quiet  # noqa: E402
from gensemble.run import load_run, train_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results" / "curves.json"
DOC = ROOT / "docs" / "CURVES.md"
MEMBERS = 3
RECIPES = {"fashion-mnist": "fashion-recipe", "stacked-mnist": "stacked-recipe"}
BUDGETS = {"fashion-mnist": (3000, 9000, 18000), "stacked-mnist": (2400, 7200, 14400)}
# kind -> (members, scheme section, the rows: (method label, fusion name or None for the plain model))
KINDS: dict[str, tuple[int, dict[str, Any], tuple[tuple[str, str | None], ...]]] = {
    "single": (1, {"name": "independent"}, (("single", None),)),
    "independent": (
        MEMBERS,
        {"name": "independent"},
        (
            ("best of 3 restarts", "best"),
            ("independent + uniform", "uniform"),
            ("independent + auto", "auto"),
        ),
    ),
    "partition": (
        MEMBERS,
        {"name": "partition"},
        (("partition + shares", "shares"), ("partition + auto", "auto")),
    ),
    "mgan": (
        MEMBERS,
        {"name": "mgan", "beta": 0.1},
        (("mgan + uniform", "uniform"), ("mgan + auto", "auto")),
    ),
}


def load_rows(path: Path = RESULTS) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["rows"] if path.exists() else []


def save_rows(rows: list[dict[str, Any]], path: Path = RESULTS) -> None:
    path.write_text(json.dumps({"label": "curves", "rows": rows}, indent=1) + "\n")


def kind_config(dataset: str, kind: str, seed: int, steps: int) -> dict[str, Any]:
    m, scheme, _ = KINDS[kind]
    cfg = recipe(RECIPES[dataset], m, seed, {"data.name": dataset, "train.steps": steps})
    if kind == "partition" and dataset == "stacked-mnist":
        scheme = {**scheme, "features": "pixels"}  # the classifier counts the modes: it must not split them
    cfg["scheme"] = scheme
    cfg["train"]["checkpoint_every"] = 500
    return cfg


def train_to(dataset: str, kind: str, seed: int, budget: int, work: Path) -> tuple[Path, float]:
    """The run of `kind` at `budget` total updates (its folder copied aside there), and the seconds
    of training it took from scratch; trains on from the largest smaller budget already kept."""
    m = KINDS[kind][0]
    steps = budget // m
    at = work / f"{dataset}-{kind}-s{seed}-T{budget}"
    clock = at / "train_seconds.json"
    if clock.exists():
        return at, json.loads(clock.read_text())["seconds"]
    live = work / f"{dataset}-{kind}-s{seed}-live"
    spent = json.loads((live / "train_seconds.json").read_text())["seconds"] if live.exists() else 0.0
    start = time.perf_counter()
    cfg = kind_config(dataset, kind, seed, steps)
    if (live / "latest.json").exists():
        train_run(cfg, live, resume=True)
    else:
        shutil.rmtree(live, ignore_errors=True)
        train_run(cfg, live)
    spent += time.perf_counter() - start
    (live / "train_seconds.json").write_text(json.dumps({"seconds": spent}))
    shutil.rmtree(at, ignore_errors=True)
    shutil.copytree(live, at)
    return at, spent


def score_rows(run: Path, kind: str, n: int, seed: int, score: Any) -> list[dict[str, Any]]:
    ens = load_run(run)
    heldout = load_dataset(ens.cfg.data, "test")
    ctx = FusionContext.build(ens, heldout, REFERENCE_SEED)
    out = []
    for label, fusion in KINDS[kind][2]:
        start = time.perf_counter()
        gen = torch.Generator().manual_seed(seed)
        if fusion is None:
            x, extra = ens.members[0].model.sample(n, gen).cpu(), {}
        else:
            sampler = build_fusion(ens, fusion, heldout, {}, ctx=ctx)
            samples = sampler.sample(n, gen)
            x, extra = samples.x.cpu(), {"shares": {k: round(v, 3) for k, v in samples.shares().items()}}
            if getattr(sampler, "choice", None):
                extra["choice"] = sampler.choice.get("chosen")
        out.append({"method": label, **extra, **score(x), "score_s": round(time.perf_counter() - start, 1)})
    return out


def row_samples(run: Path, kind: str, method: str, n: int, seed: int) -> torch.Tensor:
    """The first n samples the row `method` scored (the same seed; a fusion rebuilt as it was)."""
    ens = load_run(run)
    fusion = dict(KINDS[kind][2])[method]
    gen = torch.Generator().manual_seed(seed)
    if fusion is None:
        return ens.members[0].model.sample(n, gen).cpu()
    heldout = load_dataset(ens.cfg.data, "test")
    return build_fusion(ens, fusion, heldout, {}).sample(n, gen).x.cpu()


def save_grids(dataset: str, budget: int, methods: list[str], seed: int, work: Path) -> Path:
    """docs/curves-DATASET-TBUDGET.png: 64 samples of each named row, side by side."""
    from gensemble.imageio import make_grid

    kinds = {label: kind for kind, (_, _, rows) in KINDS.items() for label, _ in rows}
    panels = []
    for method in methods:
        run = work / f"{dataset}-{kinds[method]}-s{seed}-T{budget}"
        x = row_samples(run, kinds[method], method, 64, seed)
        panels.append((method, make_grid(x, nrow=8)))
    return write_panels(panels, ROOT / "docs" / f"curves-{dataset}-T{budget}.png")


def write_panels(panels: list[tuple[str, Any]], path: Path) -> Path:
    """Grids side by side under their labels, as one PNG."""
    from PIL import Image, ImageDraw

    h, w = panels[0][1].shape[:2]
    sheet = Image.new("RGB", (len(panels) * (w + 10) + 10, h + 30), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, grid) in enumerate(panels):
        img = Image.fromarray(grid)
        sheet.paste(img, (10 + i * (w + 10), 25))
        draw.text((10 + i * (w + 10), 6), label, fill="black")
    sheet.save(path)
    return path


def resample(dataset: str, budget: int, kinds: list[str], seeds: list[int], seed: int, work: Path) -> Path:
    """The sampling noise of one budget's stacked-MNIST rows: every row of these kinds re-scored on
    10,000 samples at other sampling seeds (the runs, the choices and the critics unchanged: only the
    draws differ), written beside curves.json."""
    out = RESULTS.with_name("curves_resampled.json")
    rows = json.loads(out.read_text())["rows"] if out.exists() else []
    for kind in kinds:
        run = work / f"{dataset}-{kind}-s{seed}-T{budget}"
        for s in seeds:
            key = {"dataset": dataset, "budget": budget, "kind": kind, "seed": seed, "sampling_seed": s}
            if any(all(r.get(k) == v for k, v in key.items()) for r in rows):
                continue  # scored already: the same run and draw give the same rows, counted once
            for r in score_rows(run, kind, 10_000, s, stacked_scorer()):
                rows.append(
                    {"dataset": dataset, "budget": budget, "kind": kind, "seed": seed, "sampling_seed": s} | r
                )
                print(json.dumps(rows[-1]), flush=True)
                out.write_text(json.dumps({"label": "curves-resampled", "rows": rows}, indent=1) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion-mnist", choices=sorted(RECIPES))
    ap.add_argument("--budgets", default=None, help="comma-separated total generator updates")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--n", type=int, default=2000, help="samples per row on the first spaces")
    ap.add_argument("--n-inception", type=int, default=1000)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "curves")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--grids", type=int, default=0, help="only save the sample grids of this budget's rows")
    ap.add_argument("--methods", default="single,best of 3 restarts,independent + auto,partition + shares")
    ap.add_argument("--render", action="store_true", help="only write docs/CURVES.md from the JSON")
    ap.add_argument(
        "--resample", default="", help="comma-separated sampling seeds: re-score --budgets' rows of --kinds"
    )
    args = ap.parse_args()
    if args.render:
        from curves_report import goals, render, replicate, summary

        from _common import CURVES_BEGIN, CURVES_END, write_marked_table

        rows = load_rows(args.results)
        again = args.results.with_name("curves_resampled.json")
        resampled = json.loads(again.read_text())["rows"] if again.exists() else []
        payload = {"label": "curves", "rows": rows, "goals": goals(rows, resampled)}
        doc, marked = render(rows), summary(rows)
        # A second training seed, where one was run (--seed 2 --results .../curves_seed2.json).
        seed2 = load_rows(args.results.with_name("curves_seed2.json"))
        if seed2:
            payload["seed2_goals"] = goals([r for r in seed2 if r["dataset"] == "fashion-mnist"])
            doc += f"\n## fashion-mnist, training seed 2\n\n{replicate(seed2, 2)}\n"
            marked += "\n\n" + replicate(seed2, 2)
        args.results.write_text(json.dumps(payload, indent=1) + "\n")
        DOC.write_text(doc)
        write_marked_table(ROOT / "docs" / "RESULTS.md", marked, CURVES_BEGIN, CURVES_END)
        return
    set_quiet(True)
    if args.grids:
        print(save_grids(args.dataset, args.grids, args.methods.split(","), args.seed, args.work))
        return
    if args.threads:  # (two jobs on two cores: one thread each beats two threads that fight)
        torch.set_num_threads(args.threads)
    if args.resample:
        seeds = [int(x) for x in args.resample.split(",")]
        for budget in [int(b) for b in args.budgets.split(",")]:
            resample(args.dataset, budget, args.kinds.split(","), seeds, args.seed, args.work)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    budgets = [int(b) for b in args.budgets.split(",")] if args.budgets else BUDGETS[args.dataset]
    fashion = args.dataset == "fashion-mnist"
    score = (
        graded_scorer(args.dataset, args.n, ("effnet-lite0",), {"inception": args.n_inception})
        if fashion
        else stacked_scorer()
    )
    rows = load_rows(args.results)
    for budget in budgets:  # the cheapest points of every curve first
        for kind in args.kinds.split(","):
            key = {"dataset": args.dataset, "budget": budget, "kind": kind, "seed": args.seed}
            if any(all(r.get(k) == v for k, v in key.items()) for r in rows):
                continue
            run, seconds = train_to(args.dataset, kind, args.seed, budget, args.work)
            new = [
                key | {"train_s": round(seconds, 1)} | r
                for r in score_rows(run, kind, args.n if fashion else 10_000, args.seed, score)
            ]
            rows = load_rows(args.results) + new  # (another process may have added rows meanwhile)
            save_rows(rows, args.results)
            for r in new:
                print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
