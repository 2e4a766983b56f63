"""Inception features on a CPU: images per second of each way to run the TF-FID network, and how
far each moves the features and the FID from the float32 path as it was.

    python benchmarks/inception_speed.py [--n 64] [--rounds 3]

Variants, timed in alternation in one process (round-robin, `rounds` times each, median), on
Fashion-MNIST test images (28 px grey, resized to 299 in one batch):
  - before: the path as it was (frozen + optimize_for_inference, float32, batch 32);
  - batch 64 and 128;
  - channels-last;
  - bfloat16 weights and inputs (AMX/AVX512-BF16 kernels where the CPU has them), with and
    without channels-last;
  - the default `inception` extractor now (gensemble.metrics.inception.fast_path).
For each: img/s, its ratio to `before`, the largest relative feature difference, and FID between
--fid-n real and as many other real images (1,000 each by default) computed with its features, against the float32 FID.
Prints a table and writes docs/results/inception_speed.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from gensemble.data import DataConfig, load_dataset  # noqa: E402
from gensemble.metrics.fid import feature_stats, frechet_distance  # noqa: E402
from gensemble.metrics.inception import InceptionExtractor  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=64, help="images per timed pass")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fid-n", type=int, default=1000, help="images per side of the FID check")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "inception_speed.json"))
    args = ap.parse_args(argv)
    test = load_dataset(DataConfig(name="fashion-mnist"), "test").x
    timed = test[: args.n]
    f32 = {"precision": "float32", "channels_last": False}
    variants = {
        "before (float32, batch 32)": (InceptionExtractor(**f32), 32),
        "float32, batch 64": (InceptionExtractor(**f32), 64),
        "float32, batch 128": (InceptionExtractor(**f32), 128),
        "float32, channels-last, batch 32": (InceptionExtractor(precision="float32", channels_last=True), 32),
        "bfloat16, batch 32": (InceptionExtractor(precision="bfloat16", channels_last=False), 32),
        "bfloat16, channels-last, batch 32": (
            InceptionExtractor(precision="bfloat16", channels_last=True),
            32,
        ),
        "default now (`inception`)": (InceptionExtractor(), 32),
    }
    for ext, bs in variants.values():  # warm-up: kernels are built at the first call
        ext.extract(timed[:bs], batch_size=bs)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for name, (ext, bs) in variants.items():
            start = time.perf_counter()
            ext.extract(timed, batch_size=bs)
            times[name].append(time.perf_counter() - start)
    real_a, real_b = test[: args.fid_n], test[args.fid_n : 2 * args.fid_n]
    reference = None
    rows = {}
    done: dict[tuple, tuple] = {}  # batch size does not change the numbers: compute once per numeric path
    for name, (ext, bs) in variants.items():
        key = (ext.dtype, ext.channels_last)
        if key not in done:
            done[key] = tuple(
                ext.extract(r, batch_size=bs).features.astype(np.float64) for r in (real_a, real_b)
            )
        fa, fb = done[key]
        fid = float(frechet_distance(*feature_stats(fa), *feature_stats(fb)))
        if reference is None:
            reference = (fa, fid)
        rel = float(np.abs(fa - reference[0]).max() / np.abs(reference[0]).max())
        rate = args.n / statistics.median(times[name])
        rows[name] = {
            "img_per_s": round(rate, 2),
            "max_rel_feature_diff": rel,
            "fid_real_vs_real": round(fid, 4),
        }
    base = rows["before (float32, batch 32)"]["img_per_s"]
    for r in rows.values():
        r["speedup"] = round(r["img_per_s"] / base, 3)
        r["fid_diff"] = round(r["fid_real_vs_real"] - reference[1], 4)
    print(
        f"| variant | img/s | × before | max rel. feature diff | FID ({args.fid_n} vs {args.fid_n} real) | FID diff |"
    )
    print("|---|---|---|---|---|---|")
    for k, r in rows.items():
        print(
            f"| {k} | {r['img_per_s']} | {r['speedup']} | {r['max_rel_feature_diff']:.2e} | "
            f"{r['fid_real_vs_real']} | {r['fid_diff']:+.4f} |"
        )
    result = {
        "rows": rows,
        "n_timed": args.n,
        "rounds": args.rounds,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "input": "Fashion-MNIST test images, 28 px grey, one bilinear resize to 299 per batch",
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
