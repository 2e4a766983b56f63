"""rejection: discriminator rejection sampling (DRS, Azadi et al. 2019) of the proposal mixture with
the calibrated ensemble critic, its γ chosen on held-out data (fusion/choice.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from gensemble.fusion.base import FusionContext, register_fusion
from gensemble.fusion.choice import choose_gamma
from gensemble.fusion.critic import RejectionParams, RejectionSampler, drs_acceptance, shared_critic
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
    ) -> None:
        super().__init__(proposal, p.batch_size, p.max_proposals, name)
        if p.gamma is None and p.gamma_percentile == "auto":
            raise ValueError("resolve gamma_percentile='auto' with resolve_gamma before sampling")
        self.log_ratio, self.p, self.choice = log_ratio, p, choice
        burn, _ = proposal.draw(p.burn_in, torch.Generator().manual_seed(p.fit_seed + 2))
        self.log_m = float(log_ratio(burn).max())

    def accept(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        lr = self.log_ratio(x)
        self.log_m = max(self.log_m, float(lr.max()))  # the paper keeps raising M as larger ratios appear
        prob = drs_acceptance(lr, self.log_m, self.p.gamma, float(self.p.gamma_percentile), self.p.epsilon)
        return torch.rand(len(x), generator=generator) < prob


def resolve_gamma(
    ctx: FusionContext,
    proposal: MixtureSampler,
    critic_key: str,
    log_ratio: Any,
    p: RejectionParams,
    what: str,
) -> tuple[RejectionParams, dict[str, Any] | None]:
    """p with γ's percentile chosen on the choice quarter when it is "auto" (and no fixed γ is set)."""
    if p.gamma is not None or p.gamma_percentile != "auto":
        return p, None
    gens = dict(zip(proposal.names, proposal.models))
    chosen, choice = choose_gamma(ctx, gens, critic_key, log_ratio, p, what)
    return replace(p, gamma_percentile=chosen), choice


def critic_key(critic: Any) -> str:
    """The name a critic's ratios are cached under in the context's proposal pool (one per object, so
    every fusion built on one fitted critic reads the same judged proposals)."""
    return f"critic#{id(critic)}"


def drs_sampler(
    ctx: FusionContext, proposal: MixtureSampler, critic: Any, p: RejectionParams, name: str
) -> DRSSampler:
    """DRS of `proposal` with `critic` (anything with log_ratio), γ resolved on held-out data."""
    params, choice = resolve_gamma(ctx, proposal, critic_key(critic), critic.log_ratio, p, f"fusion {name!r}")
    return DRSSampler(proposal, critic.log_ratio, params, name, choice)


@register_fusion(
    "rejection",
    RejectionParams,
    True,
    "discriminator rejection sampling with the calibrated ensemble critic (DRS), γ chosen on held-out data",
)
def fuse_by_rejection(ctx: FusionContext, p: RejectionParams) -> DRSSampler:
    proposal, critic = shared_critic(ctx, p, "fusion 'rejection'")
    return drs_sampler(ctx, proposal, critic, p, "rejection")
