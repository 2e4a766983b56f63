"""Batched engine vs a Python loop over members: member-images per second for M = 1, 4, 8, 16.

    python benchmarks/ensemble_speed.py [--quick] [--device cpu|cuda] [--threads 1]

Workloads: mlp-gan on grid25 as in configs/grid25-*.yaml (128 wide, batch 256), the same with small
networks (32 wide, batch 64), and dcgan on Fashion-MNIST as in configs/fashion-*.yaml (batch 64,
batch norm, which the engine stacks). For each M, M members (seeds 0..M-1) make the same generator updates either one
member at a time (`train.gan_step`, what `--backend loop` runs) or as one stacked model
(`batched.BatchedGAN`, the default). Looped and batched runs alternate and each keeps its best of
`--repeats` timings, so a busy shared machine slows both alike. Throughput is member-images per
second: M × batch size × generator updates / seconds. Writes docs/results/ensemble_speed.json and
the table in docs/ensembles.md (between the speed-table markers).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from gensemble.data import DataConfig, load_dataset
from gensemble.errors import GensembleError
from gensemble.training.batched import BatchedGAN
from gensemble.training.loop import gan_step
from gensemble.training.member import MemberConfig, build_member

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = {
    "mlp-gan / grid25": {
        "data": DataConfig(name="grid25"),
        "model": {"name": "mlp-gan", "z_dim": 2, "g_hidden": 128, "d_hidden": 128},
        "batch": 256,
        "steps": 20,
    },
    # The same task with small networks and batches: per-member overhead, not arithmetic, dominates.
    "mlp-gan (32 wide, batch 64) / grid25": {
        "data": DataConfig(name="grid25"),
        "model": {"name": "mlp-gan", "z_dim": 2, "g_hidden": 32, "d_hidden": 32},
        "batch": 64,
        "steps": 40,
    },
    "dcgan / fashion-mnist": {
        "data": DataConfig(name="fashion-mnist", limit=10_000),
        "model": {"name": "dcgan", "z_dim": 64, "ngf": 32, "ndf": 32},
        "batch": 64,
        "steps": 4,
    },
}
MARK_BEGIN, MARK_END = "<!-- speed-table:begin -->", "<!-- speed-table:end -->"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_looped(members, data, batch: int, steps: int, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        for m in members:
            gan_step(m, data, batch)
    sync(device)
    return time.perf_counter() - start


def time_batched(engine: BatchedGAN, data, batch: int, steps: int, device: torch.device) -> float:
    weights = [None] * len(engine.members)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        engine.step(data, batch, weights)
    sync(device)
    return time.perf_counter() - start


def measure(workload: dict, m: int, repeats: int, device: torch.device, data) -> dict:
    cfgs = [MemberConfig(model=workload["model"], name=f"m{i}", seed=i) for i in range(m)]
    looped = [build_member(c, data.shape, device) for c in cfgs]
    stacked = [build_member(c, data.shape, device) for c in cfgs]
    engine = BatchedGAN(stacked)
    batch, steps = workload["batch"], workload["steps"]
    time_looped(looped, data, batch, 1, device)  # warm-up: allocator, kernels, optimiser state
    time_batched(engine, data, batch, 1, device)
    best = {"looped": float("inf"), "batched": float("inf")}
    for _ in range(repeats):
        best["looped"] = min(best["looped"], time_looped(looped, data, batch, steps, device))
        best["batched"] = min(best["batched"], time_batched(engine, data, batch, steps, device))
    images = m * batch * steps
    looped_rate, batched_rate = images / best["looped"], images / best["batched"]
    return {
        "members": m,
        "looped_images_per_s": round(looped_rate, 1),
        "batched_images_per_s": round(batched_rate, 1),
        "speedup": round(batched_rate / looped_rate, 2),
    }


def markdown(results: dict) -> str:
    lines = [
        f"Measured on {results['machine']} ({results['device']}, {results['threads']} thread(s)), "
        f"torch {results['torch']}; best of {results['repeats']} alternating runs.",
        "",
        "| workload | M | looped (member-images/s) | batched (member-images/s) | batched / looped |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, rows in results["workloads"].items():
        for r in rows:
            lines.append(
                f"| {name} | {r['members']} | {r['looped_images_per_s']:,.0f} | "
                f"{r['batched_images_per_s']:,.0f} | {r['speedup']:.2f}× |"
            )
    return "\n".join(lines)


def write_results(results: dict, json_path: Path, md_path: Path) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    table = f"{MARK_BEGIN}\n{markdown(results)}\n{MARK_END}"
    text = md_path.read_text() if md_path.exists() else f"# Ensembles\n\n{MARK_BEGIN}\n{MARK_END}\n"
    if MARK_BEGIN in text and MARK_END in text:
        head, rest = text.split(MARK_BEGIN, 1)
        text = head + table + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + table + "\n"
    md_path.write_text(text)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--members", type=int, nargs="+", default=[1, 4, 8, 16])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (CPU)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="fewer steps and members, for a smoke test")
    p.add_argument("--json", type=Path, default=ROOT / "docs" / "results" / "ensemble_speed.json")
    p.add_argument("--markdown", type=Path, default=ROOT / "docs" / "ensembles.md")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    members = [1, 4] if args.quick else args.members
    results = {
        "machine": platform.processor() or platform.machine(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": args.threads,
        "torch": torch.__version__,
        "repeats": 1 if args.quick else args.repeats,
        "workloads": {},
    }
    for name, workload in WORKLOADS.items():
        if args.quick:
            workload = {**workload, "steps": 2}
        try:
            data = load_dataset(workload["data"], "train")
        except GensembleError as exc:
            print(f"skipping {name}: {exc}")
            continue
        data.x = data.x.to(device)
        rows = []
        for m in members:
            row = measure(workload, m, results["repeats"], device, data)
            print(
                f"{name:<38} M={m:<3} looped {row['looped_images_per_s']:>10,.0f}/s   "
                f"batched {row['batched_images_per_s']:>10,.0f}/s   ×{row['speedup']:.2f}",
                flush=True,
            )
            rows.append(row)
        results["workloads"][name] = rows
    write_results(results, args.json, args.markdown)
    print(markdown(results))
    return results


if __name__ == "__main__":
    main()
