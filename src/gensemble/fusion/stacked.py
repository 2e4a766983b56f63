"""stacked: a meta-critic (logistic regression or a random forest) over all the discriminators'
logits, fitted on held-out real data against the proposal mixture, then used for DRS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gensemble.fusion.base import FusionContext, register_fusion
from gensemble.fusion.critic import fit_data, fit_meta_critic
from gensemble.fusion.params import RejectionParams
from gensemble.fusion.rejection import DRSSampler, drs_sampler


@dataclass(frozen=True)
class StackedParams(RejectionParams):
    meta: Literal["logistic", "forest"] = "logistic"  # the meta-critic over all discriminators' logits
    n_trees: int = 100  # forest: number of trees
    min_samples_leaf: int = 20  # forest: larger leaves give smoother probabilities, so finite ratios


@register_fusion("stacked", StackedParams, True)
def fuse_by_stacking(ctx: FusionContext, p: StackedParams) -> DRSSampler:
    """a meta-critic (logistic or random forest) over all discriminators, used for DRS"""
    data = fit_data(ctx, "fusion 'stacked'")
    meta = fit_meta_critic(
        data.judges, data.real, data.fake, p.meta, p.n_trees, p.min_samples_leaf, p.fit_seed
    )
    return drs_sampler(ctx, data.proposal, {"meta": meta}, p, "stacked")
