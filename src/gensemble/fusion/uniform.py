"""uniform: the mixture that picks a member uniformly at random."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gensemble.fusion.base import FusionContext, register_fusion
from gensemble.fusion.params import FusionParams
from gensemble.fusion.proposal import MixtureSampler


@dataclass(frozen=True)
class UniformParams(FusionParams):
    """uniform takes only the shared selection parameters."""


@register_fusion("uniform", UniformParams, False)
def fuse_uniformly(ctx: FusionContext, p: UniformParams) -> MixtureSampler:
    """mixture picking a member uniformly at random"""
    gens = ctx.generators(ctx.selection("fusion 'uniform'").generators)
    return MixtureSampler(gens, np.ones(len(gens)), ctx.names)
