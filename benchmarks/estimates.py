"""How good is `train --dry-run`'s time estimate? Three configs a new user might bring: a folder of
grayscale 28×28 images, a folder of colour 32×32 crops, and a 2-D toy. For each, the estimate is taken
3 times (as 3 dry runs would), then the run is trained for real and its wall time measured.

    python benchmarks/estimates.py [--out docs/results/estimates.json]

The goal (issue "Your own folder, round two"): every estimate within ±30% of the measured time.
Run it on a quiet machine: the estimate times a moment of training, the real run all of it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_sample_images

from gensemble.data import DataConfig, load_dataset
from gensemble.imageio import save_image
from gensemble.progress import set_quiet
from gensemble.run import load_train_data, parse_config, train_run
from gensemble.run.budget import estimate_seconds

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "estimates.json"))
    args = ap.parse_args(argv)
    set_quiet(True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gensemble-estimates-") as tmp:
        work = Path(tmp)
        for label, raw in configs(work).items():
            cfg = parse_config(json.loads(json.dumps(raw)))
            dev = torch.device("cpu")
            data = load_train_data(cfg, dev)
            estimates = [estimate_seconds(cfg, data, dev) for _ in range(REPEATS)]
            start = time.perf_counter()
            train_run(raw, work / "run", resume=False)
            measured = time.perf_counter() - start
            errors = [e / measured - 1 for e in estimates]
            rows.append(
                {
                    "config": label,
                    "estimates_s": [round(e, 1) for e in estimates],
                    "measured_s": round(measured, 1),
                    "errors": [round(x, 3) for x in errors],
                    "within": all(abs(x) <= TOLERANCE for x in errors),
                }
            )
            print(
                f"{label:42s} estimates {', '.join(f'{e:.0f}' for e in estimates)} s  measured {measured:.0f} s  "
                f"errors {', '.join(f'{100 * x:+.0f}%' for x in errors)}",
                flush=True,
            )
            shutil.rmtree(work / "run")
    worst = max(abs(x) for r in rows for x in r["errors"])
    goal = {
        "name": "estimates_within_30pct",
        "target": f"every dry-run estimate within ±{100 * TOLERANCE:.0f}% of the measured wall time "
        f"({REPEATS} estimates × {len(rows)} configs)",
        "measured": f"worst error {100 * worst:.0f}%",
        "met": all(r["within"] for r in rows),
    }
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": torch.get_num_threads(),
        "rows": rows,
        "goals": [goal],
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{goal['target']}: {goal['measured']}, met: {goal['met']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
