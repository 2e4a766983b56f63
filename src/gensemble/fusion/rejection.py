"""rejection: discriminator rejection sampling (DRS, Azadi et al. 2019) of the proposal mixture with
the calibrated ensemble critic, its γ (and critic) chosen on held-out data (fusion/choose.py).

`RejectionSampler` is the accept/reject loop every rejecting fusion shares (vote, stacked, snapshots
and auto's DRS candidates); `DRSSampler` is DRS with any critic, over the uniform mixture or, with a
per-member shift of the critic's ratio, over a weighted one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from gensemble.errors import GensembleError
from gensemble.fusion.accept import drs_keep
from gensemble.fusion.base import FusionContext, register_fusion
from gensemble.fusion.choose import can_choose, choose_drs
from gensemble.fusion.critic import critics_of, shared_critic
from gensemble.fusion.params import RejectionParams
from gensemble.fusion.proposal import Critic, MixtureSampler, Refiner
from gensemble.sampling import Samples


class RejectionSampler(Refiner):
    """Draw proposals in batches and keep those `accept_from` passes until n are kept."""

    def __init__(self, proposal: MixtureSampler, batch_size: int, max_proposals: int, name: str) -> None:
        super().__init__(proposal)
        self.batch_size, self.max_proposals, self.name = batch_size, max_proposals, name

    def accept_from(self, x: Tensor, owner: Tensor, generator: torch.Generator | None) -> Tensor:
        """Which of the proposals x (made by members `owner`) are kept."""
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None) -> Samples:
        xs, ids, kept, tried = [], [], 0, 0
        while kept < n:
            if tried >= self.max_proposals * n:
                raise GensembleError(
                    f"fusion {self.name!r} accepted {kept} of {tried} proposals (fewer than the {n} asked for); "
                    "the critics reject nearly everything: loosen the method's parameters or raise fusion.max_proposals"
                )
            x, owner = self.proposal.draw(self.batch_size, generator)
            keep = self.accept_from(x, owner, generator)
            tried += len(x)
            kept += int(keep.sum())
            xs.append(x[keep])
            ids.append(owner[keep])
        self.proposed += tried
        self.accepted += kept
        return Samples(torch.cat(xs)[:n], torch.cat(ids)[:n], list(self.members))


class DRSSampler(RejectionSampler):
    """Discriminator rejection sampling with any critic. `shift` (per member id, or None) corrects the
    uniform mixture's ratio to a weighted mixture's (proposal.shift_for). `choice` records how γ was
    chosen (None when it was given); `log_m` is D̃_M when already known (the largest ratio in the
    choice's pool of at least `burn_in` proposals of this mixture), else the burn-in is drawn."""

    def __init__(
        self,
        proposal: MixtureSampler,
        critic: Critic,
        p: RejectionParams,
        name: str,
        choice: dict[str, Any] | None = None,
        log_m: float | None = None,
        shift: Tensor | None = None,
    ) -> None:
        super().__init__(proposal, p.batch_size, p.max_proposals, name)
        if p.gamma is None and p.gamma_percentile == "auto":
            raise ValueError("DRSSampler needs a γ percentile: choose it with choose_drs (drs_sampler does)")
        self.critic, self.p, self.choice, self.shift = critic, p, choice, shift
        if log_m is None:
            burn, owner = proposal.draw(p.burn_in, torch.Generator().manual_seed(p.fit_seed + 2))
            log_m = float(self._log_ratio(burn, owner).max())
        self.log_m = log_m

    def _log_ratio(self, x: Tensor, owner: Tensor) -> Tensor:
        lr = self.critic.log_ratio(x)
        return lr if self.shift is None else lr + self.shift[owner]

    def accept_from(self, x: Tensor, owner: Tensor, generator: torch.Generator | None) -> Tensor:
        lr = self._log_ratio(x, owner)
        u = torch.rand(len(x), generator=generator)
        keep, self.log_m = drs_keep(
            lr, u, self.log_m, self.p.gamma, float(self.p.gamma_percentile), self.p.epsilon
        )
        return keep


def drs_sampler(
    ctx: FusionContext,
    proposal: MixtureSampler,
    critics: dict[str, Critic],
    p: RejectionParams,
    name: str,
) -> DRSSampler:
    """DRS of `proposal` with one of `critics` (label -> critic; the first is the default). With
    gamma_percentile "auto" (and no fixed γ) the critic and γ are chosen on the choice quarter; where
    no choice can be scored (a folder without a domain classifier) the first critic and the paper's
    95th percentile are used."""
    first = next(iter(critics.values()))
    if p.gamma is not None or p.gamma_percentile != "auto":
        return DRSSampler(proposal, first, p, name)
    if not can_choose(ctx):
        why = "no domain classifier to score a choice on: the paper's 95th percentile"
        return DRSSampler(proposal, first, replace(p, gamma_percentile=95.0), name, {"why": why})
    gens = dict(zip(proposal.names, proposal.models))
    critic, gamma, choice, log_m = choose_drs(ctx, gens, critics, p, f"fusion {name!r}")
    return DRSSampler(proposal, critics[critic], replace(p, gamma_percentile=gamma), name, choice, log_m)


@register_fusion("rejection", RejectionParams, True)
def fuse_by_rejection(ctx: FusionContext, p: RejectionParams) -> DRSSampler:
    """discriminator rejection sampling with the calibrated ensemble critic (DRS), γ chosen on held-out data"""
    proposal, _ = shared_critic(ctx, "fusion 'rejection'")
    return drs_sampler(ctx, proposal, critics_of(ctx, "fusion 'rejection'"), p, "rejection")
