"""Choosing a fusion's settings on held-out data (never the evaluation half): what `auto` and the DRS
samplers share.

A setting is chosen by simulating it on one pool of proposals, judged once (proposal.ProposalPool),
and scoring what it would keep against the *choice quarter* of the calibration half, which no judge
was trained and no critic calibrated on:

* `choice_distance`: FID on the judges' frozen features (the domain classifier's; on 2-D mixtures
  the mode-kernel features), or MMD² on raw low-dimensional values without either
  (metrics.distance.ReferenceDistance);
* `simulate`: the first n samples a mixture + DRS setting would keep from the pool;
* `simulate_mh`: where MH-GAN's chains would end on the pool.

Both simulations call the samplers' own acceptance rules (accept.py). `choose_drs` uses them to pick
DRS's critic and γ percentile, the knob that decides whether rejection helps or hurts
(docs/fusion.md, "Choosing γ").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from gensemble.fusion.accept import drs_keep, mh_accepts
from gensemble.fusion.base import FusionContext
from gensemble.fusion.critic import critics_of, shared_critic
from gensemble.fusion.params import ChoiceFields, RejectionParams
from gensemble.fusion.proposal import Critic, MixtureSampler, ProposalPool, pool_log_m, shift_for
from gensemble.metrics.distance import BlockDistance, ReferenceDistance, fid_or_mmd
from gensemble.metrics.features import feature_map, feature_source, features_of


@dataclass(frozen=True)
class Candidate:
    label: str
    weights: tuple[float, ...]  # over the pool's generators
    gamma_percentile: float | None  # None: the mixture as it is
    critic: str = "judges"  # which critic DRS uses (a key of the pool's ratios)


def proposal_pool(ctx: FusionContext) -> ProposalPool:
    """The context's pool (one per context, drawn with its seed: every fusion's choice reads the same
    draws), on the judges' frozen features."""
    space = feature_source(ctx.ens.cfg.data.name)
    return ctx.memo(("proposal-pool", ctx.seed), lambda: ProposalPool(space, str(ctx.ens.device), ctx.seed))


def choice_spaces(ctx: FusionContext, pool: ProposalPool, p: ChoiceFields) -> list[str]:
    """The spaces p's choice is compared on, "judges" made the pool's space; spaces that need images
    are skipped where the data are not images (2-D points)."""
    images = ctx.choose_real.dim() == 4
    out: list[str] = []
    for s in p.choice_spaces:
        s = pool.space if s == "judges" else s
        if s not in out and (images or s == pool.space):
            out.append(s)
    return out or [pool.space]


def choice_features(pool: ProposalPool, spaces: list[str], name: str, g: Any, size: int) -> np.ndarray:
    """A generator's first `size` proposals on every choice space, side by side (BlockDistance's input)."""
    return np.hstack([pool.features_on(s, name, g, size) for s in spaces])


def choice_distance(ctx: FusionContext, pool: ProposalPool, n: int, p: ChoiceFields) -> BlockDistance:
    """The distance to the first n images of the choice quarter on p's choice spaces. On each, kind
    "auto" (p.criterion) is FID, except
    * on raw low-dimensional values (2-D toys), where FID compares only means and covariances and
      ranks a blob between the modes as good;
    * where the features have more dimensions than n / 4 (raw pixels of a small folder, 16×16
      pixels against a small choice quarter), where a Fréchet distance is mostly noise and costs
      minutes a candidate;
    there a multi-scale Gaussian-kernel MMD² is used (unbiased, and cheap in any dimension)."""
    spaces = choice_spaces(ctx, pool, p)

    def build() -> BlockDistance:
        parts, dims = [], []
        for space in spaces:
            if space == pool.space:
                real = pool.features_of(ctx.choose_real[:n])
            else:
                real = (
                    features_of(feature_map(space, str(ctx.ens.device)), ctx.choose_real[:n]).double().numpy()
                )
            k = p.criterion
            if k == "auto":
                low = space == "raw" and real.shape[1] <= 16
                k = "mmd" if low else fid_or_mmd(real.shape[1], len(real))
            parts.append(ReferenceDistance(k, real, ctx.seed))
            dims.append(real.shape[1])
        return BlockDistance(spaces, parts, dims)

    return ctx.memo(("choice-distance", n, p.criterion, tuple(spaces), ctx.seed), build)


def simulate(
    cand: Candidate,
    feats: list[np.ndarray],
    all_ratios: dict[str, list[np.ndarray]],
    n: int,
    p: RejectionParams,
    seed: int,
) -> tuple[np.ndarray, float] | None:
    """The features of the first n samples the candidate would keep from the pool and the proposals
    it drew per kept sample, or None when the pool runs out first: mixture draws, then DRS in
    batches of p.batch_size, as DRSSampler does."""
    rng = np.random.default_rng(seed)
    w = np.asarray(cand.weights)
    sizes = [len(f) for f in feats]
    if cand.gamma_percentile is None:
        counts = rng.multinomial(n, w)
        if any(c > s for c, s in zip(counts, sizes)):
            return None
        return np.concatenate([f[:c] for f, c in zip(feats, counts) if c]), 1.0
    shift = shift_for(w)
    # A stream of proposals from the w-mixture, taken in order from each member's pool, up to the
    # first draw of a member whose pool is spent.
    length = sum(sizes)
    owners = rng.choice(len(w), size=length, p=w)
    idx = np.empty(length, dtype=int)
    for o in range(len(w)):
        where = np.nonzero(owners == o)[0]
        idx[where] = np.arange(len(where))
    spent = idx >= np.asarray(sizes)[owners]
    length = int(np.argmax(spent)) if spent.any() else length
    owners, idx = owners[:length], idx[:length]
    rows = np.cumsum([0, *sizes[:-1]])[owners] + idx  # positions in the members' pools, concatenated
    lr = np.concatenate(all_ratios[cand.critic])[rows] + shift[owners]
    log_m, kept = float(lr[: p.burn_in].max()), []
    u = rng.random(length)
    for start in range(0, length, p.batch_size):
        chunk = slice(start, start + p.batch_size)
        keep, log_m = drs_keep(
            torch.as_tensor(lr[chunk]),
            torch.as_tensor(u[chunk]),
            log_m,
            None,
            cand.gamma_percentile,
            p.epsilon,
        )
        kept.extend((np.nonzero(keep.numpy())[0] + start).tolist())
        if len(kept) >= n:
            last = kept[n - 1]  # the stream position of the n-th kept: what n samples cost to draw
            return np.concatenate(feats)[rows[np.asarray(kept[:n])]], (last + 1) / n
    return None


def simulate_mh(
    feats: list[np.ndarray],
    ratios: list[np.ndarray],
    start_ratios: np.ndarray,
    chain: int,
    seed: int,
) -> np.ndarray:
    """The features of where MH-GAN's independent chains (fusion/mh.py) end, one per start: each of
    `chain` steps proposes a draw of the uniform mixture (from the pool, with replacement) and accepts
    it as MHSampler does (accept.mh_accepts). A chain that never moves is rerun from a proposal, as
    the sampler does, so no real start is returned."""
    rng = np.random.default_rng(seed)
    pooled_f, pooled_r = np.concatenate(feats), np.concatenate(ratios)
    owner = np.concatenate([np.full(len(f), i) for i, f in enumerate(feats)])
    per = np.array([len(f) for f in feats], dtype=float)
    weight = (1.0 / len(feats)) / per[owner]  # every member equally likely, whatever its pool's size
    weight /= weight.sum()

    def run(cur_r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos, moved = np.full(len(cur_r), -1), np.zeros(len(cur_r), dtype=bool)
        for _ in range(chain):
            prop = rng.choice(len(pooled_r), size=len(cur_r), p=weight)
            u = torch.as_tensor(rng.random(len(cur_r)))
            ok = mh_accepts(u, torch.as_tensor(pooled_r[prop]), torch.as_tensor(cur_r)).numpy()
            pos[ok], cur_r = prop[ok], np.where(ok, pooled_r[prop], cur_r)
            moved |= ok
        return pos, moved

    pos, moved = run(np.asarray(start_ratios, dtype=np.float64).copy())
    stuck = ~moved
    if stuck.any():
        first = rng.choice(len(pooled_r), size=int(stuck.sum()), p=weight)
        again, _ = run(pooled_r[first].copy())
        pos[stuck] = np.where(again >= 0, again, first)
    return pooled_f[pos]


@dataclass(frozen=True)
class JudgedPool:
    """What a choice among mixtures and refinements reads, drawn and judged once: the uniform
    proposal over the selected members, the critics, each member's pooled proposals as features and
    as every critic's log ratios, and the distance to the choice quarter."""

    proposal: MixtureSampler
    critics: dict[str, Critic]
    feats: list[np.ndarray]  # per member, (p.pool · n, d) on the judges' features
    ratios: dict[str, list[np.ndarray]]  # critic label -> per member
    fit_dist: ReferenceDistance  # to the choice quarter on the judges' features (learned weights' kind)
    fit_real: np.ndarray  # the calibration quarter's features (what mixture weights are fitted to)
    choice: list[np.ndarray]  # per member, the same proposals on every choice space side by side
    dist: BlockDistance  # what candidates are scored by: to the choice quarter on the choice spaces

    @property
    def names(self) -> list[str]:
        return list(self.proposal.names)


def judge_pool(ctx: FusionContext, p: RejectionParams, n: int, what: str) -> JudgedPool:
    """The judged pool for a choice scored on the first n images of the choice quarter: p.pool × n
    proposals from each member the context's selection keeps, judged by every critic of its
    judging settings (critic.critics_of)."""
    proposal, _ = shared_critic(ctx, what)
    crits = critics_of(ctx, what)
    pool = proposal_pool(ctx)
    size = p.pool * n
    members = list(zip(proposal.names, proposal.models))
    dist = choice_distance(ctx, pool, n, p)
    on_judges = choice_distance(ctx, pool, n, replace(p, choice_spaces=("judges",))).parts[0]
    return JudgedPool(
        proposal,
        crits,
        [pool.features(name, g, size) for name, g in members],
        {c: [pool.ratios(name, g, size, cr) for name, g in members] for c, cr in crits.items()},
        on_judges,
        pool.features_of(ctx.calib_real[: p.n_calibration]),
        [choice_features(pool, dist.names, name, g, size) for name, g in members],
        dist,
    )


def can_choose(ctx: FusionContext) -> bool:
    """Whether a choice can be scored here: on a domain classifier's features, or on raw values of
    low dimension (2-D toys). FID on the raw pixels of a folder would need a covariance per pixel pair."""
    if feature_source(ctx.ens.cfg.data.name) != "raw":
        return True
    return int(ctx.choose_real[:1].numel()) <= 16


def shared_pool(
    ctx: FusionContext, p: ChoiceFields, gens: list[tuple[str, Any]]
) -> tuple[int, ProposalPool, BlockDistance, int, list[np.ndarray]]:
    """What a choice over the uniform mixture of `gens` reads: n (the choice quarter's images it is
    scored on), the pool, the distance, proposals per generator (p.pool × n shared among them, so the
    pool does not grow with them) and their features on the choice spaces."""
    n = min(p.n_choose, len(ctx.choose_real))
    pool = proposal_pool(ctx)
    dist = choice_distance(ctx, pool, n, p)
    size = math.ceil(p.pool * n / len(gens))
    return n, pool, dist, size, [choice_features(pool, dist.names, name, g, size) for name, g in gens]


def choose_drs(
    ctx: FusionContext, gens: dict[str, Any], critics: dict[str, Critic], p: RejectionParams, what: str
) -> tuple[str, float, dict[str, Any], float | None]:
    """(critic, γ percentile, the record, D̃_M) for DRS of the uniform mixture of `gens`, chosen among
    `critics` × p.gamma_percentiles by the distance to the choice quarter. Each generator contributes
    p.pool × n / len(gens) proposals, so the pool does not grow with them. D̃_M is the chosen critic's
    largest ratio in the pool when the pool holds at least p.burn_in proposals (it is then a burn-in
    of the same mixture), else None."""
    n, pool, dist, size, feats = shared_pool(ctx, p, list(gens.items()))
    ratios = {c: [pool.ratios(name, g, size, cr) for name, g in gens.items()] for c, cr in critics.items()}
    uniform = tuple(1.0 / len(gens) for _ in gens)
    scores: dict[str, float | None] = {}
    settings: dict[str, tuple[str, float]] = {}
    for j, (c, g) in enumerate((c, g) for c in critics for g in p.gamma_percentiles):
        label = f"γ at p{g:g}" + (f", {c} critic" if len(critics) > 1 else "")
        kept = simulate(Candidate(label, uniform, g, c), feats, ratios, n, p, p.fit_seed + 7 * j)
        scores[label], settings[label] = (None if kept is None else round(dist(kept[0]), 6)), (c, g)
    fitting = {k: v for k, v in scores.items() if v is not None}
    # When the pool cannot feed even the loosest setting, the most accepting one is kept.
    label = min(fitting, key=fitting.get) if fitting else min(settings, key=lambda k: settings[k][1])
    critic, gamma = settings[label]
    log_m = pool_log_m(ratios[critic], p.burn_in)
    return (
        critic,
        gamma,
        {
            "chosen": label,
            "critic": critic,
            "gamma_percentile": gamma,
            "n_choose": n,
            "criterion": dist.kind,
            "choice_spaces": dist.names,
            "candidates": scores,
            "why": f"{what}: lowest {dist.label} on {n} held-out images no judge or critic was fitted on",
        },
        log_m,
    )


def choose_chain(
    ctx: FusionContext,
    proposal: MixtureSampler,
    critic: Critic,
    p: ChoiceFields,
    chains: tuple[int, ...],
    seed: int,
    what: str,
) -> tuple[int, dict[str, Any]]:
    """(chain length, the record) for MH-GAN on the uniform mixture `proposal` with `critic`: the
    length among `chains` whose simulated chains (simulate_mh, from the calibration quarter's
    images, as the sampler starts them) end closest to the choice quarter. Each generator contributes
    p.pool × n / len(generators) proposals, so the pool does not grow with them."""
    gens = list(zip(proposal.names, proposal.models))
    n, pool, dist, size, feats = shared_pool(ctx, p, gens)
    ratios = [pool.ratios(name, g, size, critic) for name, g in gens]
    with torch.no_grad():
        start = critic.log_ratio(ctx.calib_real[:n]).double().numpy()
    scores = {
        f"chains of {k}": round(dist(simulate_mh(feats, ratios, start, k, seed + 11 * k)), 6)
        for k in sorted(set(chains))
    }
    label = min(scores, key=scores.get)
    return int(label.rsplit(" ", 1)[1]), {
        "chosen": label,
        "n_choose": n,
        "criterion": dist.kind,
        "choice_spaces": dist.names,
        "candidates": scores,
        "why": f"{what}: lowest {dist.label} on {n} held-out images no judge or critic was fitted on",
    }
