"""best: the single generator with the lowest held-out FID (or the best tournament score)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from gensemble.errors import ConfigError
from gensemble.fusion.base import FusionContext, register_fusion
from gensemble.fusion.params import FusionParams
from gensemble.fusion.proposal import MixtureSampler


@dataclass(frozen=True)
class BestParams(FusionParams):
    # How "best" is judged: FID against the choice quarter of the calibration half (held out from
    # every fit and from the evaluation half), or the tournament's S(G). The judges benchmark found the
    # tournament ranks the population well (Spearman 0.95) yet its top pick missed the FID-best of
    # near-equal DCGANs; held-out FID is the direct measure (docs/fusion.md, "best").
    by: Literal["heldout-fid", "tournament"] = "heldout-fid"
    n_rank: int = 1250  # held-out images (and samples per member) for by=heldout-fid

    def _check(self, path: str) -> None:
        if self.n_rank < 50:
            raise ConfigError(f"config key '{path}.n_rank' must be at least 50, got {self.n_rank}")


@register_fusion("best", BestParams, False)
def fuse_best(ctx: FusionContext, p: BestParams) -> MixtureSampler:
    """the single generator with the lowest held-out FID (or the best tournament score)"""
    sel = ctx.selection("fusion 'best'")
    if p.by == "tournament":
        ranking = ctx.table("fusion 'best' with by=tournament").generator_ranking()
    else:
        fids = ctx.heldout_fids(p.n_rank)
        ranking = sorted(fids, key=fids.get)
    best = next(g for g in ranking if g in sel.generators)
    return MixtureSampler(ctx.generators([best]), np.ones(1), ctx.names)
