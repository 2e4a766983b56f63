"""Choosing a fusion's knobs on held-out data (never the evaluation half): the pieces `auto` and the
DRS samplers share.

A knob is chosen by simulating each setting on one pool of proposals, judged once, and scoring what
it would keep against the *choice quarter* of the calibration half, which no judge was trained and
no critic calibrated on:

* `ProposalPool`: each generator's proposals, drawn in fixed seeded chunks so that a smaller pool is
  a prefix of a larger one whatever fusion asked first, with their features and every critic's log
  density ratio, computed once per fusion context;
* `Criterion`: FID on the judges' frozen features (the domain classifier's; on 2-D mixtures the
  mode-kernel features), or MMD² on raw low-dimensional values without either;
* `simulate`: the first n samples a mixture + DRS setting would keep from the pool.

`choose_gamma` uses them to pick DRS's γ percentile, the knob that decides whether rejection helps
or hurts (docs/fusion.md, "Choosing γ").
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gensemble.fusion.base import FusionContext
from gensemble.fusion.critic import RejectionParams, drs_acceptance
from gensemble.fusion.mixture import mean_kernel, median_bandwidths
from gensemble.metrics.fid import feature_stats, frechet_distance
from gensemble.tournament.judges import feature_source, features_of, featurizer

CHUNK = 1000  # proposals per seeded draw


@dataclass(frozen=True)
class Candidate:
    label: str
    weights: tuple[float, ...]  # over the pool's generators
    gamma_percentile: float | None  # None: the mixture as it is
    critic: str = "judges"  # which critic DRS uses (a key of the pool's ratios)


class ProposalPool:
    """Proposals of every generator, their features and critics' log ratios, drawn and judged once."""

    def __init__(self, ctx: FusionContext, seed: int) -> None:
        self.fn = featurizer(feature_source(ctx.ens.cfg.data.name), str(ctx.ens.device))
        self.seed = seed
        self._x: dict[tuple[str, int], torch.Tensor] = {}
        self._feats: dict[tuple[str, int], np.ndarray] = {}
        self._ratios: dict[tuple[str, int, str], np.ndarray] = {}

    def _chunk(self, name: str, g: Any, c: int) -> torch.Tensor:
        if (name, c) not in self._x:
            # Seeded by the generator's name, so its proposals do not depend on who else is pooled.
            gen = torch.Generator().manual_seed(self.seed + 101 + zlib.crc32(name.encode()) + 7919 * c)
            with torch.no_grad():
                self._x[(name, c)] = g.sample(CHUNK, gen).float().cpu()
        return self._x[(name, c)]

    def features(self, name: str, g: Any, size: int) -> np.ndarray:
        """Features (size, d) of the generator's first `size` proposals."""
        out = []
        for c in range(math.ceil(size / CHUNK)):
            if (name, c) not in self._feats:
                x = self._chunk(name, g, c)
                self._feats[(name, c)] = features_of(self.fn, x).double().numpy()
            out.append(self._feats[(name, c)])
        return np.concatenate(out)[:size]

    def ratios(self, name: str, g: Any, size: int, critic: str, log_ratio: Any) -> np.ndarray:
        """The critic's log density ratio for the same proposals (`critic` names it in the cache)."""
        out = []
        for c in range(math.ceil(size / CHUNK)):
            key = (name, c, critic)
            if key not in self._ratios:
                owner = getattr(log_ratio, "__self__", None)
                with torch.no_grad():
                    if getattr(owner, "on_features", False):  # a feature judge: no second featurisation
                        f = torch.from_numpy(self.features(name, g, (c + 1) * CHUNK)[c * CHUNK :]).float()
                        self._ratios[key] = owner.log_ratio_from_features(f).double().numpy()
                    else:
                        self._ratios[key] = log_ratio(self._chunk(name, g, c)).double().numpy()
            out.append(self._ratios[key])
        return np.concatenate(out)[:size]


def critic_key(critic: Any) -> str:
    """The name a critic's ratios are cached under in the pool: one per fitted critic object, so every
    fusion built on it reads the same judged proposals."""
    return f"critic#{id(critic)}"


def proposal_pool(ctx: FusionContext, seed: int) -> ProposalPool:
    """The context's pool for this seed (one per context: every fusion's choice reads the same draws)."""
    return ctx.memo(("proposal-pool", seed), lambda: ProposalPool(ctx, seed))


class Criterion:
    """Distance of a candidate's features to the choice quarter's: FID or multi-scale MMD²."""

    def __init__(self, kind: str, real: np.ndarray, seed: int) -> None:
        self.kind, self.real = kind, real
        if kind == "fid":
            self.stats = feature_stats(real)
        else:
            self.widths = median_bandwidths(real, seed)
            self.rr = mean_kernel(real, real, self.widths, same=True)

    def __call__(self, feats: np.ndarray) -> float:
        if self.kind == "fid":
            mu, sigma = feature_stats(feats)
            return float(frechet_distance(mu, sigma, *self.stats))
        ff = mean_kernel(feats, feats, self.widths, same=True)
        return float(ff + self.rr - 2.0 * mean_kernel(feats, self.real, self.widths, same=False))


def choice_criterion(ctx: FusionContext, pool: ProposalPool, n: int, kind: str, seed: int) -> Criterion:
    """The criterion against the first n images of the choice quarter; kind "auto" is FID, except
    * on raw low-dimensional values (2-D toys), where FID compares only means and covariances and
      ranks a blob between the modes as good;
    * where the features have more dimensions than n / 4 (raw pixels of a small folder), where a
      Fréchet distance is mostly noise and costs minutes a candidate;
    there a multi-scale Gaussian-kernel MMD² is used (unbiased, and cheap in any dimension)."""

    def build() -> Criterion:
        real = features_of(pool.fn, ctx.choose_real[:n]).double().numpy()
        k = kind
        if k == "auto":
            raw = feature_source(ctx.ens.cfg.data.name) == "raw"
            low = raw and real.shape[1] <= 16
            k = "mmd" if low or real.shape[1] > len(real) // 4 else "fid"
        return Criterion(k, real, seed)

    return ctx.memo(("choice-criterion", n, kind, seed), build)


def shift_for(weights: np.ndarray) -> np.ndarray:
    """−log(M w_i): the per-member correction from the uniform mixture's ratio to the w-mixture's."""
    m = len(weights)
    with np.errstate(divide="ignore"):
        return np.where(weights > 0, -np.log(m * np.maximum(weights, 1e-300)), -np.inf)


def simulate(
    cand: Candidate,
    feats: list[np.ndarray],
    all_ratios: dict[str, list[np.ndarray]],
    n: int,
    p: RejectionParams,
    seed: int,
) -> tuple[np.ndarray, float] | None:
    """The features of the first n samples the candidate would keep from the pool and the proposals
    it drew per kept sample, or None when the pool runs out first. Mirrors the samplers: mixture
    draws, then DRS in batches of p.batch_size."""
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
        chunk = torch.as_tensor(lr[start : start + p.batch_size])
        log_m = max(log_m, float(chunk.max()))
        prob = drs_acceptance(chunk, log_m, None, cand.gamma_percentile, p.epsilon).numpy()
        kept.extend((np.nonzero(u[start : start + len(chunk)] < prob)[0] + start).tolist())
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
    it with probability min(1, r'/r). A chain that never moves is rerun from a proposal, as the
    sampler does, so no real start is returned."""
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
            ok = np.log(np.maximum(rng.random(len(cur_r)), 1e-12)) < pooled_r[prop] - cur_r
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


def pool_log_m(ratios: list[np.ndarray], burn_in: int) -> float | None:
    """D̃_M off a pool's (corrected) log ratios: their largest, when the pool holds at least `burn_in`
    proposals of the mixture (it is then a burn-in of it); None where a burn-in must be drawn."""
    pooled = np.concatenate(ratios)
    return float(pooled.max()) if len(pooled) >= burn_in else None


def can_choose(ctx: FusionContext) -> bool:
    """Whether a choice can be scored here: on a domain classifier's features, or on raw values of
    low dimension (2-D toys). FID on the raw pixels of a folder would need a covariance per pixel pair."""
    if feature_source(ctx.ens.cfg.data.name) != "raw":
        return True
    return int(ctx.choose_real[:1].numel()) <= 16


def choose_drs(
    ctx: FusionContext, gens: dict[str, Any], critics: dict[str, Any], p: RejectionParams, what: str
) -> tuple[str, float, dict[str, Any], float | None]:
    """(critic, γ percentile, the record, D̃_M) for DRS of the uniform mixture of `gens`, chosen among
    `critics` (label -> anything with log_ratio) × p.gamma_percentiles by the criterion on the choice
    quarter. Each generator contributes p.pool × n / len(gens) proposals, so the pool does not grow
    with them. D̃_M is the chosen critic's largest ratio in the pool when the pool holds at least
    p.burn_in proposals (it is then a burn-in of the same mixture), else None."""
    n = min(p.n_choose, len(ctx.choose_real))
    pool = proposal_pool(ctx, p.fit_seed)
    crit = choice_criterion(ctx, pool, n, p.criterion, p.fit_seed)
    size = math.ceil(p.pool * n / len(gens))
    feats = [pool.features(name, g, size) for name, g in gens.items()]
    ratios = {
        c: [pool.ratios(name, g, size, critic_key(cr), cr.log_ratio) for name, g in gens.items()]
        for c, cr in critics.items()
    }
    uniform = tuple(1.0 / len(gens) for _ in gens)
    scores: dict[str, float | None] = {}
    settings: dict[str, tuple[str, float]] = {}
    for j, (c, g) in enumerate((c, g) for c in critics for g in p.gamma_percentiles):
        label = f"γ at p{g:g}" + (f", {c} critic" if len(critics) > 1 else "")
        kept = simulate(Candidate(label, uniform, g, c), feats, ratios, n, p, p.fit_seed + 7 * j)
        scores[label], settings[label] = (None if kept is None else round(crit(kept[0]), 6)), (c, g)
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
            "criterion": crit.kind,
            "candidates": scores,
            "why": f"{what}: lowest {crit.kind.upper()} on {n} held-out images no judge or critic was fitted on",
        },
        log_m,
    )
