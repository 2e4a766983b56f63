"""auto: choose a fusion and its settings on held-out data, never on the evaluation half.

Candidates are mixtures over the members, each with and without discriminator rejection sampling
(DRS) at several γ percentiles:

* every member alone (so `auto` is never worse than the best member on the data it chooses on);
* the uniform mixture, and uniform mixtures of the k best members;
* the mixture whose weights minimise FID to the critics' calibration quarter (`learned-weights`).

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
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from gensemble.errors import ConfigError
from gensemble.fusion.base import FusionContext, register_fusion
from gensemble.fusion.critic import RejectionParams, RejectionSampler, drs_acceptance, shared_critic
from gensemble.fusion.mixture import MixtureSampler, fid_weights, mean_kernel, median_bandwidths, mmd_weights
from gensemble.metrics.fid import feature_stats, frechet_distance
from gensemble.sampling import Samples
from gensemble.tournament.judges import JUDGE_KINDS, feature_source, features_of, featurizer


@dataclass(frozen=True)
class AutoParams(RejectionParams):
    n_choose: int = 1250  # images of the choice quarter used (and samples per candidate)
    pool: int = 8  # proposals per member, as a multiple of n_choose
    gamma_percentiles: tuple[float, ...] = (50.0, 80.0, 90.0, 95.0)  # DRS settings tried
    top_k_choices: tuple[int, ...] = (2, 3)  # uniform mixtures of the k best members tried
    # Critics DRS is tried with: "judges" (this fusion's judge settings) and other judge kinds. The
    # fine-tuning length is a knob too, so it is chosen here, on held-out data, like γ.
    critics: tuple[str, ...] = ("judges",)
    # What candidates are compared by: FID on the dataset's domain-classifier features, or, on raw
    # low-dimensional values (2-D toys), a multi-scale Gaussian-kernel MMD², since FID there compares
    # only means and covariances and ranks a blob between the modes as good. auto: that rule.
    criterion: Literal["auto", "fid", "mmd"] = "auto"

    def validate(self, path: str = "") -> None:
        super().validate(path)
        if self.n_choose < 50:
            raise ConfigError(f"config key '{path}.n_choose' must be at least 50, got {self.n_choose}")
        if not 2 <= self.pool <= 100:
            raise ConfigError(f"config key '{path}.pool' must be in [2, 100], got {self.pool}")
        if any(not 0 <= g < 100 for g in self.gamma_percentiles):
            raise ConfigError(
                f"config key '{path}.gamma_percentiles' must be in [0, 100), got {self.gamma_percentiles}"
            )
        bad = [c for c in self.critics if c not in ("judges", *JUDGE_KINDS)]
        if bad or not self.critics:
            raise ConfigError(
                f"config key '{path}.critics' takes judges, {', '.join(JUDGE_KINDS)}; got {list(self.critics)}"
            )
        if any(k < 1 for k in self.top_k_choices):
            raise ConfigError(f"config key '{path}.top_k_choices' must be positive, got {self.top_k_choices}")


@dataclass(frozen=True)
class Candidate:
    label: str
    weights: tuple[float, ...]  # over the context's members
    gamma_percentile: float | None  # None: the mixture as it is
    critic: str = "judges"  # which critic DRS uses (a key of the pool's ratios)


class WeightedDRSSampler(RejectionSampler):
    """DRS over a weighted mixture, with the uniform-mixture critic's ratio corrected per member."""

    def __init__(self, proposal: MixtureSampler, log_ratio: Any, shift: Tensor, p: RejectionParams) -> None:
        super().__init__(proposal, p.batch_size, p.max_proposals, "auto")
        self.log_ratio, self.shift, self.p = log_ratio, shift, p
        burn, owner = proposal.draw(p.burn_in, torch.Generator().manual_seed(p.fit_seed + 2))
        self.log_m = float((log_ratio(burn) + shift[owner]).max())

    def accept_from(self, x: Tensor, owner: Tensor, generator: torch.Generator | None) -> Tensor:
        lr = self.log_ratio(x) + self.shift[owner]
        self.log_m = max(self.log_m, float(lr.max()))
        prob = drs_acceptance(lr, self.log_m, None, self.p.gamma_percentile, self.p.epsilon)
        return torch.rand(len(x), generator=generator) < prob


class AutoSampler:
    """The chosen candidate's sampler, with what was chosen and why."""

    def __init__(self, inner: Any, choice: dict[str, Any]) -> None:
        self.inner, self.choice = inner, choice
        self.members = inner.members

    @property
    def acceptance_rate(self) -> float | None:
        return self.inner.acceptance_rate

    def sample(self, n: int, generator: torch.Generator | None = None) -> Samples:
        return self.inner.sample(n, generator)


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
    p: AutoParams,
    seed: int,
) -> np.ndarray | None:
    """The features of the first n samples the candidate would keep from the pool, or None when the
    pool runs out first. Mirrors the samplers: mixture draws, then DRS in batches of p.batch_size."""
    rng = np.random.default_rng(seed)
    w = np.asarray(cand.weights)
    sizes = [len(f) for f in feats]
    if cand.gamma_percentile is None:
        counts = rng.multinomial(n, w)
        if any(c > s for c, s in zip(counts, sizes)):
            return None
        return np.concatenate([f[:c] for f, c in zip(feats, counts) if c])
    shift = shift_for(w)
    # A stream of proposals from the w-mixture, taken in order from each member's pool.
    length = int(0.95 * min(s / wi for s, wi in zip(sizes, w) if wi > 0))
    owners = rng.choice(len(w), size=length, p=w)
    idx = np.empty(length, dtype=int)
    for o in range(len(w)):
        where = np.nonzero(owners == o)[0]
        if len(where) > sizes[o]:
            return None
        idx[where] = np.arange(len(where))
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
            return np.concatenate(feats)[rows[np.asarray(kept[:n])]]
    return None


def candidates(
    names: list[str], member_fids: list[float], learned: np.ndarray, p: AutoParams, critics: list[str]
) -> list[Candidate]:
    m = len(member_fids)
    order = np.argsort(member_fids)
    weights: list[tuple[str, np.ndarray]] = []
    for i in range(m):
        weights.append((names[i], np.eye(m)[i]))
    weights.append(("uniform", np.full(m, 1.0 / m)))
    for k in sorted(set(p.top_k_choices)):
        if 1 < k < m:
            w = np.zeros(m)
            w[order[:k]] = 1.0 / k
            weights.append((f"top-{k}", w))
    weights.append(("learned-weights", learned))
    out = []
    for label, w in weights:
        out.append(Candidate(label, tuple(float(v) for v in w), None))
        for c in critics:
            tag = "" if len(critics) == 1 else f", {c} critic"
            out.extend(
                Candidate(f"{label} + rejection (γ at p{g:g}{tag})", tuple(float(v) for v in w), g, c)
                for g in p.gamma_percentiles
            )
    return out


@register_fusion(
    "auto",
    AutoParams,
    True,
    "chooses the mixture and DRS setting with the lowest FID on held-out data (never the evaluation half)",
)
def fuse_automatically(ctx: FusionContext, p: AutoParams) -> AutoSampler:
    proposal, critic = shared_critic(ctx, p, "fusion 'auto'")
    crits, kinds = {}, set()
    for c in dict.fromkeys(p.critics):
        kind = p.judges if c == "judges" else c
        if kind not in kinds:  # "judges" and the kind it names are one critic
            kinds.add(kind)
            crits[c] = (
                critic
                if kind == p.judges
                else shared_critic(ctx, replace(p, judges=kind), "fusion 'auto'")[1]
            )
    names = proposal.names
    fn = featurizer(feature_source(ctx.ens.cfg.data.name), str(ctx.ens.device))
    choose = ctx.choose_real[: p.n_choose]
    n = len(choose)
    feats_of = lambda x: features_of(fn, x).numpy()  # noqa: E731
    with torch.no_grad():
        real_feats = feats_of(choose).astype(np.float64)
        kind = p.criterion
        if kind == "auto":
            raw = feature_source(ctx.ens.cfg.data.name) == "raw"
            kind = "mmd" if raw and real_feats.shape[1] <= 16 else "fid"
        crit = Criterion(kind, real_feats, p.fit_seed)
        fit_real = feats_of(ctx.calib_real[: p.n_calibration]).astype(np.float64)
        feats: list[np.ndarray] = []
        ratios: dict[str, list[np.ndarray]] = {c: [] for c in crits}
        for i, g in enumerate(proposal.models):
            x = g.sample(p.pool * n, torch.Generator().manual_seed(p.fit_seed + 101 + i)).float().cpu()
            feats.append(feats_of(x).astype(np.float64))
            for c, cr in crits.items():
                ratios[c].append(cr.log_ratio(x).double().numpy())
    member_fids = [crit(f[:n]) for f in feats]
    fakes = [f[: len(fit_real)] for f in feats]
    learned = fid_weights(fakes, fit_real) if kind == "fid" else mmd_weights(fakes, fit_real, crit.widths)
    scores: dict[str, float | None] = {}
    best: tuple[float, Candidate] | None = None
    for k, cand in enumerate(candidates(names, member_fids, learned, p, list(crits))):
        kept = simulate(cand, feats, ratios, n, p, p.fit_seed + 7 * k)
        label = cand.label
        scores[label] = None if kept is None else round(crit(kept), 6)
        if kept is not None and (best is None or scores[label] < best[0]):
            best = (scores[label], cand)
    assert best is not None  # every member alone, without rejection, always fits in its pool
    fid, cand = best
    w = torch.tensor(cand.weights)
    keep = [i for i in range(len(names)) if cand.weights[i] > 0]
    mixture = MixtureSampler({names[i]: proposal.models[i] for i in keep}, w[keep], ctx.names)
    inner: Any = mixture
    if cand.gamma_percentile is not None:
        shift = torch.full((len(ctx.names),), -math.inf)
        for i, s in zip(keep, shift_for(np.asarray(cand.weights))[keep]):
            shift[ctx.names.index(names[i])] = float(s)
        params = RejectionParams(**{**_fields(p), "gamma_percentile": cand.gamma_percentile})
        inner = WeightedDRSSampler(mixture, crits[cand.critic].log_ratio, shift, params)
    chosen = cand.label
    best_member = min(range(len(names)), key=lambda i: member_fids[i])
    choice = {
        "chosen": chosen,
        "fid_choice": fid,
        "best_member": names[best_member],
        "best_member_fid_choice": round(member_fids[best_member], 6),
        "weights": {names[i]: round(cand.weights[i], 4) for i in keep},
        "gamma_percentile": cand.gamma_percentile,
        "critic": None if cand.gamma_percentile is None else cand.critic,
        "n_choose": n,
        "criterion": kind,
        "candidates": scores,
        "why": (
            f"lowest {kind.upper()} on {n} held-out images no judge or critic was fitted on: {chosen} {fid:.4g} "
            f"against the best member alone ({names[best_member]}) {member_fids[best_member]:.4g}"
        ),
    }
    return AutoSampler(inner, choice)


def _fields(p: AutoParams) -> dict[str, Any]:
    return {f: getattr(p, f) for f in RejectionParams.__dataclass_fields__}
