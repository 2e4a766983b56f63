"""What every fusion method shares: its Sampler protocol, its common parameters, the FusionContext it
is built from, and the registry. Methods import from here; the package imports the methods."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor

from gensemble.calibration import CalibrationMethod
from gensemble.errors import ConfigError
from gensemble.registry import Registry
from gensemble.sampling import Samples
from gensemble.tournament import (
    ScoreTable,
    Scoring,
    Selection,
    heldout_halves,
    matching_tournament,
    require_discriminators,
    score,
    select,
)

if TYPE_CHECKING:
    from gensemble.data import Dataset
    from gensemble.run import Ensemble


NO_DISCRIMINATOR_HINT = (
    "use a method that needs none (uniform, learned-weights, average) or train GAN members"
)


class Sampler(Protocol):
    """What every fusion method builds."""

    members: list[str]  # names that Samples.member_ids index into
    acceptance_rate: float | None

    def sample(self, n: int, generator: torch.Generator | None = None) -> Samples: ...


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

    def validate(self, path: str = "") -> None:
        p = f"{path}." if path else ""
        for key in ("top_k", "top_k_discriminators"):
            if getattr(self, key) < 0:
                raise ConfigError(f"config key '{p}{key}' must be non-negative, got {getattr(self, key)}")
        if self.n_score < 2:
            raise ConfigError(f"config key '{p}n_score' must be at least 2, got {self.n_score}")

    @property
    def selects(self) -> bool:
        return bool(
            self.top_k
            or self.top_k_discriminators
            or self.min_score is not None
            or self.min_discriminator_score is not None
        )


@dataclass
class FusionContext:
    """The ensemble, its held-out real data (halved: calibration, evaluation) and, lazily and once
    each, what fusions share: the tournament, the proposal and fit data, the fitted ensemble critic.

    Build one per job and every fusion built from it reuses these (`memo`); a tournament saved by
    `gensemble score` for this checkpoint and these settings is read instead of recomputed.
    """

    ens: Ensemble
    real: Tensor  # all held-out real data
    cal_real: Tensor  # the half that methods fit on
    eval_real: Tensor  # the half the tournament scores on
    seed: int = 0
    _memo: dict[tuple, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, ens: Ensemble, real_heldout: Dataset | Tensor, seed: int = 0) -> FusionContext:
        real = real_heldout if isinstance(real_heldout, Tensor) else real_heldout.x
        cal, ev = heldout_halves(real, seed)
        return cls(ens, real, cal, ev, seed)

    def memo(self, key: tuple, build: Callable[[], Any]) -> Any:
        """`build()` once per key for the life of this context (fits are deterministic in their key)."""
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.ens.members]

    def table(self, params: FusionParams, what: str) -> ScoreTable:
        """The tournament's ScoreTable (computed once per scoring settings, or read from the run)."""
        require_discriminators(self.ens, what, NO_DISCRIMINATOR_HINT)
        key = ("tournament", params.scoring, params.calibration, params.n_score)
        return self.memo(key, lambda: self._tournament(params))

    def _tournament(self, params: FusionParams) -> ScoreTable:
        saved = matching_tournament(
            self.ens.run_dir, self.ens.step, self.seed, params.scoring, params.calibration, params.n_score
        )
        if saved is not None:
            return ScoreTable.from_json(saved)
        # The same seed, so the tournament's calibration half is this context's calibration half.
        return score(self.ens, self.real, params.scoring, params.n_score, params.calibration, self.seed)

    def selection(self, params: FusionParams, what: str) -> Selection:
        """Generators and discriminators that take part, after top-k and threshold selection."""
        if not params.selects:
            return Selection(tuple(self.names), tuple(self.ens.discriminators()))
        table = self.table(params, f"{what} with selection (top_k / min_score)")
        return select(
            table, params.top_k, params.top_k_discriminators, params.min_score, params.min_discriminator_score
        )

    def generators(self, names: tuple[str, ...] | list[str]) -> dict[str, Any]:
        gens = self.ens.generators()
        return {n: gens[n] for n in names}

    def discriminators(self, names: tuple[str, ...] | list[str]) -> dict[str, Any]:
        discs = self.ens.discriminators()
        return {n: discs[n] for n in names}


@dataclass(frozen=True)
class FusionEntry:
    """One registered method: its parameter dataclass, builder, and whether it needs discriminators."""

    config: type
    build: Callable[[FusionContext, Any], Sampler]
    needs_discriminators: bool
    doc: str = ""


FUSIONS: Registry[FusionEntry] = Registry("fusion method")


def register_fusion(name: str, config: type, needs_discriminators: bool, doc: str) -> Callable:
    """Decorator for a builder `(ctx, params) -> Sampler`."""

    def deco(build: Callable[[FusionContext, Any], Sampler]) -> Callable[[FusionContext, Any], Sampler]:
        FUSIONS.register(name, doc)(FusionEntry(config, build, needs_discriminators, doc))
        return build

    return deco
