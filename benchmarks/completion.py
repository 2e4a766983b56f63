"""Image completion on held-out Fashion-MNIST: every member, the ensemble's choice, and an oracle.

    python benchmarks/completion.py [--run RUN] [--n 200]     # score (writes docs/results/completion.json)
    python benchmarks/completion.py --tune [--n 200]          # choose the cost weights on *training* images

RUN is a trained Fashion-MNIST ensemble (default: the demo's config trained into
runs/bench-completion, 3 DCGANs + 1 VAE). Scored images come from the evaluation half of the test
split, which neither the critic (fitted on the calibration half) nor the weight tuning (training
images) ever sees. Two kinds of hole, each 14×14 = 25% of the image: the centre, and a box at a
random position (seeded). Per member, for the ensemble's choice and for an oracle that picks the
best member per image by the true hole error: hole MSE and PSNR, and the domain classifier's
accuracy on the completed images (is the completed shirt still a shirt?). Seconds per image are
for the completion call with the default settings (the critic is fitted once per run beforehand).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import torch

from gensemble.data import load_dataset
from gensemble.editing import Editor, completion_quality
from gensemble.editing.complete import ENSEMBLE, CompletionConfig, psnr
from gensemble.editing.masks import box_mask
from gensemble.metrics.classifier_store import load_or_train_classifier
from gensemble.progress import set_quiet
from gensemble.run import load_run, train_run

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "fashion-completion.yaml"
SIDE = 14  # 14 × 14 = 196 of 784 pixels: 25% of the image


def holes(kind: str, n: int, size: int = 28, seed: int = 0) -> torch.Tensor:
    """(n, 1, H, W): the centre box for every image, or a box at a random position per image."""
    if kind == "centre":
        off = (size - SIDE) // 2
        return box_mask((off, off, SIDE, SIDE), size, size)[None].expand(n, 1, size, size).clone()
    gen = torch.Generator().manual_seed(seed)
    xy = torch.randint(0, size - SIDE + 1, (n, 2), generator=gen)
    return torch.stack([box_mask((int(x), int(y), SIDE, SIDE), size, size) for x, y in xy])


def evaluation_half(split: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels. "test": the evaluation half, by the permutation `heldout_halves` uses."""
    data = load_dataset(load_run_cfg().data, split)
    if split == "test":
        perm = torch.randperm(len(data.x), generator=torch.Generator().manual_seed(0))
        idx = perm[len(data.x) // 2 :][:n]
    else:
        idx = torch.randperm(len(data.x), generator=torch.Generator().manual_seed(1))[:n]
    return data.x[idx], data.y[idx]


_RUN: dict = {}


def load_run_cfg():
    return _RUN["ens"].cfg


@torch.no_grad()
def accuracy(classifier, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per image: 1 if the domain classifier gives the true label."""
    return (classifier(images).argmax(1) == labels).float()


def measure(editor: Editor, classifier, x, y, hole, cfg: CompletionConfig) -> tuple[dict, object, float]:
    start = time.perf_counter()
    result = editor.complete(x, hole, cfg)
    seconds = (time.perf_counter() - start) / len(x)
    q = completion_quality(result, x, hole)
    oracle_idx = q["oracle_index"]
    rows = {}
    for j, name in enumerate(result.members):
        rows[name] = summarise(q["per_member"][j], accuracy(classifier, result.candidates[j], y))
    rows["ensemble choice"] = summarise(q["chosen"], accuracy(classifier, result.chosen, y))
    oracle = result.candidates[oracle_idx, torch.arange(len(x))]
    rows["oracle"] = summarise(q["oracle"], accuracy(classifier, oracle, y))
    rows["ensemble choice"]["choices"] = {
        m: int((result.choice == j).sum()) for j, m in enumerate(result.members)
    }
    return rows, result, seconds


def summarise(mse: torch.Tensor, acc: torch.Tensor) -> dict:
    return {
        "hole_mse": round(float(mse.mean()), 5),
        "psnr_db": round(float(psnr(mse).mean()), 3),
        "accuracy": round(float(acc.mean()), 4),
    }


def tune(editor: Editor, n: int) -> dict:
    """Pick the cost weights that minimise hole MSE on training images (candidates computed once)."""
    x, _ = evaluation_half("train", n)
    grid = {
        "boundary_weight": [0.0, 0.25, 0.5, 1.0, 2.0],
        "realism_weight": [0.0, 0.001, 0.002, 0.005, 0.01, 0.02],
    }
    scores = {}
    for kind in ("centre", "random"):
        hole = holes(kind, len(x), seed=11)
        base = editor.complete(x, hole, CompletionConfig(boundary_weight=0.0, realism_weight=0.0))
        per_member = completion_quality(base, x, hole)["per_member"]
        for bw, rw in itertools.product(*grid.values()):
            cost = base.known_mse + bw * base.boundary
            if base.realism is not None:
                cost = cost - rw * base.realism
            chosen = per_member[cost.argmin(0), torch.arange(len(x))]
            scores[(bw, rw)] = scores.get((bw, rw), 0.0) + float(chosen.mean()) / 2
    best = min(scores, key=scores.get)
    table = [
        {"boundary_weight": k[0], "realism_weight": k[1], "hole_mse": round(v, 5)}
        for k, v in sorted(scores.items())
    ]
    return {
        "best": {"boundary_weight": best[0], "realism_weight": best[1]},
        "grid": table,
        "n_train_images": len(x),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default=str(ROOT / "runs" / "bench-completion"))
    ap.add_argument("--n", type=int, default=200, help="held-out images per kind of hole")
    ap.add_argument(
        "--tune", action="store_true", help="choose the cost weights on training images and print them"
    )
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "completion.json"))
    args = ap.parse_args(argv)
    set_quiet(True)
    torch.set_num_threads(2)
    run = Path(args.run)
    if not (run / "latest.json").exists():
        train_run(CONFIG, run, resume=(run / "config.yaml").exists())
    _RUN["ens"] = load_run(run)
    t0 = time.perf_counter()
    editor = Editor.build(_RUN["ens"])
    build_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    editor.cost_model()  # fitted once per run (and cached in RUN/completion/), like the critic
    cost_seconds = time.perf_counter() - t0
    if args.tune:
        result = tune(editor, args.n)
        print(json.dumps(result["best"]))
        for row in result["grid"]:
            print(row)
        return result
    classifier = load_or_train_classifier("fashion-mnist")
    x, y = evaluation_half("test", args.n)
    kinds, seconds = {}, []
    for kind in ("centre", "random"):
        rows, _, sec = measure(editor, classifier, x, y, holes(kind, len(x), seed=5), CompletionConfig())
        kinds[kind] = rows
        seconds.append(sec)
    names = [k for k in kinds["centre"] if k not in ("ensemble choice", "oracle", ENSEMBLE)]
    overall = {
        row: {
            m: round(sum(kinds[k][row][m] for k in kinds) / len(kinds), 5)
            for m in ("hole_mse", "psnr_db", "accuracy")
        }
        for row in kinds["centre"]
    }
    best_mse = min(overall[m]["hole_mse"] for m in names)
    best_acc = max(overall[m]["accuracy"] for m in names)
    choice, oracle = overall["ensemble choice"], overall["oracle"]
    sec = sum(seconds) / len(seconds)
    goals = [
        {
            "name": "beats_best_member_mse",
            "target": f"< {best_mse}",
            "measured": choice["hole_mse"],
            "met": choice["hole_mse"] < best_mse,
        },
        {
            "name": "beats_best_member_accuracy",
            "target": f"> {best_acc}",
            "measured": choice["accuracy"],
            "met": choice["accuracy"] > best_acc,
        },
        {
            "name": "within_10pct_of_oracle",
            "target": f"hole MSE ≤ 1.1 × oracle ({round(1.1 * oracle['hole_mse'], 5)})",
            "measured": choice["hole_mse"],
            "met": choice["hole_mse"] <= 1.1 * oracle["hole_mse"],
        },
        {"name": "seconds_per_image", "target": "≤ 2", "measured": round(sec, 3), "met": sec <= 2.0},
    ]
    print(f"| row | hole MSE ↓ | PSNR dB ↑ | accuracy ↑ |   ({len(x)} held-out images × 2 kinds of hole)")
    print("|---|---|---|---|")
    for row, v in overall.items():
        print(f"| {row} | {v['hole_mse']:.4f} | {v['psnr_db']:.2f} | {v['accuracy']:.3f} |")
    print(
        f"\nseconds per image: {sec:.3f} (once per run beforehand: critic {build_seconds:.1f} s, cost model {cost_seconds:.1f} s)"
    )
    for g in goals:
        print(
            f"goal {g['name']}: {'met' if g['met'] else 'NOT met'} (measured {g['measured']}, target {g['target']})"
        )
    result = {
        "goals": goals,
        "overall": overall,
        "by_hole": kinds,
        "seconds_per_image": round(sec, 4),
        "critic_fit_seconds": round(build_seconds, 2),
        "cost_model_fit_seconds": round(cost_seconds, 2),
        "n_images": len(x),
        "members": names,
        "cost_model": "fitted on the calibration half of the test split (128 images, random quarter-size boxes)",
        "run": str(run),
        "defaults": {
            "boundary_weight": CompletionConfig().boundary_weight,
            "realism_weight": CompletionConfig().realism_weight,
        },
        "threads": torch.get_num_threads(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
