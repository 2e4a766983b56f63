"""Every scheme's example config on grid25: wall time, and the mode coverage of its default mixture.

    python benchmarks/ensemble_grid25.py [--schemes mixture boosting ...] [--out runs/bench-grid25]

Trains configs/grid25-<scheme>.yaml as shipped, then draws 10,000 samples from the run's default
mixture (its mixture weights) and counts, PacGAN-style, the modes that received at least one
high-quality sample (within 3σ of a centre) and the share of high-quality samples; per member, the
number of modes it alone covers. Writes docs/results/ensemble_grid25.json and the table in
docs/ensembles.md (between the grid25-table markers).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from gensemble.data.toy import toy_modes
from gensemble.metrics.modes import toy_mode_stats
from gensemble.progress import set_quiet
from gensemble.run import load_run, train_run
from gensemble.run.sample import sample_run

ROOT = Path(__file__).resolve().parents[1]
SCHEMES = ["independent", "multi-discriminator", "mixture", "boosting", "swap"]
MARK_BEGIN, MARK_END = "<!-- grid25-table:begin -->", "<!-- grid25-table:end -->"


def evaluate(run: Path, n: int = 10_000) -> dict:
    centres, sigma = toy_modes("grid25")
    mixture = toy_mode_stats(sample_run(run, n, seed=0).x, centres, sigma)
    gen = torch.Generator().manual_seed(1)
    members = {
        name: toy_mode_stats(model.sample(n // 4, gen), centres, sigma)["modes_covered"]
        for name, model in load_run(run).generators().items()
    }
    return {
        "modes_covered": mixture["modes_covered"],
        "high_quality_frac": round(mixture["high_quality_frac"], 3),
        "modes_per_member": members,
    }


def markdown(results: dict) -> str:
    lines = [
        "| scheme | members | train time (s) | modes covered (of 25) | high-quality samples | modes per member |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for scheme, r in results.items():
        per_member = ", ".join(str(v) for v in r["modes_per_member"].values())
        lines.append(
            f"| {scheme} | {len(r['modes_per_member'])} | {r['seconds']:.0f} | {r['modes_covered']} | "
            f"{r['high_quality_frac']:.1%} | {per_member} |"
        )
    return "\n".join(lines)


def write_table(results: dict, md_path: Path) -> None:
    """Replace the table between the markers in docs/ensembles.md."""
    text = md_path.read_text()
    head, rest = text.split(MARK_BEGIN, 1)
    md_path.write_text(f"{head}{MARK_BEGIN}\n{markdown(results)}\n{MARK_END}{rest.split(MARK_END, 1)[1]}")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--schemes", nargs="+", default=SCHEMES, choices=SCHEMES)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-grid25")
    p.add_argument("--json", type=Path, default=ROOT / "docs" / "results" / "ensemble_grid25.json")
    p.add_argument("--markdown", type=Path, default=ROOT / "docs" / "ensembles.md")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # a shared 2-core machine; also makes timings comparable
    set_quiet(True)
    results = {}
    for scheme in args.schemes:
        run = args.out / scheme
        shutil.rmtree(run, ignore_errors=True)
        start = time.perf_counter()
        train_run(ROOT / "configs" / f"grid25-{scheme}.yaml", run)
        seconds = time.perf_counter() - start
        results[scheme] = {"seconds": round(seconds, 1), **evaluate(run)}
        print(scheme, json.dumps(results[scheme]), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"threads": 1, "torch": torch.__version__, "schemes": results}, indent=2) + "\n"
    )
    return results


if __name__ == "__main__":
    main()
