"""stacked: a meta-critic (logistic regression or a random forest) over all the discriminators'
logits, fitted on held-out real data against the proposal mixture, then used for DRS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from gensemble.calibration import PROB_EPS
from gensemble.fusion.base import FusionContext, register_fusion
from gensemble.fusion.critic import fit_data
from gensemble.fusion.params import RejectionParams
from gensemble.fusion.rejection import DRSSampler, drs_sampler
from gensemble.tournament import all_logits


@dataclass(frozen=True)
class StackedParams(RejectionParams):
    meta: Literal["logistic", "forest"] = "logistic"  # the meta-critic over all discriminators' logits
    n_trees: int = 100  # forest: number of trees
    min_samples_leaf: int = 20  # forest: larger leaves give smoother probabilities, so finite ratios


class MetaCritic:
    """A scikit-learn classifier over every discriminator's logits; its odds are the density ratio."""

    on_features = False  # it reads the discriminators' logits, not frozen features

    def __init__(self, discs: dict[str, nn.Module], model: Any) -> None:
        self.discs, self.model = discs, model

    def prob(self, x: Tensor) -> Tensor:
        feats = all_logits(self.discs, x).T.double().numpy()
        p = torch.from_numpy(self.model.predict_proba(feats)[:, 1]).float()
        # A forest may vote unanimously; 1/(2·trees) keeps its log-odds finite.
        return p.clamp(max(PROB_EPS, 1e-3), 1.0 - max(PROB_EPS, 1e-3))

    def log_ratio(self, x: Tensor) -> Tensor:
        return torch.logit(self.prob(x))


def fit_meta_critic(discs: dict[str, nn.Module], real: Tensor, fake: Tensor, p: StackedParams) -> MetaCritic:
    """Fit the meta-critic on every discriminator's logits for held-out real (1) and proposals (0)."""
    import numpy as np

    x = torch.cat([all_logits(discs, real), all_logits(discs, fake)], dim=1).T.double().numpy()
    y = np.concatenate([np.ones(len(real)), np.zeros(len(fake))])
    if p.meta == "logistic":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    else:
        from sklearn.ensemble import RandomForestClassifier

        model = RandomForestClassifier(
            n_estimators=p.n_trees, min_samples_leaf=p.min_samples_leaf, random_state=p.fit_seed, n_jobs=1
        )
    return MetaCritic(discs, model.fit(x, y))


@register_fusion("stacked", StackedParams, True)
def fuse_by_stacking(ctx: FusionContext, p: StackedParams) -> DRSSampler:
    """a meta-critic (logistic or random forest) over all discriminators, used for DRS"""
    data = fit_data(ctx, p, "fusion 'stacked'")
    meta = fit_meta_critic(data.judges, data.real, data.fake, p)
    return drs_sampler(ctx, data.proposal, {"meta": meta}, p, "stacked")
