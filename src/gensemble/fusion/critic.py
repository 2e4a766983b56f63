"""Refining a mixture's samples with the ensemble's discriminators: what the critic fusions share
(the ensemble critic, fit data, the rejection loop) and rejection (DRS) and vote; stacked.py, mh.py
and ddls.py build on it.

All four draw proposals from the uniform mixture of the (selected) generators and judge them with
critics fitted against that same mixture, which matters: each member's D was trained against its
own G, so its raw output is no estimate of p_data / p_mixture. Re-fitting on held-out real data
(calibration half) against proposals turns it into one.

The ensemble critic (rejection, mh) averages the calibrated probabilities of the discriminators and
re-calibrates the average with one more Platt fit (an average of calibrated probabilities is pulled
towards ½ wherever they disagree). Its odds p / (1 - p) estimate the density ratio p_data / p_mixture.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import torch
from torch import Tensor, nn

from gensemble.calibration import Calibrator, fit_calibrator, fit_platt
from gensemble.errors import ConfigError, GensembleError
from gensemble.fusion.base import FusionContext, FusionParams, register_fusion
from gensemble.fusion.mixture import MixtureSampler
from gensemble.sampling import Samples
from gensemble.tournament import all_logits
from gensemble.tournament.judges import JUDGE_KINDS, FeatureJudge


@dataclass(frozen=True)
class CriticParams(FusionParams):
    """Shared by the critic methods."""

    n_calibration: int = 5000  # held-out real examples (and as many proposals) the critics are calibrated on
    batch_size: int = 1000  # proposals drawn and judged at a time
    max_proposals: int = 200  # give up after this many proposals per requested sample

    def validate(self, path: str = "") -> None:
        super().validate(path)
        for key, low in (("n_calibration", 10), ("batch_size", 1), ("max_proposals", 1)):
            if getattr(self, key) < low:
                raise ConfigError(
                    f"config key '{path}.{key}' must be at least {low}, got {getattr(self, key)}"
                )


@dataclass
class EnsembleCritic:
    """Calibrated discriminators and, on top, a calibrator of their averaged probability."""

    discs: dict[str, nn.Module]
    calibrators: list[Calibrator]
    combined: Calibrator

    def logits(self, x: Tensor) -> Tensor:
        """Raw logits (N, n) of every discriminator."""
        return all_logits(self.discs, x)

    def member_probs(self, x: Tensor, logits: Tensor | None = None) -> Tensor:
        """Calibrated P(real) (N, n) of every discriminator."""
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
    """Calibrate each discriminator on real vs fake, then the average of their probabilities."""
    real_logits, fake_logits = all_logits(discs, real), all_logits(discs, fake)
    cals = [fit_calibrator(real_logits[j], fake_logits[j], calibration) for j in range(len(discs))]

    def avg_logit(logits: Tensor) -> Tensor:
        return torch.logit(torch.stack([c.predict_proba(logits[j]) for j, c in enumerate(cals)]).mean(0))

    return EnsembleCritic(discs, cals, fit_platt(avg_logit(real_logits), avg_logit(fake_logits)))


def proposal_and_fit_data(
    ctx: FusionContext, p: CriticParams, what: str
) -> tuple[MixtureSampler, dict, Tensor, Tensor]:
    """The proposal mixture, the judges (fitted once per context), and (real, proposal) data to
    calibrate critics on; built once per context for the same settings."""
    sel = ctx.selection(p, what)
    key = ("fit-data", sel.generators, sel.discriminators, p.n_calibration, p.fit_seed)
    key += tuple(p.judge_config.record().values())
    return ctx.memo(key, lambda: _fit_data(ctx, p, sel, what))


def shared_critic(ctx: FusionContext, p: CriticParams, what: str) -> tuple[MixtureSampler, EnsembleCritic]:
    """The proposal and the calibrated ensemble critic, fitted once per context and shared by every
    critic fusion with the same selection and calibration."""
    proposal, discs, real, fake = proposal_and_fit_data(ctx, p, what)
    key = ("critic", tuple(discs), len(real), p.fit_seed, p.calibration, id(fake))
    return proposal, ctx.memo(key, lambda: fit_ensemble_critic(discs, real, fake, p.calibration))


def critics_of(ctx: FusionContext, p: RejectionParams, what: str) -> dict[str, EnsembleCritic]:
    """label -> the calibrated ensemble critic for every entry of p.critics: "judges" is the critic on
    this fusion's judges, a judge kind the critic on judges of that kind (one critic when they agree)."""
    out, kinds = {}, set()
    for c in dict.fromkeys(p.critics):
        kind = p.judges if c == "judges" else c
        if kind not in kinds:
            kinds.add(kind)
            out[c] = shared_critic(ctx, p if kind == p.judges else replace(p, judges=kind), what)[1]
    return out


def _fit_data(
    ctx: FusionContext, p: CriticParams, sel: Any, what: str
) -> tuple[MixtureSampler, dict, Tensor, Tensor]:
    proposal = MixtureSampler(ctx.generators(sel.generators), torch.ones(len(sel.generators)), ctx.names)
    discs = ctx.judges_named(p, sel.discriminators, what)
    # Calibrated on the part of the calibration half the judges were not trained on: calibration on
    # their training data would be over-confident.
    real = ctx.calib_real[: p.n_calibration]
    fake, _ = proposal.draw(len(real), torch.Generator().manual_seed(p.fit_seed + 1))
    return proposal, discs, real, fake


# --- rejection sampling: the shared accept/reject loop ---------------------------------------------
class RejectionSampler:
    """Draw proposals in batches and keep those `accept` passes until n are kept."""

    def __init__(self, proposal: MixtureSampler, batch_size: int, max_proposals: int, name: str) -> None:
        self.proposal, self.batch_size, self.max_proposals, self.name = (
            proposal,
            batch_size,
            max_proposals,
            name,
        )
        self.members = proposal.members
        self.proposed = 0
        self.accepted = 0

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.proposed if self.proposed else None

    def accept(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def accept_from(self, x: Tensor, owner: Tensor, generator: torch.Generator | None) -> Tensor:
        """`accept` for samples whose member ids are known (a method may correct for its member)."""
        return self.accept(x, generator)

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


def drs_acceptance(
    log_ratio: Tensor, log_m: float, gamma: float | None = None, percentile: float = 95.0, eps: float = 1e-6
) -> Tensor:
    """DRS acceptance probabilities (Azadi et al. 2019, eq. 8):

    F(x) = D̃(x) − D̃_M − log(1 − exp(D̃(x) − D̃_M − ε)) − γ,  p(accept) = σ(F(x)),

    with D̃ the critic's log density ratio and D̃_M its maximum. γ shifts the acceptance rate; by
    default it is set for each batch to the `percentile`-th percentile of F (as in the paper).
    """
    delta = (log_ratio - log_m).clamp(max=0.0)
    f = delta - torch.log1p(-torch.exp(delta - eps))
    shift = torch.quantile(f.double(), percentile / 100.0).item() if gamma is None else gamma
    return torch.sigmoid(f - shift)


@dataclass(frozen=True)
class RejectionParams(CriticParams):
    burn_in: int = 10_000  # proposals used to estimate D̃_M before sampling (the paper's burn-in)
    gamma: float | None = None  # fixed shift γ; None: the per-batch percentile below
    # γ = this percentile of F(x) in each batch. The paper fixes the 95th; "auto" chooses it among
    # `gamma_percentiles` on the choice quarter of the calibration half (fusion/choice.py), because
    # with an imperfect critic a fixed aggressive γ made a single model worse (docs/fusion.md).
    gamma_percentile: float | Literal["auto"] = "auto"
    gamma_percentiles: tuple[float, ...] = (0.0, 50.0, 80.0, 90.0, 95.0)  # the settings "auto" tries
    n_choose: int = 1250  # images of the choice quarter a choice is scored on (and samples per setting)
    pool: int = 8  # proposals simulated per choice, as a multiple of n_choose
    # What settings are compared by: FID on the judges' frozen features (the domain classifier's; the
    # mode-kernel features of a 2-D mixture), or, on other raw low-dimensional values, a multi-scale
    # Gaussian-kernel MMD² (auto: that rule).
    criterion: Literal["auto", "fid", "mmd"] = "auto"
    # The critics "auto" tries with each γ: "judges" (this fusion's judge settings) and other judge
    # kinds. On Fashion-MNIST the feature judge made DRS help where the fine-tuned Ds made it hurt
    # (chosen on the choice quarter; docs/fusion.md, "Choosing γ and the critic").
    critics: tuple[str, ...] = ("judges", "features")
    epsilon: float = 1e-6  # keeps log(1 − exp(·)) finite at the maximum

    def validate(self, path: str = "") -> None:
        super().validate(path)
        if self.burn_in < 1:
            raise ConfigError(f"config key '{path}.burn_in' must be at least 1, got {self.burn_in}")
        if self.gamma_percentile != "auto" and not 0.0 <= self.gamma_percentile <= 100.0:
            raise ConfigError(
                f"config key '{path}.gamma_percentile' must be auto or in [0, 100], got {self.gamma_percentile}"
            )
        if not self.gamma_percentiles or any(not 0 <= g < 100 for g in self.gamma_percentiles):
            raise ConfigError(
                f"config key '{path}.gamma_percentiles' must be in [0, 100), got {list(self.gamma_percentiles)}"
            )
        if self.n_choose < 50:
            raise ConfigError(f"config key '{path}.n_choose' must be at least 50, got {self.n_choose}")
        if not 2 <= self.pool <= 100:
            raise ConfigError(f"config key '{path}.pool' must be in [2, 100], got {self.pool}")
        if self.epsilon <= 0:
            raise ConfigError(f"config key '{path}.epsilon' must be positive, got {self.epsilon}")
        bad = [c for c in self.critics if c not in ("judges", *JUDGE_KINDS)]
        if bad or not self.critics:
            raise ConfigError(
                f"config key '{path}.critics' takes judges, {', '.join(JUDGE_KINDS)}; got {list(self.critics)}"
            )


# --- vote -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VoteParams(CriticParams):
    quorum: int = 0  # accept votes a proposal needs; 0 = a strict majority of the discriminators
    threshold: float = 0.5  # a discriminator votes accept when its calibrated P(real) exceeds this

    def validate(self, path: str = "") -> None:
        super().validate(path)
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

    def accept(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        votes = (self.critic.member_probs(x) > self.threshold).sum(0)
        return votes >= self.quorum


@register_fusion(
    "vote", VoteParams, True, "each discriminator votes accept/reject; a majority (or quorum) passes"
)
def fuse_by_vote(ctx: FusionContext, p: VoteParams) -> VoteSampler:
    proposal, critic = shared_critic(ctx, p, "fusion 'vote'")
    n_discs = len(critic.discs)
    if p.quorum > n_discs:
        raise ConfigError(f"fusion.quorum={p.quorum} is larger than the number of discriminators ({n_discs})")
    quorum = p.quorum or n_discs // 2 + 1
    return VoteSampler(proposal, critic, quorum, p.threshold, p)


__all__ = [
    "EnsembleCritic",
    "RejectionParams",
    "RejectionSampler",
    "VoteSampler",
    "drs_acceptance",
    "fit_ensemble_critic",
]
