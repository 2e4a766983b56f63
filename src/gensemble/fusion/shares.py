"""shares: the mixture with the run's own weights (what `gensemble sample` draws without a fusion).

For the partition scheme these are the clusters' shares of the training data, so each specialist is
drawn as often as its part of the data occurs; for boosting (AdaGAN), its mixture weights; for the
others, uniform. Under selection the kept members' weights are renormalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gensemble.fusion.base import FusionContext, register_fusion
from gensemble.fusion.params import FusionParams
from gensemble.fusion.proposal import MixtureSampler


@dataclass(frozen=True)
class SharesParams(FusionParams):
    """shares takes only the shared selection parameters."""


def own_weights(ctx: FusionContext, names: tuple[str, ...] | list[str]) -> np.ndarray:
    """The run's mixture weights of `names` (uniform where the scheme keeps none)."""
    w = ctx.ens.state.mixture_weights
    if w is None:
        return np.ones(len(names))
    return np.array([float(w[ctx.names.index(n)]) for n in names])


@register_fusion("shares", SharesParams, False)
def fuse_by_shares(ctx: FusionContext, p: SharesParams) -> MixtureSampler:
    """mixture with the run's own weights: a partition's cluster shares, boosting's weights, else uniform"""
    names = ctx.selection("fusion 'shares'").generators
    return MixtureSampler(ctx.generators(names), own_weights(ctx, names), ctx.names)
