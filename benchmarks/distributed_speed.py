"""Wall time of a 4-member `independent` ensemble on 2 cores: local and sequential against Ray.

    python benchmarks/distributed_speed.py [--steps 1000] [--members 4] [--cpus 2]

Every row trains the same run end to end with `train_run` (checkpoints and metrics included):
`--backend loop` (one member after another in this process, `--threads` torch threads: 1 by default,
since intra-op threads do not pay on models this small and spin badly on a busy machine), then
`--backend ray` on a Ray started here with `--cpus` CPUs, one member per CPU (one torch thread each).
Ray is timed twice: "cold" includes starting its worker processes (they import torch on their first
task); "warm" reuses them, as a long run or a standing cluster does. Starting Ray itself is timed
separately. Each row is checked to give the same member weights as the first. Writes
docs/results/distributed_speed.json and the table in docs/distributed.md (between the markers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch
import yaml

from gensemble.checkpoint import load_checkpoint
from gensemble.progress import set_quiet
from gensemble.run import train_run

from _common import write_marked_table

ROOT = Path(__file__).resolve().parents[1]
MARK_BEGIN, MARK_END = "<!-- distributed-speed:begin -->", "<!-- distributed-speed:end -->"
MODEL = {"name": "mlp-gan", "z_dim": 2, "g_hidden": 128, "d_hidden": 128}


def write_config(folder: Path, members: int, steps: int) -> Path:
    cfg = {
        "data": {"name": "grid25"},
        "members": [{"model": MODEL, "seed": i} for i in range(members)],
        "train": {
            "steps": steps,
            "batch_size": 256,
            "checkpoint_every": max(1, steps // 3),
            "log_every": 100,
        },
    }
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def timed_run(config: Path, out: Path, backend="loop") -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    train_run(config, out, backend=backend)
    return time.perf_counter() - start


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_checkpoint(a)[0], load_checkpoint(b)[0]
    return sorted(wa) == sorted(wb) and all(torch.equal(wa[k], wb[k]) for k in wa)


def table(rows: list[dict]) -> str:
    base = rows[0]["seconds"]
    lines = ["| backend | wall time (s) | speed-up | same weights |", "|---|---:|---:|:---:|"]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['seconds']:.1f} | {base / r['seconds']:.2f}× | {'yes' if r['same_weights'] else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=1000, help="generator updates per member")
    p.add_argument("--members", type=int, default=4)
    p.add_argument("--cpus", type=int, default=2, help="Ray CPUs (members trained at once)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the sequential run")
    p.add_argument("--json", type=Path, default=ROOT / "docs" / "results" / "distributed_speed.json")
    p.add_argument("--doc", type=Path, default=ROOT / "docs" / "distributed.md")
    args = p.parse_args(argv)
    set_quiet(True)
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="gensemble-bench-"))
    try:
        config = write_config(work, args.members, args.steps)
        rows = []
        torch.set_num_threads(args.threads)
        label = f"local, sequential (loop, {args.threads} torch thread{'s' if args.threads > 1 else ''})"
        rows.append({"backend": label, "seconds": timed_run(config, work / "loop")})
        rows[0]["same_weights"] = True

        from gensemble.execution.ray import RayExecutor, import_ray

        ray = import_ray()
        start = time.perf_counter()
        executor = RayExecutor(num_cpus=args.cpus)
        ray_init = time.perf_counter() - start
        try:
            for label in ("cold", "warm"):
                out = work / f"ray-{label}"
                rows.append(
                    {
                        "backend": f"ray, {args.cpus} CPUs ({label} workers)",
                        "seconds": timed_run(config, out, executor),
                        "same_weights": same_weights(out, work / "loop"),
                    }
                )
        finally:
            ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    result = {
        "workload": f"{args.members} × mlp-gan (hidden 128) on grid25, batch 256, {args.steps} steps each",
        "machine": {
            "ray_cpus": args.cpus,
            "local_threads": args.threads,
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "load_average_before": round(load_before, 2),
        },
        "ray_init_seconds": round(ray_init, 2),
        "rows": [{**r, "seconds": round(r["seconds"], 2)} for r in rows],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    text = table(rows) + f"\n\nStarting Ray itself took {ray_init:.1f} s more. {result['workload']}."
    write_marked_table(args.doc, text, MARK_BEGIN, MARK_END)
    print(text)
    return result


if __name__ == "__main__":
    main()
