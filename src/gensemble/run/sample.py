"""Samples from a trained run: one member, or the run's own mixture (fusions: gensemble.fusion)."""

from __future__ import annotations

from pathlib import Path

import torch

from gensemble.errors import ConfigError
from gensemble.run import load_run
from gensemble.sampling import Samples, mixture_sample


def sample_run(
    run_dir: str | Path,
    n: int,
    seed: int = 0,
    member: str | None = None,
    device: str = "cpu",
    step: int | None = None,
) -> Samples:
    """n samples from one member, or from the run's default mixture (its weights, else uniform)."""
    if n < 1:
        raise ConfigError(f"-n must be at least 1, got {n}")
    ens = load_run(run_dir, device, step)
    names = [m.name for m in ens.members]
    gen = torch.Generator().manual_seed(seed)
    if member is not None:
        model = ens.member(member).model
        # One member asked for by name: its samples, listed under it alone (no mixture, no diversity warning).
        return Samples(model.sample(n, gen).cpu(), torch.zeros(n, dtype=torch.long), [member])
    weights = ens.state.mixture_weights
    weights = torch.as_tensor(weights, dtype=torch.float) if weights is not None else torch.ones(len(names))
    x, ids = mixture_sample([m.model for m in ens.members], weights, n, gen)
    return Samples(x, ids, names)
