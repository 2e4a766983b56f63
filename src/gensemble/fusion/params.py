"""Fusion parameters as a few flat groups of fields, composed by each method.

A method's params class lists the groups it takes as bases (at most two levels deep) and adds its own fields:
`RejectionParams(DRSFields, ChoiceFields, CriticParams)`, `MHParams(ChoiceFields, CriticParams)`, `CriticParams(CriticFields, FusionParams)`. Every group checks its own
fields in `_check`; `validate` runs the `_check` of every class a params class is made of, so no
method re-states another's checks. Keys stay flat: `--set fusion.n_choose=500` whatever group holds it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Self

from gensemble.calibration import CalibrationMethod
from gensemble.errors import ConfigError
from gensemble.metrics import FEATURES
from gensemble.tournament import Scoring
from gensemble.tournament.judges import JUDGE_KINDS, JudgeConfig, JudgeKind, concrete_kind


def _key(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _at_least(obj: object, path: str, **lows: float) -> None:
    for key, low in lows.items():
        if getattr(obj, key) < low:
            raise ConfigError(
                f"config key '{_key(path, key)}' must be at least {low:g}, got {getattr(obj, key)}"
            )


@dataclass(frozen=True)
class FusionParams:
    """Parameters every method shares: which members take part, and how the tournament scores them.

    Selection (top_k, min_score, ...) runs the tournament (gensemble.tournament.score) first and so
    needs discriminators; with the defaults every member takes part and no tournament runs unless
    the method itself needs scores.
    """

    top_k: int = 0  # keep the k best generators by tournament score (0: all)
    min_score: float | None = None  # drop generators whose tournament score is below this
    top_k_discriminators: int = 0  # keep the k best discriminators (critic methods; 0: all)
    min_discriminator_score: float | None = None  # drop discriminators scoring below this
    scoring: Scoring = "matrix"  # tournament scoring used for selection, `weighted` and `best`
    calibration: CalibrationMethod = "platt"  # how each discriminator is calibrated
    n_score: int = 2000  # samples per generator (and held-out real) for the tournament
    fit_seed: int = 0  # seed of everything fitted when the sampler is built
    # The judges of the tournament and of every critic method (gensemble.tournament.judges): copies of
    # the discriminators fine-tuned against samples pooled from every generator, a feature classifier,
    # the discriminators as trained, or "default": the feature classifier where the dataset has a
    # domain classifier, fine-tuned copies elsewhere (judges.default_kind).
    judges: JudgeKind = "default"
    judge_steps: int = 50
    judge_lr: float = 1e-3
    self_judgement: bool = True  # whether a member's own judge counts towards its generator's S(G)

    @property
    def judge_config(self) -> JudgeConfig:
        return JudgeConfig(self.judges, self.judge_steps, self.judge_lr, self_judgement=self.self_judgement)

    def on(self, dataset: str) -> Self:
        """These params with judges="default" made concrete for `dataset` (judges.default_kind)."""
        return replace(self, judges=concrete_kind(self.judges, dataset))

    @property
    def needs_discriminators(self) -> bool:
        """Whether the judges are made from the members' discriminators (a feature judge is not);
        "default" counts as needing them until `on` makes it concrete."""
        return self.judges != "features"

    @property
    def selects(self) -> bool:
        return bool(
            self.top_k
            or self.top_k_discriminators
            or self.min_score is not None
            or self.min_discriminator_score is not None
        )

    def validate(self, path: str = "") -> None:
        """Every group's `_check`, base groups first."""
        for cls in reversed(type(self).__mro__):
            check = cls.__dict__.get("_check")
            if check is not None:
                check(self, path)

    def _check(self, path: str) -> None:
        self.judge_config.validate(path)
        _at_least(self, path, top_k=0, top_k_discriminators=0, n_score=2)


@dataclass(frozen=True)
class CriticFields:
    """Methods that refine the proposal mixture with a calibrated critic."""

    n_calibration: int = 5000  # held-out real examples (and as many proposals) the critics are calibrated on
    batch_size: int = 1000  # proposals drawn and judged at a time
    max_proposals: int = 200  # give up after this many proposals per requested sample

    def _check(self, path: str) -> None:
        _at_least(self, path, n_calibration=10, batch_size=1, max_proposals=1)


@dataclass(frozen=True)
class DRSFields:
    """Discriminator rejection sampling (Azadi et al. 2019)."""

    burn_in: int = 10_000  # proposals used to estimate D̃_M before sampling (the paper's burn-in)
    gamma: float | None = None  # fixed shift γ; None: the per-batch percentile below
    # γ = this percentile of F(x) in each batch. The paper fixes the 95th; "auto" chooses it among
    # `gamma_percentiles` on the choice quarter of the calibration half (fusion/choose.py), because
    # with an imperfect critic a fixed aggressive γ made a single model worse (docs/fusion.md).
    gamma_percentile: float | Literal["auto"] = "auto"
    epsilon: float = 1e-6  # keeps log(1 − exp(·)) finite at the maximum
    gamma_percentiles: tuple[float, ...] = (0.0, 50.0, 80.0, 90.0, 95.0)  # the γ settings a choice tries
    # The critics tried with each γ: "judges" (this fusion's judge settings) and other judge kinds. On
    # Fashion-MNIST the feature judge made DRS help where the fine-tuned Ds made it hurt (chosen on the
    # choice quarter; docs/fusion.md, "Choosing γ and the critic"). "combined": one logistic
    # meta-critic over this fusion's judges and the feature judge together.
    critics: tuple[str, ...] = ("judges", "features")

    def _check(self, path: str) -> None:
        _at_least(self, path, burn_in=1)
        if self.gamma_percentile != "auto" and not 0.0 <= self.gamma_percentile <= 100.0:
            raise ConfigError(
                f"config key '{_key(path, 'gamma_percentile')}' must be auto or in [0, 100], got {self.gamma_percentile}"
            )
        if self.epsilon <= 0:
            raise ConfigError(f"config key '{_key(path, 'epsilon')}' must be positive, got {self.epsilon}")
        if not self.gamma_percentiles or any(not 0 <= g < 100 for g in self.gamma_percentiles):
            raise ConfigError(
                f"config key '{_key(path, 'gamma_percentiles')}' must be in [0, 100), got {list(self.gamma_percentiles)}"
            )
        bad = [c for c in self.critics if c not in ("judges", "combined", *JUDGE_KINDS)]
        if bad or not self.critics:
            raise ConfigError(
                f"config key '{_key(path, 'critics')}' takes judges, combined, {', '.join(JUDGE_KINDS)}; got {list(self.critics)}"
            )


def concrete(params: object, dataset: str) -> object:
    """A method's params with judges="default" made concrete for `dataset`; params without judge
    settings (`average`'s) as they are."""
    return params.on(dataset) if isinstance(params, FusionParams) else params


@dataclass(frozen=True)
class ChoiceFields:
    """Settings chosen on the choice quarter of the calibration half (fusion/choose.py)."""

    n_choose: int = 1250  # images of the choice quarter a choice is scored on (and samples per setting)
    pool: int = 8  # proposals simulated per choice, as a multiple of n_choose
    # What settings are compared by: FID on the judges' frozen features (the domain classifier's; the
    # mode-kernel features of a 2-D mixture), or, on other raw low-dimensional values, a multi-scale
    # Gaussian-kernel MMD² (auto: that rule).
    criterion: Literal["auto", "fid", "mmd"] = "auto"
    # The feature spaces a choice is compared on: "judges" (the judges' frozen features) and any
    # registered extractor. With several, a candidate's score is the geometric mean of its distances
    # on each (metrics.distance.BlockDistance), so a setting one space favours and another does not is
    # not chosen. Adding "pixels" (16×16 pixel statistics) was measured on the quality benchmark's
    # three Fashion-MNIST seeds and not adopted: auto's margin over the best member fell on Inception
    # in every seed (docs/results/choice_spaces_ab.json). Spaces that need images are skipped on 2-D
    # points; any space named here is one the fusion steered by, and is not graded on.
    choice_spaces: tuple[str, ...] = ("judges",)

    def _check(self, path: str) -> None:
        _at_least(self, path, n_choose=50)
        if not 2 <= self.pool <= 100:
            raise ConfigError(f"config key '{_key(path, 'pool')}' must be in [2, 100], got {self.pool}")
        spaces = self.choice_spaces
        if (
            not spaces
            or len(set(spaces)) < len(spaces)
            or any(s != "judges" and s not in FEATURES for s in spaces)
        ):
            raise ConfigError(
                f"config key '{_key(path, 'choice_spaces')}' takes judges or feature extractors (gensemble list features), "
                f"each once; got {list(spaces)}"
            )


@dataclass(frozen=True)
class CriticParams(CriticFields, FusionParams):
    """The critic methods without a choice scored on held-out data (vote, ddls)."""


@dataclass(frozen=True)
class RejectionParams(DRSFields, ChoiceFields, CriticParams):
    """DRS with its γ (and critic) chosen on held-out data: rejection, and what builds on it."""
