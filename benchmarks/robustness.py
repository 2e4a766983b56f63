"""Kill `gensemble train` with SIGKILL at random moments, resume, and check nothing was lost.

    python benchmarks/robustness.py [--kills 24] [--seed 0] [--work runs/bench-robustness]

Trains one reference run uninterrupted. Then, trial after trial, starts the same config, kills the
process (SIGKILL: no cleanup handler runs) after a random delay, and restarts it with --resume until
it finishes by itself. Checkpoints are written every 10 steps, so many kills land inside a save.
Every finished run must equal the reference tensor for tensor (weights.safetensors of its final
checkpoint) and hold no temporary files. Prints the counts and writes docs/results/robustness.json.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from gensemble.checkpoint import latest_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {
    "data": {"name": "grid25"},
    "scheme": "independent",
    "members": [
        {"model": {"name": "mlp-gan", "g_hidden": 64, "d_hidden": 64}, "seed": s, "optim": {"lr": 1e-3}}
        for s in range(2)
    ],
    "train": {"steps": 400, "batch_size": 64, "checkpoint_every": 10, "log_every": 10, "ema_decay": 0.9},
}


def train(cfg: Path, out: Path, timeout: float | None = None) -> bool:
    """Run the CLI; with `timeout`, SIGKILL it after that many seconds. True if it finished by itself."""
    resume = ["--resume"] if (out / "config.yaml").exists() else []
    cmd = [
        sys.executable,
        "-m",
        "gensemble",
        "--quiet",
        "train",
        str(cfg),
        "--out",
        str(out),
        "--backend",
        "loop",
        *resume,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        return False
    if proc.returncode != 0:
        raise RuntimeError(f"training failed with exit {proc.returncode}: {err.decode()[-500:]}")
    return True


def temporaries(run: Path) -> list[str]:
    return [
        str(p.relative_to(run))
        for p in run.rglob("*")
        if p.name.startswith(".") and (".tmp" in p.name or p.name.startswith(".tmp-"))
    ]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=24, help="SIGKILLs in all (at least 20 for the benchmark)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench-robustness"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "robustness.json"))
    args = ap.parse_args(argv)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cfg = work / "config.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    rng = random.Random(args.seed)

    start = time.perf_counter()
    train(cfg, work / "reference")
    ref_seconds = time.perf_counter() - start
    reference = load_file(str(latest_checkpoint(work / "reference") / "weights.safetensors"))

    kills = trials = equal = leftovers = resumes = 0
    while kills < args.kills:
        trials += 1
        run = work / f"trial-{trials}"
        per_trial = min(6, args.kills - kills)
        for _ in range(per_trial):
            # Anywhere from interpreter start-up to the end of training.
            if train(cfg, run, timeout=rng.uniform(0.2, ref_seconds)):
                break
            kills += 1
        while not train(cfg, run):
            pass
        resumes += 1
        final = load_file(str(latest_checkpoint(run) / "weights.safetensors"))
        same = final.keys() == reference.keys() and all(
            torch.equal(final[k], reference[k]) for k in reference
        )
        left = temporaries(run)
        equal += same
        leftovers += len(left)
        print(
            f"trial {trials}: kills so far {kills}, final weights {'equal' if same else 'DIFFER'}, temporaries left {left}"
        )
    result = {
        "kills": kills,
        "trials": trials,
        "runs_equal_to_reference": equal,
        "runs_differing": trials - equal,
        "temporaries_left": leftovers,
        "reference_seconds": round(ref_seconds, 2),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "config": CONFIG,
    }
    print()
    print("| SIGKILLs | runs | equal to uninterrupted | differing | temporaries left |")
    print("|---|---|---|---|---|")
    print(f"| {kills} | {trials} | {equal} | {trials - equal} | {leftovers} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    res = main()
    sys.exit(0 if res["runs_differing"] == 0 and res["temporaries_left"] == 0 else 1)
