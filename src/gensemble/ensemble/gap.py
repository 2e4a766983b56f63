"""swap (GAP, Im et al. 2016): GAN pairs train in parallel and exchange discriminators every K steps.

Members pair up in order: (m0, m1), (m2, m3), ... Between swaps each member trains as an ordinary
GAN (so the executor may stack them all). At every K-th step, within each pair, "swap" means that
the two members exchange their whole discriminator: the network (weights and BatchNorm statistics)
together with its optimiser (Adam moments and step count). Generators, their optimisers and the
members' RNG streams stay put. A generator thus faces a critic that was trained against the other
generator, which discourages the pair from settling into one shared mode, and each D ends up having
judged both generators.

After a swap, "m0.D" names the discriminator m0 now holds, so the run folder's names stay stable
and checkpoints need nothing new; the swap count is kept in the scheme state (`swaps`) so that a
resume from a checkpoint taken at a swap step swaps exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from gensemble.config import check_ranges
from gensemble.ensemble.base import SCHEMES, Executor, MemberTask, Scheme
from gensemble.ensemble.state import SchemeState
from gensemble.errors import ConfigError

if TYPE_CHECKING:
    from gensemble.data import Dataset
    from gensemble.ensemble.config import RunConfig
    from gensemble.ensemble.state import Ensemble
    from gensemble.training.loop import StepHook


@dataclass(frozen=True)
class GAPConfig:
    swap_every: int = 100  # K: generator steps between swaps

    def validate(self, path: str = "") -> None:
        check_ranges(self, path, swap_every=(1, None))


def swap_discriminators(a, b) -> None:
    """Exchange two members' discriminators, with their optimisers (moments, step counts) alongside."""
    a.model.D, b.model.D = b.model.D, a.model.D
    a.optimizers["D"], b.optimizers["D"] = b.optimizers["D"], a.optimizers["D"]


@dataclass
class SwapState(SchemeState):
    swaps: int = 0  # discriminator exchanges made so far (each happens once, resume or not)


@SCHEMES.register("swap", "GAP: GAN pairs train in parallel and exchange discriminators every K steps")
class Swap(Scheme):
    config = GAPConfig
    state_type = SwapState
    runs_as_tasks = True
    families = ("gan",)

    def check(self, cfg: RunConfig) -> None:
        super().check(cfg)
        if len(cfg.members) % 2:
            raise ConfigError(
                f"scheme 'swap' pairs members up, so it needs an even number; member {cfg.members[-1].name!r} "
                f"has no partner ({len(cfg.members)} members)"
            )
        for a, b in zip(cfg.members[::2], cfg.members[1::2]):
            if a.model != b.model:
                raise ConfigError(
                    f"scheme 'swap' cannot pair member {b.name!r} with {a.name!r}: their models differ, so their "
                    "discriminators cannot be exchanged; give each pair the same model"
                )

    def build(self, ens: Ensemble) -> None:
        ens.state.mixture_weights = torch.full((len(ens.members),), 1.0 / len(ens.members))

    def train(self, ens: Ensemble, data: Dataset, hooks: StepHook, executor: Executor) -> None:
        k, steps = self.params.swap_every, ens.cfg.train.steps
        pairs = list(zip(ens.members[::2], ens.members[1::2]))
        while True:
            at = min(m.step for m in ens.members)
            # A swap is due at every K-th step reached; the count makes it happen once, resume or not.
            if at % k == 0 and 0 < at < steps and ens.state.swaps < at // k:
                for a, b in pairs:
                    swap_discriminators(a, b)
                ens.state.swaps = at // k
            if at >= steps:
                break
            target = min(steps, (at // k + 1) * k)
            executor.run(ens, [MemberTask(m, target) for m in ens.members], data, hooks)
