"""Single models against ensembles (issue #12): mode coverage on 2-D mixtures and stacked MNIST, image
quality on Fashion-MNIST, on two compute axes (equal generator updates, equal wall-clock here).

    python benchmarks/quality.py [--quick] [--sections toy,stacked,fashion] [--work DIR] [--out docs]

The full run writes docs/RESULTS.md and docs/results/quality.json; --quick (CI's smoke run, tiny
sizes, not a result) writes docs/RESULTS-quick.md and docs/results/quality-quick.json instead.
Every model is trained from a shipped recipe (src/gensemble/configs/*-recipe.yaml); ensembles use
member seeds 100·s + i for benchmark seed s ≥ 1, so no benchmark seed repeats the seed-0 pilot runs
the recipes were chosen on (see docs/RESULTS.md, "How the recipes were chosen").
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality_jobs  # noqa: E402
from quality_jobs import (  # noqa: E402
    CRITIC_FUSIONS,
    ENSEMBLE_FUSIONS,
    FusionSpec,
    compare_job,
    graded_scorer,
    stacked_scorer,
    toy_scorer,
)
from quality_report import evaluate_goals, inception_rows, render_markdown, summarise  # noqa: E402

from gensemble.progress import set_quiet  # noqa: E402

from _common import write_results_doc

ROOT = Path(__file__).resolve().parents[1]


def toy_better(a: dict, b: dict) -> bool:
    return (a["modes_covered"], a["high_quality"]) > (b["modes_covered"], b["high_quality"])


def fid_better(a: dict, b: dict) -> bool:
    # On EfficientNet-Lite0 where measured: the best member, the baseline every fusion must beat, is
    # then the strongest on a space that nothing steered (the classifier steers auto and best).
    return a.get("effnet_fid", a["fid"]) < b.get("effnet_fid", b["fid"])


def modes_better(a: dict, b: dict) -> bool:
    return (a["modes_hit"], -a["kl"]) > (b["modes_hit"], -b["kl"])


# DCGAN members: no DDLS (100 Langevin steps through G and every D per sample is minutes per row
# here), and top-2 rather than top-3 selection, since the image ensembles have 3 members.
IMAGE_FUSIONS = (
    *ENSEMBLE_FUSIONS[:4],
    ENSEMBLE_FUSIONS[5],
    FusionSpec("top-2 + rejection", "rejection", {"top_k": 2}),
    CRITIC_FUSIONS[4],  # auto
)


@dataclass(frozen=True)
class Section:
    """One section's sizes: M members × `steps` each against one model of M × `steps`."""

    recipe: str
    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    single_seeds: tuple[int, ...]  # the seeds that also train the (M× longer) single model
    members: int
    steps: int
    n: int
    better: Any
    train: dict[str, Any] = field(default_factory=dict)
    single_snapshot_every: int = 1000
    ensemble_fusions: tuple[FusionSpec, ...] = ENSEMBLE_FUSIONS
    single_fusions: tuple[FusionSpec, ...] = CRITIC_FUSIONS


FULL = {
    "toy": Section(
        "toy-recipe",
        ("grid25", "ring8"),
        seeds=(1, 2, 3, 4, 5),
        single_seeds=(1, 2),
        members=5,
        steps=6000,
        n=2500,
        better=toy_better,
        train={"train.snapshot_every": 1000},
        single_snapshot_every=2000,
    ),
    "stacked": Section(
        "stacked-recipe",
        ("stacked-mnist",),
        seeds=(1,),
        single_seeds=(1,),
        members=3,
        steps=800,
        n=10000,
        better=modes_better,
        train={"train.snapshot_every": 250},
        single_snapshot_every=500,
        ensemble_fusions=IMAGE_FUSIONS[:3] + IMAGE_FUSIONS[4:],  # MH on 10,000 outputs is too slow here
        single_fusions=(CRITIC_FUSIONS[0], CRITIC_FUSIONS[3], CRITIC_FUSIONS[4]),
    ),
    "fashion": Section(
        "fashion-recipe",
        ("fashion-mnist",),
        seeds=(1,),
        single_seeds=(1,),
        members=3,
        steps=1000,
        n=2000,
        better=fid_better,
        train={"train.snapshot_every": 250},
        single_snapshot_every=500,
        ensemble_fusions=IMAGE_FUSIONS,
        single_fusions=(CRITIC_FUSIONS[0], CRITIC_FUSIONS[1], CRITIC_FUSIONS[3], CRITIC_FUSIONS[4]),
    ),
}
QUICK_FUSIONS = (ENSEMBLE_FUSIONS[0], ENSEMBLE_FUSIONS[2], FusionSpec("ddls", "ddls", {"steps": 2}))
QUICK = {
    "toy": replace(
        FULL["toy"],
        datasets=("grid25",),
        seeds=(1,),
        single_seeds=(1,),
        members=3,
        steps=60,
        n=500,
        train={"train.snapshot_every": 20},
        single_snapshot_every=60,
        ensemble_fusions=QUICK_FUSIONS,
        single_fusions=QUICK_FUSIONS[1:],
    ),
    "stacked": replace(
        FULL["stacked"],
        members=2,
        steps=10,
        n=500,
        train={"train.snapshot_every": 5, "data.limit": 2000},
        single_snapshot_every=10,
        ensemble_fusions=QUICK_FUSIONS[:2],
        single_fusions=QUICK_FUSIONS[1:2],
    ),
    "fashion": replace(
        FULL["fashion"],
        members=2,
        steps=10,
        n=200,
        train={"train.snapshot_every": 5},
        single_snapshot_every=10,
        ensemble_fusions=QUICK_FUSIONS[:2],
        single_fusions=QUICK_FUSIONS[1:2],
    ),
}
INCEPTION_N = {"full": 2000, "quick": 20}


def environment() -> dict[str, Any]:
    from importlib.metadata import version

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = None
    return {
        "gensemble": version("gensemble"),
        "git_commit": commit,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.platform(),
        "threads": torch.get_num_threads(),
    }


def trained_seconds(path: Path) -> dict[str, float]:
    """Run folder name -> training seconds, from a saved result (what --reuse-trained reuses)."""
    out = {}
    for r in json.loads(path.read_text())["records"] if path.exists() else []:
        if "train_s" not in r or r.get("method") == "single (equal wall-clock)":
            continue
        kind = "single" if r["method"].startswith("single") else "ensemble"
        out[f"{r['dataset']}-s{r['seed']}-{kind}"] = float(r["train_s"])
    return out


def run_section(name: str, s: Section, work: Path, log: Any) -> list[dict[str, Any]]:
    scorers = {"toy": None, "stacked": stacked_scorer, "fashion": None}
    records = []
    for dataset in s.datasets:
        if name == "toy":
            score = toy_scorer(dataset)
        elif name == "stacked":
            score = scorers["stacked"]()
        else:
            score = graded_scorer(dataset, s.n)
        for seed in s.seeds:
            start = time.perf_counter()
            rows = compare_job(name, dataset, s.recipe, seed, s, work / name, score, seed in s.single_seeds)
            records += rows
            log(f"{name} {dataset} seed {seed}: {len(rows)} rows in {time.perf_counter() - start:.0f} s")
    return records


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CI's smoke run: tiny sizes, writes *-quick files")
    ap.add_argument(
        "--sections", default="toy,stacked,fashion", help="comma-separated: toy, stacked, fashion"
    )
    ap.add_argument("--render", action="store_true", help="only re-render RESULTS.md from the saved JSON")
    ap.add_argument("--resume", action="store_true", help="reuse the sections already finished in --work")
    ap.add_argument(
        "--inception",
        choices=("all", "free", "none"),
        default="all",
        help="Inception rows: all, only auto and the best member (the free-ensemble goal), or none",
    )
    ap.add_argument(
        "--merge",
        action="store_true",
        help="replace only these sections in the saved results (OUT/results/quality.json) and re-render",
    )
    ap.add_argument(
        "--reuse-trained",
        action="store_true",
        help="score the runs already trained in --work again (training seconds from the saved results)",
    )
    ap.add_argument(
        "--seeds",
        default=None,
        help="comma-separated training seeds for the chosen sections, in place of the preset's "
        "(each also trains the single model); e.g. how far the free ensemble's margin moves with them",
    )
    ap.add_argument("--work", default=None, help="folder for the trained runs (default runs/bench-quality)")
    ap.add_argument(
        "--out", default=str(ROOT / "docs"), help="docs folder to write RESULTS.md and results/ into"
    )
    args = ap.parse_args(argv)
    label = "quick" if args.quick else "full"
    suffix = "-quick" if args.quick else ""
    out = Path(args.out)
    if args.render:
        # Re-render RESULTS.md (and the goals) from the saved JSON, without training anything.
        result = json.loads((out / "results" / f"quality{suffix}.json").read_text())
        result["summary"] = {name: summarise(result["records"], name) for name in result["summary"]}
        result["goals"] = evaluate_goals(result["summary"])
        (out / "results" / f"quality{suffix}.json").write_text(
            json.dumps(result, indent=1, default=str) + "\n"
        )
        write_results_doc(out / f"RESULTS{suffix}.md", render_markdown(result))
        return 0
    preset = QUICK if args.quick else FULL
    if args.seeds:
        seeds = tuple(int(x) for x in args.seeds.split(","))
        preset = {k: replace(v, seeds=seeds, single_seeds=seeds) for k, v in preset.items()}
    sections = [x.strip() for x in args.sections.split(",") if x.strip()]
    work = Path(args.work or ROOT / "runs" / f"bench-quality-{label}")
    set_quiet(True)
    start = time.perf_counter()
    if args.reuse_trained:
        quality_jobs.REUSED.update(trained_seconds(out / "results" / f"quality{suffix}.json"))

    def log(msg: str) -> None:
        print(f"[quality {time.perf_counter() - start:6.0f}s] {msg}", flush=True)

    records: list[dict[str, Any]] = []
    saved = work / "records.json"
    done = json.loads(saved.read_text()) if args.resume and saved.exists() else {}
    for name in sections:
        if name in done:
            log(f"{name}: {len(done[name])} records from {saved} (--resume)")
        else:
            done[name] = run_section(name, preset[name], work / name, log)
            saved.write_text(json.dumps(done, default=str))  # a crash later loses no finished section
        records += done[name]
    if "fashion" in sections and args.inception != "none":
        records += inception_rows(
            records, work / "fashion" / "fashion", INCEPTION_N[label], log, only_free=args.inception == "free"
        )
    date, minutes = (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        round((time.perf_counter() - start) / 60, 1),
    )
    previous = out / "results" / f"quality{suffix}.json"
    if args.merge and previous.exists():
        # The other sections' records come from the earlier run, and the header says which is which.
        old = json.loads(previous.read_text())
        kept = [
            r
            for r in old["records"]
            if r["section"] not in sections
            and not ("fashion" in sections and r["section"] == "fashion-inception")
        ]
        records = kept + records
        sections = [*sections, *[k for k in old["summary"] if k not in sections]]
        date = f"{date} (this part: {', '.join(args.sections.split(','))}; the rest from {old['date']})"
    summary = {name: summarise(records, name) for name in sections}
    result = {
        "label": label,
        "date": date,
        "minutes": minutes,
        "environment": environment(),
        "settings": {
            k: {**preset[k].__dict__, "better": preset[k].better.__name__} for k in sections if k in preset
        },
        "goals": evaluate_goals(summary),
        "summary": summary,
        "records": records,
    }
    (out / "results").mkdir(parents=True, exist_ok=True)
    (out / "results" / f"quality{suffix}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    write_results_doc(out / f"RESULTS{suffix}.md", render_markdown(result))
    for g in result["goals"]:
        print(f"{g['name']:<26} target {g['target']:<40} measured {g['measured']:<50} met: {g['met']}")
    log(f"done: {out / f'RESULTS{suffix}.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
