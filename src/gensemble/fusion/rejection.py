"""rejection: discriminator rejection sampling (DRS, Azadi et al. 2019) of the proposal mixture with
the calibrated ensemble critic, its γ chosen on held-out data (fusion/choice.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from gensemble.fusion.base import FusionContext, register_fusion
from gensemble.fusion.choice import can_choose, choose_drs
from gensemble.fusion.critic import (
    RejectionParams,
    RejectionSampler,
    critics_of,
    drs_acceptance,
    shared_critic,
)
from gensemble.fusion.mixture import MixtureSampler


class DRSSampler(RejectionSampler):
    """Discriminator rejection sampling with any log-density-ratio function. `choice` records how γ
    was chosen (None when it was given)."""

    def __init__(
        self,
        proposal: MixtureSampler,
        log_ratio: Any,
        p: RejectionParams,
        name: str,
        choice: dict[str, Any] | None = None,
        log_m: float | None = None,
    ) -> None:
        """`log_m`: D̃_M already known (the largest ratio in the choice's pool of at least `burn_in`
        proposals of this mixture); None draws the burn-in."""
        super().__init__(proposal, p.batch_size, p.max_proposals, name)
        if p.gamma is None and p.gamma_percentile == "auto":
            raise ValueError("resolve gamma_percentile='auto' with resolve_gamma before sampling")
        self.log_ratio, self.p, self.choice = log_ratio, p, choice
        if log_m is None:
            burn, _ = proposal.draw(p.burn_in, torch.Generator().manual_seed(p.fit_seed + 2))
            log_m = float(log_ratio(burn).max())
        self.log_m = log_m

    def accept(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        lr = self.log_ratio(x)
        self.log_m = max(self.log_m, float(lr.max()))  # the paper keeps raising M as larger ratios appear
        prob = drs_acceptance(lr, self.log_m, self.p.gamma, float(self.p.gamma_percentile), self.p.epsilon)
        return torch.rand(len(x), generator=generator) < prob


def drs_sampler(
    ctx: FusionContext,
    proposal: MixtureSampler,
    critics: dict[str, Any],
    p: RejectionParams,
    name: str,
) -> DRSSampler:
    """DRS of `proposal` with one of `critics` (label -> anything with log_ratio; the first is the
    default). With gamma_percentile "auto" (and no fixed γ) the critic and γ are chosen on the choice
    quarter; where no choice can be scored (a folder without a domain classifier) the first critic and
    the paper's 95th percentile are used."""
    if p.gamma is not None or p.gamma_percentile != "auto":
        first = next(iter(critics.values()))
        return DRSSampler(proposal, first.log_ratio, p, name)
    if not can_choose(ctx):
        first = next(iter(critics.values()))
        why = "no domain classifier to score a choice on: the paper's 95th percentile"
        return DRSSampler(proposal, first.log_ratio, replace(p, gamma_percentile=95.0), name, {"why": why})
    gens = dict(zip(proposal.names, proposal.models))
    critic, gamma, choice, log_m = choose_drs(ctx, gens, critics, p, f"fusion {name!r}")
    params = replace(p, gamma_percentile=gamma)
    return DRSSampler(proposal, critics[critic].log_ratio, params, name, choice, log_m)


@register_fusion(
    "rejection",
    RejectionParams,
    True,
    "discriminator rejection sampling with the calibrated ensemble critic (DRS), γ chosen on held-out data",
)
def fuse_by_rejection(ctx: FusionContext, p: RejectionParams) -> DRSSampler:
    proposal, _ = shared_critic(ctx, p, "fusion 'rejection'")
    return drs_sampler(ctx, proposal, critics_of(ctx, p, "fusion 'rejection'"), p, "rejection")
