"""One DCGAN member's training loop against a plain PyTorch loop in the style of pytorch/examples'
dcgan/main.py: the same networks (copies of the member's G and D at the same initial weights), the
same Fashion-MNIST training images and batch size, and the same optimiser (Adam, lr 2e-4, betas 0.5).
The plain loop's networks are in PyTorch's default memory layout, as the example builds them; a
second plain row runs them channels-last, as gensemble keeps its convolution weights on a CPU, to
show how much of the gap is the layout.

    python benchmarks/loop_speed.py              # prints a table, writes docs/results/loop_speed.json
    python benchmarks/loop_speed.py --quick      # fewer steps (a smoke test)

The plain loop is the example's: a DataLoader that shuffles the images (in memory, no workers: they
would compete for the two cores), D's real and fake losses backpropagated separately, the fake batch
made once and reused for G, and every loss read with .item() each step as the example prints them.
`gensemble` runs `training.loop.fit_member` (progress bar, hooks, its own RNG streams) once with its
default `reuse_fake: true` and once with `reuse_fake: false` (a second generator pass per step, the
round as it was). The runs alternate in one process, `--rounds` times each, each `--steps` steps
after warm-up; the table keeps each side's median, and speed is plain seconds / our seconds.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from gensemble.data import DataConfig, load_dataset
from gensemble.training.loop import TrainConfig, fit_member
from gensemble.training.member import MemberConfig, build_member

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results" / "loop_speed.json"
MODEL = {"name": "dcgan", "z_dim": 64, "ngf": 48, "ndf": 48}  # the demo's DCGAN
BATCH = 64
GOAL = 1.10
PLAIN = "plain PyTorch (pytorch/examples dcgan)"


def plain_loop(G: nn.Module, D: nn.Module, images: torch.Tensor, steps: int, z_dim: int) -> float:
    """pytorch/examples dcgan/main.py's inner loop for `steps` batches; returns the seconds taken."""
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images), batch_size=BATCH, shuffle=True, drop_last=True
    )
    criterion = nn.BCEWithLogitsLoss()  # D ends in logits here; the example's Sigmoid + BCELoss
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    start, done = time.perf_counter(), 0
    while done < steps:
        for (real,) in loader:
            D.zero_grad()
            label = torch.full((BATCH,), 1.0)
            output = D(real).view(-1)
            err_real = criterion(output, label)
            err_real.backward()
            d_x = output.mean().item()
            fake = G(torch.randn(BATCH, z_dim))
            label.fill_(0.0)
            output = D(fake.detach()).view(-1)
            err_fake = criterion(output, label)
            err_fake.backward()
            d_g_z1 = output.mean().item()
            opt_d.step()
            G.zero_grad()
            label.fill_(1.0)
            output = D(fake).view(-1)
            err_g = criterion(output, label)
            err_g.backward()
            d_g_z2 = output.mean().item()
            opt_g.step()
            _ = (
                err_real.item() + err_fake.item(),
                err_g.item(),
                d_x,
                d_g_z1,
                d_g_z2,
            )  # the example prints these
            done += 1
            if done >= steps:
                break
    return time.perf_counter() - start


def ours(member, data, steps: int) -> float:
    cfg = TrainConfig(steps=member.step + steps, batch_size=BATCH, log_every=10**9)
    start = time.perf_counter()
    fit_member(member, data, cfg)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    steps, rounds = (10, 2) if args.quick else (args.steps, args.rounds)
    torch.set_num_threads(2)
    data = load_dataset(DataConfig(name="fashion-mnist"), "train")
    spec = {"model": MODEL, "seed": 0}
    members = {
        "gensemble (reuse_fake)": build_member(MemberConfig(**spec, reuse_fake=True), data.shape),
        "gensemble (reuse_fake: false)": build_member(MemberConfig(**spec, reuse_fake=False), data.shape),
    }
    first = next(iter(members.values()))
    # The example's networks: the same weights in PyTorch's default (contiguous) layout, as the example
    # builds them; gensemble's own members keep channels-last weights on a CPU (training/member.py).
    G, D = (
        copy.deepcopy(net).to(memory_format=torch.contiguous_format).train()
        for net in (first.model.G, first.model.D)
    )
    plains = {
        PLAIN: (G, D),
        "plain PyTorch, channels-last weights": tuple(
            copy.deepcopy(net).to(memory_format=torch.channels_last) for net in (G, D)
        ),
    }
    for m in members.values():  # warm-up: kernels, allocator, the first Adam state
        ours(m, data, 3)
    for g, d in plains.values():
        plain_loop(g, d, data.x, 3, MODEL["z_dim"])
    times: dict[str, list[float]] = {**{k: [] for k in plains}, **{k: [] for k in members}}
    for r in range(rounds):
        for name, (g, d) in plains.items():
            times[name].append(plain_loop(g, d, data.x, steps, MODEL["z_dim"]))
        for name, m in members.items():
            times[name].append(ours(m, data, steps))
        print(
            f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()),
            file=sys.stderr,
        )
    plain = statistics.median(times[PLAIN])
    rows = []
    for name, t in times.items():
        med = statistics.median(t)
        rows.append(
            {
                "loop": name,
                "median_s": round(med, 3),
                "steps_per_s": round(steps / med, 2),
                "speed_vs_plain": round(plain / med, 3),
            }
        )
    print(
        f"\none DCGAN member ({MODEL['ngf']} wide) on Fashion-MNIST, batch {BATCH}, {steps} steps a run, "
        f"median of {rounds} alternating runs, {torch.get_num_threads()} threads"
    )
    print(f"{'loop':42s} {'median s':>9s} {'steps/s':>8s} {'speed vs plain':>15s}")
    for r in rows:
        print(f"{r['loop']:42s} {r['median_s']:9.3f} {r['steps_per_s']:8.2f} {r['speed_vs_plain']:14.3f}x")
    ratio = next(r["speed_vs_plain"] for r in rows if r["loop"] == "gensemble (reuse_fake)")
    result = {
        "model": MODEL,
        "batch": BATCH,
        "steps": steps,
        "rounds": rounds,
        "threads": torch.get_num_threads(),
        "rows": rows,
        "times": {k: [round(x, 4) for x in v] for k, v in times.items()},
        "goals": [
            {
                "name": "loop_vs_plain",
                "target": f"gensemble's loop at >= {GOAL}x a plain PyTorch loop's speed",
                "measured": ratio,
                "met": ratio >= GOAL,
            }
        ],
    }
    if not args.quick:
        OUT.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
