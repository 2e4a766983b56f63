"""independent: every member trains alone on its own seed, optionally on a bootstrap resample (bagging)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gensemble.ensemble import SCHEMES, Scheme
from gensemble.train import fit_member


def bootstrap_weights(n: int, seed: int) -> torch.Tensor:
    """Per-example counts of one bootstrap resample of n examples (Breiman 1996), as sampling weights."""
    rng = torch.Generator().manual_seed(seed)
    idx = torch.randint(n, (n,), generator=rng)
    return torch.bincount(idx, minlength=n).float()


@dataclass(frozen=True)
class IndependentConfig:
    pass


@SCHEMES.register("independent", "members train independently, each with its own seed (optionally bagged)")
class Independent(Scheme):
    config = IndependentConfig

    def train(self, ens, data, hooks) -> None:
        for member in ens.members:
            weights = None
            if member.cfg.bootstrap:
                key = f"data_weights.{member.name}"
                if key not in ens.state:
                    ens.state[key] = bootstrap_weights(len(data), member.cfg.seed)
                weights = ens.state[key].to(data.x.device)
            fit_member(member, data, ens.cfg.train, hooks, weights)
