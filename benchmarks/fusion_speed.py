"""Acceptance rate and sampling throughput of every fusion method, on grid25 and on digit images.

    python benchmarks/fusion_speed.py [--steps 3000] [--n 5000] [--run RUN] [--image-run RUN]

Trains (or reuses, with --run / --image-run) two small ensembles: three mlp-gans on grid25 (hidden
128, lr 1e-3, EMA 0.999 and snapshots kept), and three mlp-gans on scikit-learn's 8×8 digits. For
each fusion method it times building the sampler (fitting calibrators, weights, meta-critics, DRS's
burn-in) and drawing --n samples (the median of --repeats draws), and reports the acceptance rate
where proposals are rejected (over all draws). On grid25 it also reports the share of high-quality
samples (within 3σ of a mode) and the modes covered (gensemble.metrics.toy_mode_stats), of the
last draw. One torch thread: these models are too small for intra-op threads to pay, and the
timings stay steadier on a shared machine. Trained runs are kept (their folder is printed) so that
a rerun can pass them back with --run / --image-run.

Writes docs/results/fusion_speed.json and the tables in docs/fusion.md (between the markers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
import yaml

from gensemble.data import load_dataset
from gensemble.fusion import build_fusion
from gensemble.progress import set_quiet
from gensemble.run import load_run, train_run

from _common import write_marked_table

ROOT = Path(__file__).resolve().parents[1]
MARK_BEGIN, MARK_END = "<!-- fusion-speed:begin -->", "<!-- fusion-speed:end -->"

# (label, method, params): the defaults, plus the variants docs/fusion.md discusses.
METHODS = [
    ("uniform", "uniform", {}),
    ("weighted", "weighted", {}),
    ("learned-weights (MMD)", "learned-weights", {}),
    ("learned-weights (FID, raw)", "learned-weights", {"divergence": "fid"}),
    ("best", "best", {}),
    ("rejection", "rejection", {}),
    ("rejection, fine-tuned critics", "rejection", {"finetune_steps": 250, "finetune_lr": 3e-3}),
    ("vote (majority)", "vote", {}),
    ("vote (unanimous)", "vote", {"quorum": 3}),
    ("stacked (logistic)", "stacked", {}),
    ("stacked (forest)", "stacked", {"meta": "forest"}),
    ("mh (K=40)", "mh", {}),
    ("average (EMA of m0)", "average", {"members": ["m0"], "source": "ema"}),
    ("average (soup of m0)", "average", {"members": ["m0"], "source": "snapshots"}),
    ("average (soup of m0, last 2)", "average", {"members": ["m0"], "source": "snapshots", "last": 2}),
]


def ensemble_config(data: str, steps: int, model: dict) -> dict:
    return {
        "data": {"name": data},
        "members": [{"model": model, "optim": {"lr": 1e-3}, "seed": s} for s in range(3)],
        "train": {
            "steps": steps,
            "batch_size": 128,
            "log_every": 500,
            "checkpoint_every": steps,
            "ema_decay": 0.999,
            "snapshot_every": max(1, steps // 5),
        },
    }


def train(cfg: dict, work: Path, name: str) -> Path:
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    start = time.perf_counter()
    out = Path(train_run(path, work / name))
    print(f"trained {name} in {time.perf_counter() - start:.0f} s: {out}")
    return out


def bench(run: Path, n: int, toy: bool, repeats: int) -> list[dict]:
    ens = load_run(run)
    real = load_dataset(ens.cfg.data, "test")
    build_fusion(ens, "uniform", real).sample(100)  # warm-up: first-call imports are not a method's cost
    rows = []
    for label, method, params in METHODS:
        start = time.perf_counter()
        sampler = build_fusion(ens, method, real, params)
        built = time.perf_counter() - start
        times = []
        for r in range(repeats):
            start = time.perf_counter()
            out = sampler.sample(n, torch.Generator().manual_seed(r))
            times.append(time.perf_counter() - start)
        seconds = sorted(times)[len(times) // 2]  # the median: the machine is shared and noisy
        row = {
            "method": label,
            "fusion": method,
            "params": params,
            "build_s": round(built, 3),
            "sample_s": round(seconds, 3),
            "per_s": round(n / seconds, 1),
            "acceptance_rate": None if sampler.acceptance_rate is None else round(sampler.acceptance_rate, 4),
        }
        if toy:
            from gensemble.metrics.modes import toy_mode_stats

            stats = toy_mode_stats(out.x, real.modes, real.sigma)
            row |= {
                "high_quality_frac": round(stats["high_quality_frac"], 4),
                "modes_covered": stats["modes_covered"],
            }
        rows.append(row)
        print(row)
    if toy:
        # Reference for `average`: the member whose weights it averages, as trained.
        from gensemble.metrics.modes import toy_mode_stats

        stats = toy_mode_stats(
            ens.member("m0").model.sample(n, torch.Generator().manual_seed(0)), real.modes, real.sigma
        )
        rows.append(
            {
                "method": "(reference: m0's final weights)",
                "fusion": None,
                "params": {},
                "build_s": 0.0,
                "sample_s": None,
                "per_s": None,
                "acceptance_rate": None,
                "high_quality_frac": round(stats["high_quality_frac"], 4),
                "modes_covered": stats["modes_covered"],
            }
        )
    return rows


def table(rows: list[dict], toy: bool, unit: str) -> str:
    head = f"| method | acceptance | {unit}/s | build (s) |"
    rule = "|---|---:|---:|---:|"
    if toy:
        head, rule = head + " high quality | modes (of 25) |", rule + "---:|---:|"
    lines = [head, rule]
    for r in rows:
        acc = "—" if r["acceptance_rate"] is None else f"{100 * r['acceptance_rate']:.1f} %"
        speed = "—" if r["per_s"] is None else f"{r['per_s']:,.0f}"
        build = "—" if r["fusion"] is None else f"{r['build_s']:.2f}"
        line = f"| {r['method']} | {acc} | {speed} | {build} |"
        if toy:
            line += f" {100 * r['high_quality_frac']:.1f} % | {r['modes_covered']} |"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=3000, help="generator updates per member when training")
    p.add_argument("--n", type=int, default=5000, help="samples drawn per method")
    p.add_argument("--repeats", type=int, default=3, help="timed draws per method (the median is reported)")
    p.add_argument("--run", type=Path, default=None, help="a trained 3-member grid25 run to reuse")
    p.add_argument("--image-run", type=Path, default=None, help="a trained 3-member digits run to reuse")
    p.add_argument("--json", type=Path, default=ROOT / "docs" / "results" / "fusion_speed.json")
    p.add_argument("--doc", type=Path, default=ROOT / "docs" / "fusion.md")
    args = p.parse_args(argv)
    set_quiet(True)
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="gensemble-fusion-bench-"))
    toy_model = {"name": "mlp-gan", "z_dim": 2, "g_hidden": 128, "d_hidden": 128}
    image_model = {"name": "mlp-gan", "z_dim": 16, "g_hidden": 128, "d_hidden": 128}
    toy_run = args.run or train(ensemble_config("grid25", args.steps, toy_model), work, "grid25")
    image_run = args.image_run or train(ensemble_config("digits", args.steps, image_model), work, "digits")
    toy_rows = bench(toy_run, args.n, toy=True, repeats=args.repeats)
    image_rows = bench(image_run, args.n, toy=False, repeats=args.repeats)
    result = {
        "workloads": {
            "grid25": f"3 × mlp-gan (hidden 128, z 2) on grid25, {args.steps} steps, batch 128, lr 1e-3",
            "digits": f"3 × mlp-gan (hidden 128, z 16) on digits (1×8×8), {args.steps} steps, batch 128, lr 1e-3",
        },
        "n": args.n,
        "repeats": args.repeats,
        "machine": {
            "torch_threads": 1,
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "load_average_before": round(load_before, 2),
        },
        "grid25": toy_rows,
        "digits": image_rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    text = (
        f"**grid25** ({result['workloads']['grid25']}; {args.n} samples per method):\n\n"
        + table(toy_rows, True, "points")
        + f"\n\n**digits** ({result['workloads']['digits']}; {args.n} samples per method):\n\n"
        + table(image_rows, False, "images")
        + f"\n\nOne torch thread on a shared {os.cpu_count()}-core CPU (load average {load_before:.1f} at the start)."
    )
    write_marked_table(args.doc, text, MARK_BEGIN, MARK_END)
    print(text)
    return result


if __name__ == "__main__":
    main()
