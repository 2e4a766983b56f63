"""What a run will cost in time, estimated before it runs by timing a few steps of throwaway members."""

from __future__ import annotations

import time

import torch

from gensemble.ensemble import build_ensemble
from gensemble.training.loop import STEPS


def estimate_seconds(cfg, data, device: torch.device, probe_steps: int = 3) -> float:
    """Seconds the members' own training steps will take here, timed on throwaway copies.

    A fresh ensemble (built from the same seeds, then discarded, so the run itself is untouched)
    makes one warm-up and `probe_steps` timed steps per member; the rest is extrapolated. Scheme
    overheads (GMAN's extra critics, AdaGAN's ratio phase) are not included.
    """
    ens = build_ensemble(cfg, data.shape, device)
    total = 0.0
    for m in ens.members:
        step = STEPS[m.family]
        step(m, data, cfg.train.batch_size)
        start = time.perf_counter()
        for _ in range(probe_steps):
            step(m, data, cfg.train.batch_size)
        total += (time.perf_counter() - start) / probe_steps * cfg.train.steps
    return total


def describe_seconds(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.0f} days"
