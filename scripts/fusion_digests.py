"""Every fusion's seeded output on a run, saved or compared: a refactor of fusion/ that means to change
nothing must reproduce them (bit-identical, or within 1e-6 where float summation order moved).

    python scripts/fusion_digests.py --run DEMO/run --save /tmp/before.npz   # before the change
    python scripts/fusion_digests.py --run DEMO/run --compare /tmp/before.npz  # after it

Besides the given run (the demo's, on Fashion-MNIST: classifier features, feature judges, FID
criterion), a 2-D grid25 run is trained here for 300 steps on one thread (mode-kernel features, MMD
criterion, fine-tuned judges). Each fusion is built with its defaults on one shared FusionContext per
run, in name order, and draws n samples with a fixed seed; what is kept per fusion is the samples, the
member of each, the acceptance rate and the sampler's choice record (auto, rejection), or the one-line
error it raised. One thread throughout: the thread count changes float summation order.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from gensemble.data import load_dataset
from gensemble.errors import GensembleError
from gensemble.fusion import FusionContext, build_fusion, fusion_names
from gensemble.run import load_run, train_run

ROOT = Path(__file__).resolve().parent.parent
TOY = ROOT / "src" / "gensemble" / "configs" / "grid25-independent.yaml"


def toy_run(folder: Path) -> Path:
    raw = yaml.safe_load(TOY.read_text())
    raw["train"] = {"steps": 300, "batch_size": 64, "checkpoint_every": 300, "log_every": 100, "threads": 1}
    train_run(raw, folder)
    return folder


def outputs(run: Path, n: int, tag: str) -> dict[str, np.ndarray]:
    """name -> arrays (prefixed `tag/NAME/`) of every fusion's seeded draw on `run`."""
    ens = load_run(run)
    heldout = load_dataset(ens.cfg.data, "test")
    ctx = FusionContext.build(ens, heldout, 0)
    out: dict[str, np.ndarray] = {}
    for name, _ in fusion_names():
        key = f"{tag}/{name}/"
        started = time.perf_counter()
        try:
            sampler = build_fusion(ens, name, heldout, None, ctx)
            s = sampler.sample(n, torch.Generator().manual_seed(1234))
        except GensembleError as e:
            out[key + "error"] = np.array(str(e))
            print(f"{tag:8s} {name:16s} error: {e}", file=sys.stderr, flush=True)
            continue
        out[key + "x"] = s.x.detach().cpu().double().numpy()
        out[key + "ids"] = s.member_ids.cpu().numpy()
        rate = sampler.acceptance_rate
        out[key + "rate"] = np.array(np.nan if rate is None else rate)
        record = getattr(sampler, "choice", None)
        if record is not None:
            record = {k: v for k, v in record.items() if k not in ("seconds", "why")}  # timings differ
            out[key + "choice"] = np.array(json.dumps(record, sort_keys=True, default=str))
        print(f"{tag:8s} {name:16s} {time.perf_counter() - started:6.1f} s", file=sys.stderr, flush=True)
    return out


def compare(now: dict[str, np.ndarray], before: dict[str, np.ndarray], tol: float) -> list[str]:
    """One line per array: identical, within tol (with the largest difference), or different."""
    lines, bad = [], 0
    for key in sorted(set(now) | set(before)):
        if key not in now or key not in before:
            lines.append(f"{key}: only {'before' if key in before else 'now'}")
            bad += 1
            continue
        a, b = now[key], before[key]
        if a.dtype.kind in "US" or b.dtype.kind in "US":
            same = str(a) == str(b)
            lines.append(f"{key}: {'identical' if same else 'DIFFERENT: ' + str(a)[:200]}")
            bad += not same
            continue
        if a.shape != b.shape:
            lines.append(f"{key}: DIFFERENT shapes {a.shape} vs {b.shape}")
            bad += 1
            continue
        if np.array_equal(a, b, equal_nan=True):
            lines.append(f"{key}: identical")
            continue
        diff = float(np.nanmax(np.abs(a.astype(np.float64) - b.astype(np.float64))))
        ok = diff <= tol
        lines.append(f"{key}: {'within' if ok else 'DIFFERENT,'} max |Δ| {diff:.3g}")
        bad += not ok
    lines.append(f"{bad} of {len(set(now) | set(before))} arrays differ beyond {tol:g}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="a trained run folder (the demo's)")
    ap.add_argument("-n", type=int, default=500)
    ap.add_argument("--save", type=Path)
    ap.add_argument("--compare", type=Path)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--no-toy", action="store_true", help="only the given run")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    found = outputs(args.run, args.n, "run")
    if not args.no_toy:
        with tempfile.TemporaryDirectory() as tmp:
            found |= outputs(toy_run(Path(tmp) / "toy"), args.n, "toy")
    if args.save:
        np.savez(args.save, **found)
    if args.compare:
        with np.load(args.compare) as before:
            lines = compare(found, {k: before[k] for k in before.files}, args.tol)
        print("\n".join(lines))
        return 0 if lines[-1].startswith("0 of") else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
