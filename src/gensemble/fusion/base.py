"""What every fusion method shares: its Sampler protocol, its common parameters, the FusionContext it
is built from, and the registry. Methods import from here; the package imports the methods."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor

from gensemble.fusion.params import FusionParams, concrete
from gensemble.metrics.distance import ReferenceDistance, fid_or_mmd
from gensemble.metrics.features import feature_map, feature_source, features_of
from gensemble.registry import Registry
from gensemble.sampling import Samples
from gensemble.tournament import (
    JudgeSet,
    ScoreTable,
    Selection,
    heldout_halves,
    keep_judges,
    make_judges,
    matching_tournament,
    require_discriminators,
    score,
    select,
)
from gensemble.tournament.judges import concrete_kind, judge_names, judge_split

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
    made_judges: list[JudgeSet] = field(default_factory=list)  # every judge set fitted or read here
    # How the judges, the tournament, the selection and the critics are made: the params of the
    # fusion being built (build_fusion binds them with `judged_by`), so a method's own steps need not
    # carry them down to the tournament.
    judging: FusionParams = field(default_factory=FusionParams)

    @classmethod
    def build(cls, ens: Ensemble, real_heldout: Dataset | Tensor, seed: int = 0) -> FusionContext:
        real = real_heldout if isinstance(real_heldout, Tensor) else real_heldout.x
        cal, ev = heldout_halves(real, seed)
        return cls(ens, real, cal, ev, seed, judging=FusionParams().on(ens.cfg.data.name))

    def judged_by(self, params: Any) -> FusionContext:
        """This context, sharing everything fitted so far, with the judge, tournament, selection and
        critic settings of `params` (a method without them, `average`, keeps the defaults)."""
        if not isinstance(params, FusionParams):
            return self
        return replace(self, judging=params.on(self.ens.cfg.data.name))

    def memo(self, key: tuple, build: Callable[[], Any]) -> Any:
        """`build()` once per key for the life of this context (fits are deterministic in their key)."""
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.ens.members]

    # The calibration half is used in three parts, so that nothing is chosen on the data it was fitted
    # on: the first half trains the judges, then a quarter calibrates the critics and a quarter is
    # where `auto` compares its candidates. The evaluation half is never used to fit or to choose.
    @property
    def calib_real(self) -> Tensor:
        """Where critics are calibrated (the judges never trained on it)."""
        rest = judge_split(self.cal_real)[1]
        return rest if len(rest) < 4 else rest[: len(rest) // 2]

    @property
    def choose_real(self) -> Tensor:
        """Where `auto` compares its candidates (no judge trained and no critic calibrated on it)."""
        rest = judge_split(self.cal_real)[1]  # too few to split: the same images (a tiny folder)
        return rest if len(rest) < 4 else rest[len(rest) // 2 :]

    def judges(self, what: str = "judging") -> dict[str, Any]:
        """The fitted judges (name -> network x -> logit), fitted once per context and judge settings."""
        cfg = self.judging.judge_config
        if self.judging.needs_discriminators:
            require_discriminators(self.ens, what, NO_DISCRIMINATOR_HINT)
        key = ("judges", cfg.kind, cfg.steps, cfg.lr, cfg.batch)
        return self.memo(key, lambda: self._made(make_judges(self.ens, self.cal_real, cfg, self.seed)))

    def _made(self, made: JudgeSet) -> dict[str, Any]:
        self.made_judges.append(made)
        return made.nets

    def keep_judges(self) -> None:
        """Save the judges fitted here that are worth keeping (the writer that built this context
        calls it: score, evaluate); a reader's context keeps nothing."""
        if self.ens.run_dir is not None:
            for made in self.made_judges:
                keep_judges(self.ens.run_dir, made)

    def heldout_fids(self, n: int) -> dict[str, float]:
        """Each member's FID against the choice quarter of the calibration half (n images at most),
        on the judges' frozen features (metrics.features.feature_source: the domain classifier, the
        mode-kernel features on 2-D mixtures, else raw values); once per n. Where the features
        outnumber the images 4 to 1 (raw pixels of a small folder) it is the kernel MMD² instead
        (metrics.distance.fid_or_mmd): lower is better either way."""
        return self.memo(("heldout-fid", n), lambda: self._heldout_fids(n))

    def _heldout_fids(self, n: int) -> dict[str, float]:
        fn = feature_map(feature_source(self.ens.cfg.data.name), str(self.ens.device))
        real = features_of(fn, self.choose_real[:n]).double().numpy()
        fid = ReferenceDistance(fid_or_mmd(real.shape[1], len(real)), real, self.seed)
        out = {}
        for i, (name, g) in enumerate(self.ens.generators().items()):
            x = g.sample(min(n, len(self.choose_real)), torch.Generator().manual_seed(self.seed + 211 + i))
            out[name] = fid(features_of(fn, x.float().cpu()).double().numpy())
        return out

    def judges_named(self, names: tuple[str, ...] | list[str], what: str) -> dict[str, Any]:
        judges = self.judges(what)
        return {n: judges[n] for n in names}

    def table(self, what: str) -> ScoreTable:
        """The tournament's ScoreTable (computed once per scoring and judge settings, or read from the run)."""
        params = self.judging
        if params.needs_discriminators:
            require_discriminators(self.ens, what, NO_DISCRIMINATOR_HINT)
        cfg = params.judge_config
        key = ("tournament", params.scoring, params.calibration, params.n_score, *cfg.record().values())
        return self.memo(key, lambda: self._tournament(what))

    def _tournament(self, what: str) -> ScoreTable:
        params = self.judging
        cfg = params.judge_config
        saved = matching_tournament(
            self.ens.run_dir,
            self.ens.step,
            self.seed,
            params.scoring,
            params.calibration,
            params.n_score,
            cfg.record(),
            [m.name for m in self.ens.members],
        )
        if saved is not None:
            return ScoreTable.from_json(saved)
        # The same seed, so the tournament's calibration half is this context's calibration half.
        fitted = self.judges(what)
        return score(
            self.ens, self.real, params.scoring, params.n_score, params.calibration, self.seed, cfg, fitted
        )

    def selection(self, what: str) -> Selection:
        """Generators and judges that take part, after top-k and threshold selection."""
        params = self.judging
        if not params.selects:
            return Selection(tuple(self.names), judge_names(params.judges, self.ens.discriminators()))
        table = self.table(f"{what} with selection (top_k / min_score)")
        return select(
            table, params.top_k, params.top_k_discriminators, params.min_score, params.min_discriminator_score
        )

    def generators(self, names: tuple[str, ...] | list[str]) -> dict[str, Any]:
        gens = self.ens.generators()
        return {n: gens[n] for n in names}


@dataclass(frozen=True)
class FusionEntry:
    """One registered method: its parameter dataclass, builder, and whether it needs discriminators."""

    config: type
    build: Callable[[FusionContext, Any], Sampler]
    needs_discriminators: bool
    doc: str = ""


FUSIONS: Registry[FusionEntry] = Registry("fusion method")

# What steers a fusion, as feature-space names an evaluation grades on (see `steered_by`).
DISCRIMINATORS = "discriminators"  # the members' (fine-tuned) discriminators: networks on the pixels


def judge_space(kind: str, dataset: str) -> str:
    """The space a kind of judge steers by: the feature judge's frozen features, or the discriminators."""
    return choice_space(dataset) if concrete_kind(kind, dataset) == "features" else DISCRIMINATORS


def choice_space(dataset: str) -> str:
    """The space choices (auto's candidates, rejection's γ, best's held-out FID) are compared on:
    the judges' frozen features (metrics.features.feature_source), named as the registry names it."""
    source = feature_source(dataset)
    if source.startswith("modes:"):
        return "modes"
    return "pixels" if source == "raw" else source


def steered_by(name: str, params: Any, dataset: str) -> tuple[str, ...]:
    """The feature spaces that shaped fusion `name`'s samples with `params` on `dataset`: whatever a
    critic, a weight, a choice or a selection was fitted or compared on. A row graded on one of these
    grades itself (Kynkäänniemi et al., ICLR 2023); `evaluate` marks it and never headlines it.

    Read off the parameters every method shares, so a new method is covered by what it inherits:
    judges (critic methods, `weighted`, tournament selection), choices on the judges' features
    (auto, rejection's γ, best by held-out FID), and learned weights' own `features`."""
    spaces: set[str] = set()
    params = concrete(params, dataset)
    critic = get_fusion_entry(name).needs_discriminators and getattr(params, "refine", "") != "none"
    if critic or getattr(params, "selects", False) or name == "weighted":
        spaces.add(judge_space(params.judges, dataset))
    for kind in getattr(params, "critics", ()) if critic else ():
        # The combined critic reads discriminators (fine-tuned where the judges are the feature
        # judge) beside the feature judge.
        for k in ("finetuned", "features") if kind == "combined" else (kind,):
            spaces.add(judge_space(params.judges if k == "judges" else k, dataset))
    # A choice on the choice quarter: auto's, rejection's γ, mh's chain length.
    chooses = name == "auto" or "auto" in (
        getattr(params, "gamma_percentile", None),
        getattr(params, "chain_length", None),
    )
    if critic and chooses:
        spaces.add(choice_space(dataset))
        if choice_space(dataset) != "modes":  # a 2-D toy's choice skips the image spaces
            spaces.update(s for s in getattr(params, "choice_spaces", ()) if s != "judges")
    if name == "best":
        spaces.add(
            choice_space(dataset) if params.by == "heldout-fid" else judge_space(params.judges, dataset)
        )
    if name == "learned-weights":
        spaces.add("pixels" if params.features == "raw" else params.features)
    return tuple(sorted(spaces))


def self_graded(steers: tuple[str, ...] | list[str], graded_on: str) -> bool:
    """Whether a row steered by `steers` grades itself on the space `graded_on`: the same space, or
    pixels for a row the discriminators, which see the raw pixels, steered (2-D points are graded by
    geometry, mode counts and distances, which no network computes)."""
    return graded_on in steers or (graded_on == "pixels" and DISCRIMINATORS in steers)


def get_fusion_entry(name: str) -> FusionEntry:
    return FUSIONS.get(name)


def register_fusion(name: str, config: type, needs_discriminators: bool) -> Callable:
    """Decorator for a builder `(ctx, params) -> Sampler`; the first line of its docstring is the
    one-line description `gensemble list fusions` shows."""

    def deco(build: Callable[[FusionContext, Any], Sampler]) -> Callable[[FusionContext, Any], Sampler]:
        doc = (build.__doc__ or "").strip().split("\n")[0]
        FUSIONS.register(name, doc)(FusionEntry(config, build, needs_discriminators, doc))
        return build

    return deco
