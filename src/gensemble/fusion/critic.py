"""The ensemble critic the critic fusions share, and the data it is fitted on.

Every critic fusion draws proposals from the uniform mixture of the (selected) generators and judges
them with critics fitted against that same mixture, which matters: each member's D was trained
against its own G, so its raw output is no estimate of p_data / p_mixture. Re-fitting on held-out
real data (calibration half) against proposals turns it into one.

The ensemble critic averages the calibrated probabilities of the judges and re-calibrates the
average with one more Platt fit (an average of calibrated probabilities is pulled towards ½ wherever
they disagree). Its odds p / (1 - p) estimate the density ratio p_data / p_mixture.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

import torch
from torch import Tensor, nn

from gensemble.calibration import PROB_EPS, Calibrator, fit_calibrator, fit_platt
from gensemble.fusion.base import FusionContext
from gensemble.fusion.params import CriticParams, FusionParams, RejectionParams
from gensemble.fusion.proposal import MixtureSampler
from gensemble.tournament import all_logits
from gensemble.tournament.judges import FeatureJudge, concrete_kind


# eq=False: a critic is hashed by identity, so the proposal pool can cache its ratios per critic.
@dataclass(eq=False)
class EnsembleCritic:
    """Calibrated judges and, on top, a calibrator of their averaged probability."""

    discs: dict[str, nn.Module]
    calibrators: list[Calibrator]
    combined: Calibrator

    def logits(self, x: Tensor) -> Tensor:
        """Raw logits (N, n) of every judge."""
        return all_logits(self.discs, x)

    def member_probs(self, x: Tensor, logits: Tensor | None = None) -> Tensor:
        """Calibrated P(real) (N, n) of every judge."""
        logits = self.logits(x) if logits is None else logits
        return torch.stack([c.predict_proba(logits[j]) for j, c in enumerate(self.calibrators)])

    def prob(self, x: Tensor, logits: Tensor | None = None) -> Tensor:
        """The ensemble's calibrated P(real) (n,)."""
        return self.combined.predict_proba(torch.logit(self.member_probs(x, logits).mean(0)))

    def log_ratio(self, x: Tensor) -> Tensor:
        """log p_data(x) / p_proposal(x) as the critic estimates it: logit of its probability."""
        return torch.logit(self.prob(x))

    @property
    def on_features(self) -> bool:
        """Whether every judge is a feature judge, so ratios can be read off precomputed features."""
        return all(isinstance(d, FeatureJudge) for d in self.discs.values())

    def log_ratio_from_features(self, feats: Tensor) -> Tensor:
        """log_ratio for samples whose frozen features (those the feature judges use) are known."""
        logits = torch.stack([d.from_features(feats).reshape(-1) for d in self.discs.values()])
        return torch.logit(self.prob(feats, logits))


def fit_ensemble_critic(
    discs: dict[str, nn.Module],
    real: Tensor,
    fake: Tensor,
    calibration: Literal["platt", "isotonic"] = "platt",
) -> EnsembleCritic:
    """Calibrate each judge on real vs fake, then the average of their probabilities."""
    real_logits, fake_logits = all_logits(discs, real), all_logits(discs, fake)
    cals = [fit_calibrator(real_logits[j], fake_logits[j], calibration) for j in range(len(discs))]

    def avg_logit(logits: Tensor) -> Tensor:
        return torch.logit(torch.stack([c.predict_proba(logits[j]) for j, c in enumerate(cals)]).mean(0))

    return EnsembleCritic(discs, cals, fit_platt(avg_logit(real_logits), avg_logit(fake_logits)))


class MetaCritic:
    """A scikit-learn classifier over every judge's logits; its odds are the density ratio (the
    `stacked` fusion's critic, and the `combined` critic of choices over the discriminators and the
    feature judge together)."""

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


def fit_meta_critic(
    discs: dict[str, nn.Module],
    real: Tensor,
    fake: Tensor,
    meta: Literal["logistic", "forest"] = "logistic",
    n_trees: int = 100,
    min_samples_leaf: int = 20,
    seed: int = 0,
) -> MetaCritic:
    """Fit the meta-critic on every judge's logits for held-out real (1) and proposals (0)."""
    import numpy as np

    x = torch.cat([all_logits(discs, real), all_logits(discs, fake)], dim=1).T.double().numpy()
    y = np.concatenate([np.ones(len(real)), np.zeros(len(fake))])
    if meta == "logistic":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    else:
        from sklearn.ensemble import RandomForestClassifier

        model = RandomForestClassifier(
            n_estimators=n_trees, min_samples_leaf=min_samples_leaf, random_state=seed, n_jobs=1
        )
    return MetaCritic(discs, model.fit(x, y))


@dataclass(frozen=True)
class FitKey:
    """What decides a critic's fit data: the selection, the judges, and how much and which data."""

    generators: tuple[str, ...]
    discriminators: tuple[str, ...]
    judges: tuple
    n_calibration: int
    fit_seed: int


@dataclass(frozen=True)
class FitData:
    """The proposal mixture, the judges, and (real, proposal) data to calibrate critics on."""

    key: FitKey
    proposal: MixtureSampler
    judges: dict[str, nn.Module]
    real: Tensor
    fake: Tensor


P = TypeVar("P", bound=FusionParams)


def bound(ctx: FusionContext, kind: type[P]) -> P:
    """The params bound to `ctx` (FusionContext.judged_by) as `kind`: critics read their calibration
    settings, and a choice among critics its `critics`, off them. Any other params there is a
    method's programming error, not a user's input."""
    if not isinstance(ctx.judging, kind):
        raise TypeError(f"this needs {kind.__name__} bound to the context, got {type(ctx.judging).__name__}")
    return ctx.judging


def fit_data(ctx: FusionContext, what: str) -> FitData:
    """The proposal mixture, the judges (fitted once per context), and (real, proposal) data to
    calibrate critics on; built once per context for the same settings."""
    p = bound(ctx, CriticParams)
    sel = ctx.selection(what)
    key = FitKey(
        sel.generators,
        sel.discriminators,
        tuple(p.judge_config.record().values()),
        p.n_calibration,
        p.fit_seed,
    )

    def build() -> FitData:
        proposal = MixtureSampler(ctx.generators(sel.generators), torch.ones(len(sel.generators)), ctx.names)
        judges = ctx.judges_named(sel.discriminators, what)
        # Calibrated on the part of the calibration half the judges were not trained on: calibration
        # on their training data would be over-confident.
        real = ctx.calib_real[: p.n_calibration]
        fake, _ = proposal.draw(len(real), torch.Generator().manual_seed(p.fit_seed + 1))
        return FitData(key, proposal, judges, real, fake)

    return ctx.memo(("fit-data", key), build)


def shared_critic(ctx: FusionContext, what: str) -> tuple[MixtureSampler, EnsembleCritic]:
    """The proposal and the calibrated ensemble critic, fitted once per context and shared by every
    critic fusion with the same selection and calibration."""
    data = fit_data(ctx, what)
    calibration = ctx.judging.calibration
    critic = ctx.memo(
        ("critic", data.key, calibration),
        lambda: fit_ensemble_critic(data.judges, data.real, data.fake, calibration),
    )
    return data.proposal, critic


def with_judges(ctx: FusionContext, kind: str) -> FusionContext:
    """`ctx` with judges of another kind, all else alike."""
    return ctx if kind == ctx.judging.judges else ctx.judged_by(replace(ctx.judging, judges=kind))


def combined_critic(ctx: FusionContext, what: str) -> MetaCritic:
    """One critic over two kinds of signal: a logistic regression on the logits of this fusion's
    judges (the discriminators, which see pixels; fine-tuned copies where this fusion's judge is the
    feature judge) and of the feature judge (frozen features), fitted on the same calibration data
    as the others. Where the two disagree it learns how far to trust each, rather than averaging them."""
    own = fit_data(with_judges(ctx, "finetuned") if ctx.judging.judges == "features" else ctx, what)
    feats = fit_data(with_judges(ctx, "features"), what)
    discs = {**own.judges, **{f"features/{k}": v for k, v in feats.judges.items()}}
    return ctx.memo(
        ("combined-critic", own.key, feats.key),
        lambda: fit_meta_critic(discs, own.real, own.fake, seed=ctx.judging.fit_seed),
    )


def critics_of(ctx: FusionContext, what: str) -> dict[str, EnsembleCritic | MetaCritic]:
    """label -> the calibrated critic for every entry of the bound params' `critics`: "judges" is the
    critic on this fusion's judges, a judge kind the critic on judges of that kind (one critic when
    they agree), "combined" the meta-critic over this fusion's judges and the feature judge together."""
    p = bound(ctx, RejectionParams)
    out: dict[str, EnsembleCritic | MetaCritic] = {}
    kinds: set[str] = set()
    for c in dict.fromkeys(p.critics):
        if c == "combined":
            out[c] = combined_critic(ctx, what)
            continue
        kind = p.judges if c == "judges" else concrete_kind(c, ctx.ens.cfg.data.name)
        if kind not in kinds:
            kinds.add(kind)
            out[c] = shared_critic(with_judges(ctx, kind), what)[1]
    return out
