"""auto: choose a fusion and its settings on held-out data, never on the evaluation half.

Candidates are mixtures over the members, each with and without discriminator rejection sampling
(DRS) at several γ percentiles:

* every member alone (so `auto` is never worse than the best member on the data it chooses on);
* the uniform mixture, and uniform mixtures of the k best members;
* the mixture whose weights minimise FID to the critics' calibration quarter (`learned-weights`);
* the run's own mixture weights where they are not uniform (`shares`: a partition's cluster shares).

All of them are read off one pool of proposals per member, judged once: a sample's features (for
FID) and the ensemble critic's log density ratio log p_data / p_uniform. For a mixture with weights
w the ratio to that mixture is corrected per member, log p_data / q_w ≈ log p_data / p_u − log(M w_i)
for a sample of member i (exact where members' supports do not overlap), so DRS over any candidate
costs no new network evaluations. Each candidate is scored by FID against the choice quarter of the
calibration half, which no judge was trained and no critic calibrated on; the lowest wins. The
sampler reports what it chose and every candidate's FID (`choice`).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from gensemble.data import CHOICE_WANTED
from gensemble.errors import ConfigError
from gensemble.fusion.base import FusionContext, register_fusion
from gensemble.fusion.choose import Candidate, JudgedPool, judge_pool, simulate, simulate_mh
from gensemble.fusion.learned_weights import fid_weights, mmd_weights
from gensemble.fusion.mh import MHParams, MHSampler
from gensemble.fusion.params import RejectionParams
from gensemble.fusion.proposal import MixtureSampler, pool_log_m, shift_for
from gensemble.fusion.rejection import DRSSampler
from gensemble.fusion.shares import own_weights
from gensemble.progress import progress
from gensemble.sampling import Samples


@dataclass(frozen=True)
class AutoParams(RejectionParams):
    # (n_choose, pool and criterion come from ChoiceFields: they are the knobs of the choice, shared
    # with rejection's own choice of γ.)
    gamma_percentiles: tuple[float, ...] = (50.0, 80.0, 90.0, 95.0)  # DRS settings tried
    top_k_choices: tuple[int, ...] = (2, 3)  # uniform mixtures of the k best members tried
    # MH-GAN chain lengths tried on the uniform mixture under every critic (() tries no MH). On the
    # benchmark's Fashion-MNIST runs MH with the feature judge beat DRS on the choice quarter.
    mh_chains: tuple[int, ...] = (10, 20, 40)
    # The most proposals a candidate may draw per returned sample (DRS: 1 / its acceptance on the
    # pool; MH: its chain length). Dearer candidates are scored and reported but not chosen: sampling
    # time grows with it (each proposal is a generator pass and a judge pass).
    max_cost: float = 40.0
    # Seconds the choice may take here: candidates left when it runs out are not scored (the record
    # says which), and the best of those scored is chosen.
    budget_s: float = 600.0

    def drs(self) -> RejectionParams:
        """The part of these settings the simulated choice and the chosen DRS read: every field but
        auto's own (what they are handed instead of all of auto's). The judges, the selection and
        the critics read theirs off the context, which build_fusion bound to these params."""
        return RejectionParams(**{f: getattr(self, f) for f in RejectionParams.__dataclass_fields__})

    def _check(self, path: str) -> None:
        if not self.budget_s > 0:
            raise ConfigError(f"config key '{path}.budget_s' must be positive, got {self.budget_s}")
        if any(k < 1 for k in self.mh_chains):
            raise ConfigError(f"config key '{path}.mh_chains' must be positive, got {list(self.mh_chains)}")
        if self.max_cost < 1:
            raise ConfigError(f"config key '{path}.max_cost' must be at least 1, got {self.max_cost}")
        if any(k < 1 for k in self.top_k_choices):
            raise ConfigError(f"config key '{path}.top_k_choices' must be positive, got {self.top_k_choices}")


class AutoSampler:
    """The chosen candidate's sampler, with what was chosen and why."""

    def __init__(self, inner: Any, choice: dict[str, Any]) -> None:
        self.inner, self.choice = inner, choice
        self.members = inner.members

    @property
    def acceptance_rate(self) -> float | None:
        return self.inner.acceptance_rate

    @property
    def proposed(self) -> int | None:
        """Proposals the chosen sampler drew (None for a plain mixture, which draws what it returns)."""
        return getattr(self.inner, "proposed", None)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Samples:
        return self.inner.sample(n, generator)


def candidates(
    names: list[str],
    member_fids: list[float],
    learned: np.ndarray,
    top_k_choices: tuple[int, ...],
    gamma_percentiles: tuple[float, ...],
    critics: list[str],
    own: np.ndarray | None = None,
) -> list[Candidate]:
    """Every mixture (each member alone, uniform, top-k, learned weights, and the run's own weights
    where they are not uniform), each plain and with DRS at every γ percentile under every critic."""
    m = len(member_fids)
    order = np.argsort(member_fids)
    weights: list[tuple[str, np.ndarray]] = []
    for i in range(m):
        weights.append((names[i], np.eye(m)[i]))
    weights.append(("uniform", np.full(m, 1.0 / m)))
    for k in sorted(set(top_k_choices)):
        if 1 < k < m:
            w = np.zeros(m)
            w[order[:k]] = 1.0 / k
            weights.append((f"top-{k}", w))
    weights.append(("learned-weights", learned))
    if own is not None and not np.allclose(own / own.sum(), 1.0 / m):
        weights.append(("shares", own / own.sum()))  # a partition's cluster shares, boosting's weights
    out = []
    for label, w in weights:
        out.append(Candidate(label, tuple(float(v) for v in w), None))
        for c in critics:
            tag = "" if len(critics) == 1 else f", {c} critic"
            out.extend(
                Candidate(f"{label} + rejection (γ at p{g:g}{tag})", tuple(float(v) for v in w), g, c)
                for g in gamma_percentiles
            )
    return out


@register_fusion("auto", AutoParams, True)
def fuse_automatically(ctx: FusionContext, p: AutoParams) -> AutoSampler:
    """chooses the mixture and DRS setting with the lowest FID on held-out data (never the evaluation half)"""
    drs = p.drs()
    n = min(drs.n_choose, len(ctx.choose_real))
    if n < MIN_CHOOSE:
        return too_few_to_choose(ctx, n)
    started = time.perf_counter()
    judged = judge_pool(ctx, drs, n, "fusion 'auto'")
    board = Board(judged.names, [judged.dist(f[:n]) for f in judged.choice], n, judged.dist.kind, p.max_cost)
    board.label, board.spaces = judged.dist.label, list(judged.dist.names)
    board.budget(started, p.budget_s)
    learned = learned_weights(judged, n)
    cands = candidates(
        judged.names,
        board.member_fids,
        learned,
        p.top_k_choices,
        drs.gamma_percentiles,
        list(judged.critics),
        own_weights(ctx, judged.names),
    )
    line = progress(len(cands) + len(judged.critics) * len(p.mh_chains), "auto", unit="candidate")
    best = score_mixtures(judged, cands, board, drs, n, line)
    mh_best = score_mh(ctx, judged, p.mh_chains, board, drs.fit_seed, n, line)
    line.close()
    board.seconds = round(time.perf_counter() - started, 1)
    if mh_best is not None and mh_best[0] < best[0]:
        return mh_choice(ctx, drs, judged, mh_best, board)
    return mixture_choice(ctx, drs, judged, best, board)


def learned_weights(judged: JudgedPool, n: int) -> np.ndarray:
    """The mixture weights fitted to the calibration quarter on the choice's features: FID where
    the choice is scored by FID, else MMD² with the choice's kernel widths."""
    fakes = [f[: len(judged.fit_real)] for f in judged.feats]
    if judged.fit_dist.kind == "fid":
        return fid_weights(fakes, judged.fit_real)
    return mmd_weights(fakes, judged.fit_real, judged.fit_dist.widths)


def score_mixtures(
    judged: JudgedPool, cands: list[Candidate], board: Board, p: RejectionParams, n: int, line: Any
) -> tuple[float, Candidate]:
    """Simulate and score every mixture candidate (with and without DRS) within the time budget;
    the best one that may be chosen (every member alone is always scored, so one exists)."""
    best: tuple[float, Candidate] | None = None
    for k, cand in enumerate(cands):
        alone = cand.gamma_percentile is None and cand.label in judged.names
        if not alone and board.over(cand.label):
            continue
        kept = simulate(cand, judged.choice, judged.ratios, n, p, p.fit_seed + 7 * k)
        line.update(1)
        if board.add(cand.label, None if kept is None else (judged.dist(kept[0]), kept[1])):
            if best is None or board.scores[cand.label] < best[0]:
                best = (board.scores[cand.label], cand)
    assert best is not None  # every member alone, without rejection, always fits in its pool
    return best


def score_mh(
    ctx: FusionContext,
    judged: JudgedPool,
    chains: tuple[int, ...],
    board: Board,
    seed: int,
    n: int,
    line: Any,
) -> tuple[float, str, int, str] | None:
    """Simulate and score MH-GAN on the uniform mixture for every critic and chain length within the
    budget: (score, critic, chain, label) of the best that may be chosen, or None."""
    best: tuple[float, str, int, str] | None = None
    many = len(judged.critics) > 1
    for c, cr in judged.critics.items():
        if board.over(f"MH with the {c} critic"):
            break
        start_r = cr.log_ratio(ctx.calib_real[:n]).double().numpy()
        for k in chains:
            label = f"uniform + MH (chains of {k}{f', {c} critic' if many else ''})"
            kept = simulate_mh(judged.choice, judged.ratios[c], start_r, k, seed + 11 * k)
            line.update(1)
            if board.add(label, (judged.dist(kept), float(k))):
                if best is None or board.scores[label] < best[0]:
                    best = (board.scores[label], c, k, label)
    return best


@dataclass
class Board:
    """What auto's choice scored: every candidate's criterion and cost, and the members alone."""

    names: list[str]
    member_fids: list[float]
    n: int
    kind: str
    max_cost: float
    scores: dict[str, float | None] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)
    budget_s: float | None = None
    seconds: float | None = None
    stopped_before: str | None = None  # the first candidate left unscored when the budget ran out
    started: float = 0.0
    label: str = ""  # the criterion in words (BlockDistance.label)
    spaces: list[str] = field(default_factory=list)  # the spaces it was compared on

    def budget(self, started: float, budget_s: float) -> None:
        """Start the clock: the choice may take budget_s seconds from `started`."""
        self.started, self.budget_s = started, budget_s

    def over(self, label: str) -> bool:
        """Whether the choice has used its time budget (then `label` and what follows go unscored)."""
        if self.stopped_before is None and time.perf_counter() - self.started > (self.budget_s or 0.0):
            self.stopped_before = label
        return self.stopped_before is not None

    def add(self, label: str, scored: tuple[float, float] | None) -> bool:
        """Record a candidate (None: its pool ran out); whether it may be chosen (within max_cost)."""
        self.scores[label] = None if scored is None else round(scored[0], 6)
        if scored is None:
            return False
        self.costs[label] = round(scored[1], 3)
        return scored[1] <= self.max_cost

    def record(self, chosen: str, fid: float, **what: Any) -> dict[str, Any]:
        """The choice as the sampler reports it: what was chosen, with what, why, among which scores."""
        i = min(range(len(self.names)), key=lambda j: self.member_fids[j])
        best, best_fid = self.names[i], self.member_fids[i]
        return {
            "chosen": chosen,
            "fid_choice": fid,
            "best_member": best,
            "best_member_fid_choice": round(best_fid, 6),
            **what,
            "n_choose": self.n,
            "criterion": self.kind,
            "choice_spaces": self.spaces,
            "candidates": self.scores,
            "proposals_per_sample": self.costs,
            "max_cost": self.max_cost,
            "seconds": self.seconds,
            "budget_s": self.budget_s,
            "within_budget": self.stopped_before is None,
            **({"unscored_from": self.stopped_before} if self.stopped_before else {}),
            "why": (
                f"lowest {self.label or self.kind.upper()} on {self.n} held-out images no judge or critic was fitted on, "
                f"among candidates drawing at most {self.max_cost:g} proposals per sample: {chosen} {fid:.4g} "
                f"against the best member alone ({best}) {best_fid:.4g}"
            ),
        }


# Fewer held-out images than this in the choice quarter and a choice among some 30 candidates would
# follow noise: auto then returns the uniform mixture, unchosen, and says so.
MIN_CHOOSE = CHOICE_WANTED


def too_few_to_choose(ctx: FusionContext, n: int) -> AutoSampler:
    names = ctx.selection("fusion 'auto'").generators
    gens = ctx.generators(names)
    why = (
        f"the choice quarter of the held-out data has {n} images and auto needs {MIN_CHOOSE} to choose "
        "among its candidates, so it returns the uniform mixture without choosing; hold out more "
        "(data.test_fraction) to let it choose"
    )
    warnings.warn(f"fusion 'auto': {why}", stacklevel=2)
    return AutoSampler(
        MixtureSampler(gens, np.full(len(gens), 1.0 / len(gens)), ctx.names),
        {
            "chosen": "uniform",
            "fallback": True,
            "n_choose": n,
            "weights": dict.fromkeys(gens, round(1 / len(gens), 4)),
            "why": why,
        },
    )


def mixture_choice(
    ctx: FusionContext, p: RejectionParams, judged: JudgedPool, best: tuple[float, Candidate], board: Board
) -> AutoSampler:
    """auto's choice when a mixture (with or without DRS) scored lowest."""
    fid, cand = best
    names = board.names
    w = torch.tensor(cand.weights)
    keep = [i for i in range(len(names)) if cand.weights[i] > 0]
    mixture = MixtureSampler({names[i]: judged.proposal.models[i] for i in keep}, w[keep], ctx.names)
    inner: Any = mixture
    if cand.gamma_percentile is not None:
        shift = torch.full((len(ctx.names),), -math.inf)
        corrections = shift_for(np.asarray(cand.weights))
        for i in keep:
            shift[ctx.names.index(names[i])] = float(corrections[i])
        # The candidates are γ percentiles: a fixed γ given to auto plays no part in them.
        params = replace(p, gamma_percentile=cand.gamma_percentile, gamma=None)
        # D̃_M off the pool: the largest corrected ratio among the kept members' proposals.
        corrected = [r + s for r, s in zip(judged.ratios[cand.critic], corrections) if s > -np.inf]
        log_m = pool_log_m(corrected, p.burn_in)
        inner = DRSSampler(mixture, judged.critics[cand.critic], params, "auto", log_m=log_m, shift=shift)
    return AutoSampler(
        inner,
        board.record(
            cand.label,
            fid,
            weights={names[i]: round(cand.weights[i], 4) for i in keep},
            gamma_percentile=cand.gamma_percentile,
            critic=None if cand.gamma_percentile is None else cand.critic,
        ),
    )


def mh_choice(
    ctx: FusionContext,
    p: RejectionParams,
    judged: JudgedPool,
    mh_best: tuple[float, str, int, str],
    board: Board,
) -> AutoSampler:
    """auto's choice when an MH-GAN candidate scored lowest: that chain length and critic."""
    fid, critic, chain, chosen = mh_best
    params = MHParams(n_calibration=p.n_calibration, batch_size=p.batch_size, chain_length=chain)
    inner = MHSampler(judged.proposal, judged.critics[critic], ctx.calib_real, params)
    return AutoSampler(
        inner,
        board.record(
            chosen,
            fid,
            weights={name: round(1 / len(board.names), 4) for name in board.names},
            gamma_percentile=None,
            critic=critic,
            mh_chain=chain,
        ),
    )
