"""vote: each judge of the ensemble critic votes accept or reject on a proposal of the mixture; a
majority (or a quorum) keeps it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gensemble.errors import ConfigError
from gensemble.fusion.base import FusionContext, register_fusion
from gensemble.fusion.critic import EnsembleCritic, shared_critic
from gensemble.fusion.params import CriticParams
from gensemble.fusion.proposal import MixtureSampler
from gensemble.fusion.rejection import RejectionSampler


@dataclass(frozen=True)
class VoteParams(CriticParams):
    quorum: int = 0  # accept votes a proposal needs; 0 = a strict majority of the discriminators
    threshold: float = 0.5  # a discriminator votes accept when its calibrated P(real) exceeds this

    def _check(self, path: str) -> None:
        if self.quorum < 0:
            raise ConfigError(f"config key '{path}.quorum' must be non-negative, got {self.quorum}")
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"config key '{path}.threshold' must be in (0, 1), got {self.threshold}")


class VoteSampler(RejectionSampler):
    def __init__(
        self, proposal: MixtureSampler, critic: EnsembleCritic, quorum: int, threshold: float, p: VoteParams
    ) -> None:
        super().__init__(proposal, p.batch_size, p.max_proposals, "vote")
        self.critic, self.quorum, self.threshold = critic, quorum, threshold

    def accept_from(self, x: Tensor, owner: Tensor, generator: torch.Generator | None) -> Tensor:
        votes = (self.critic.member_probs(x) > self.threshold).sum(0)
        return votes >= self.quorum


@register_fusion("vote", VoteParams, True)
def fuse_by_vote(ctx: FusionContext, p: VoteParams) -> VoteSampler:
    """each discriminator votes accept/reject; a majority (or quorum) passes"""
    proposal, critic = shared_critic(ctx, "fusion 'vote'")
    n_discs = len(critic.discs)
    if p.quorum > n_discs:
        raise ConfigError(f"fusion.quorum={p.quorum} is larger than the number of discriminators ({n_discs})")
    quorum = p.quorum or n_discs // 2 + 1
    return VoteSampler(proposal, critic, quorum, p.threshold, p)
