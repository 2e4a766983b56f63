"""How good is `train --dry-run`'s time estimate? Three configs a new user might bring: a folder of
grayscale 28×28 images, a folder of colour 32×32 crops, and a 2-D toy. For each, `gensemble train
--dry-run` runs 3 times, as a user would type it, and its estimate of the whole run is read; then the
run is trained for real (`gensemble train`) and its wall time measured.

    python benchmarks/estimates.py [--out docs/results/estimates.json] [--neighbour]

The goal (issue "Your own folder, round two"): every estimate within ±30% of the measured time.
Run it on a quiet machine: the estimate times a moment of training, the real run all of it. Each
run trains through the CLI (`gensemble train`), and the first "whole run ETA" line it prints is
read too: the time elapsed at that line plus the ETA it states is the run's first whole-run
forecast, held to the same ±30% (issue "Your own folder, round three"). With --neighbour every
config is measured again beside a busy process (one thread of matrix products, started before the
dry run and stopped after the training), as a user's machine often is.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_sample_images

from gensemble.data import DataConfig, load_dataset
from gensemble.imageio import save_image

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 0.30
REPEATS = 3


def grayscale_folder(folder: Path, n: int = 2000) -> Path:
    """n Fashion-MNIST test images as 28×28 grayscale PNGs (a stand-in for a user's product photos)."""
    x = load_dataset(DataConfig(name="fashion-mnist"), "test").x[:n]
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(x):
        save_image(img, folder / f"{i:05d}.png")
    return folder


def colour_folder(folder: Path, n: int = 2000, seed: int = 0) -> Path:
    """n random 32×32 RGB crops of scikit-learn's two bundled photos (china.jpg, flower.jpg)."""
    rng = np.random.default_rng(seed)
    photos = list(load_sample_images().images)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        p = photos[i % len(photos)]
        y, x = rng.integers(0, p.shape[0] - 32), rng.integers(0, p.shape[1] - 32)
        crop = torch.from_numpy(p[y : y + 32, x : x + 32].copy()).permute(2, 0, 1).float() / 127.5 - 1
        save_image(crop, folder / f"{i:05d}.png")
    return folder


def configs(work: Path) -> dict[str, dict]:
    gray, colour = grayscale_folder(work / "gray"), colour_folder(work / "colour")
    dcgan = {"name": "dcgan", "ngf": 32, "ndf": 32}
    vae = {"model": {"name": "vae"}, "optim": {"lr": 0.001, "betas": [0.9, 0.999]}}
    images = {"batch_size": 64, "log_every": 50, "image_every": 0, "snapshot_every": 0}
    return {
        "grayscale 28×28 folder (3 DCGANs + VAE)": {
            "data": {"name": f"folder:{gray}"},
            "members": [{"model": dcgan, "seed": s} for s in range(3)] + [{**vae, "name": "vae", "seed": 3}],
            "train": {"steps": 300, "checkpoint_every": 300, **images},
        },
        "colour 32×32 folder (2 DCGANs + VAE)": {
            "data": {"name": f"folder:{colour}"},
            "members": [{"model": dcgan, "seed": s} for s in range(2)] + [{**vae, "name": "vae", "seed": 2}],
            "train": {"steps": 300, "checkpoint_every": 300, **images},
        },
        "grid25 toy (5 MLP GANs)": {
            "data": {"name": "grid25"},
            "members": [
                {"model": {"name": "mlp-gan", "z_dim": 2, "g_hidden": 128, "d_hidden": 128}, "seed": s}
                for s in range(5)
            ],
            "train": {"steps": 2000, "batch_size": 256, "checkpoint_every": 2000, "log_every": 500},
        },
    }


NEIGHBOUR = "import torch\ntorch.set_num_threads(1)\na = torch.randn(1024, 1024)\nwhile True:\n    a @ a"
ETA = re.compile(r"whole run ETA (?:(\d+)h(\d+)m|(\d+)m(\d+)s)")
ESTIMATE = re.compile(r"# estimated time here: about (?:[^(\n]*\((\d+) s\)|(\d+) s)")


def dry_run_estimate(config: Path) -> float:
    """The whole-run estimate `gensemble train CONFIG --dry-run` prints, in seconds."""
    out = subprocess.run(
        [sys.executable, "-m", "gensemble", "train", str(config), "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = ESTIMATE.search(out)
    if m is None:
        raise RuntimeError(f"no estimate in the dry run's output:\n{out}")
    return float(m.group(1) or m.group(2))


@contextmanager
def neighbour(busy: bool):
    """A busy process on one core for the duration (nothing when not `busy`)."""
    proc = subprocess.Popen([sys.executable, "-c", NEIGHBOUR]) if busy else None
    try:
        yield
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


def train_and_read_eta(config: Path, out: Path) -> tuple[float, float | None]:
    """(wall seconds, the first whole-run forecast: seconds elapsed at the first ETA line + its ETA)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gensemble", "train", str(config), "--out", str(out)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    forecast = None
    for line in proc.stderr:
        m = ETA.search(line)
        if m and forecast is None:
            h, mi, m2, sec = (int(g) if g else 0 for g in m.groups())
            eta = h * 3600 + mi * 60 if m.group(1) else m2 * 60 + sec
            forecast = time.perf_counter() - start + eta
    if proc.wait() != 0:
        raise RuntimeError(f"training {config} failed")
    return time.perf_counter() - start, forecast


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "estimates.json"))
    ap.add_argument(
        "--neighbour", action="store_true", help="also measure every config beside a busy process"
    )
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gensemble-estimates-") as tmp:
        work = Path(tmp)
        for busy in (False, True) if args.neighbour else (False,):
            for label, raw in configs(work).items():
                label = f"{label}, beside a busy process" if busy else label
                (work / "c.yaml").write_text(json.dumps(raw))  # (JSON is YAML)
                with neighbour(busy):
                    estimates = [dry_run_estimate(work / "c.yaml") for _ in range(REPEATS)]
                    measured, forecast = train_and_read_eta(work / "c.yaml", work / "run")
                errors = [e / measured - 1 for e in estimates]
                eta_error = None if forecast is None else forecast / measured - 1
                rows.append(
                    {
                        "config": label,
                        "estimates_s": [round(e, 1) for e in estimates],
                        "first_eta_s": None if forecast is None else round(forecast, 1),
                        "measured_s": round(measured, 1),
                        "errors": [round(x, 3) for x in errors],
                        "first_eta_error": None if eta_error is None else round(eta_error, 3),
                        "within": all(abs(x) <= TOLERANCE for x in [*errors, eta_error or 0.0]),
                    }
                )
                print(
                    f"{label:60s} estimates {', '.join(f'{e:.0f}' for e in estimates)} s  first ETA "
                    f"{'-' if forecast is None else f'{forecast:.0f}'} s  measured {measured:.0f} s  errors "
                    f"{', '.join(f'{100 * x:+.0f}%' for x in errors)}; first ETA "
                    f"{'-' if eta_error is None else f'{100 * eta_error:+.0f}%'}",
                    flush=True,
                )
                shutil.rmtree(work / "run")
    worst = max(abs(x) for r in rows for x in [*r["errors"], r["first_eta_error"] or 0.0])
    goal = {
        "name": "estimates_within_30pct",
        "target": f"every dry-run estimate and first whole-run ETA within ±{100 * TOLERANCE:.0f}% of the "
        f"measured wall time ({REPEATS} estimates × {len(rows)} configs)",
        "measured": f"worst error {100 * worst:.0f}%",
        "met": all(r["within"] for r in rows),
    }
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": os.cpu_count(),
        "rows": rows,
        "goals": [goal],
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{goal['target']}: {goal['measured']}, met: {goal['met']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
