"""independent: every member trains alone on its own seed, optionally on a bootstrap resample (bagging)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from gensemble.ensemble.base import SCHEMES, Executor, MemberTask, Scheme
from gensemble.ensemble.state import SchemeState

if TYPE_CHECKING:
    from gensemble.data import Dataset
    from gensemble.ensemble.state import Ensemble
    from gensemble.training.loop import StepHook
    from gensemble.training.member import Member


def bootstrap_weights(n: int, seed: int) -> torch.Tensor:
    """Per-example counts of one bootstrap resample of n examples (Breiman 1996), as sampling weights."""
    rng = torch.Generator().manual_seed(seed)
    idx = torch.randint(n, (n,), generator=rng)
    return torch.bincount(idx, minlength=n).float()


def bagging_weights(ens: Ensemble, member: Member, n: int) -> torch.Tensor | None:
    """The member's bootstrap weights (made once, kept in ens.state.data_weights), or None if not bagged."""
    if not member.cfg.bootstrap:
        return None
    table = ens.state.data_weights
    if member.name not in table:
        table[member.name] = bootstrap_weights(n, member.cfg.seed)
    return table[member.name]


@dataclass(frozen=True)
class IndependentConfig:
    pass


@dataclass
class BaggingState(SchemeState):
    data_weights: dict[str, torch.Tensor] = field(default_factory=dict)  # bagged members' bootstrap counts


@SCHEMES.register("independent", "members train independently, each with its own seed (optionally bagged)")
class Independent(Scheme):
    config = IndependentConfig
    runs_as_tasks = True
    bagging = True
    state_type = BaggingState

    def build(self, ens: Ensemble) -> None:
        ens.state.mixture_weights = torch.full((len(ens.members),), 1.0 / len(ens.members))

    def train(self, ens: Ensemble, data: Dataset, hooks: StepHook, executor: Executor) -> None:
        # One task per member; the executor stacks members of one architecture and skips finished ones.
        tasks = []
        for m in ens.members:
            weights = bagging_weights(ens, m, len(data))
            tasks.append(
                MemberTask(m, ens.cfg.train.steps, None if weights is None else weights.to(data.x.device))
            )
        executor.run(ens, tasks, data, hooks)
