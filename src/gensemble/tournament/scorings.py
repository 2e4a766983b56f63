"""The tournament's other scorings, pure functions of the judgement arrays.

* battles (GAM, Im et al. 2016; GMAM, Durugkar et al. 2017): pairwise, each side judged by the
  other's discriminators and normalised by its own;
* skill ratings (Olsson et al. 2018): generators, discriminators and the real data play games (one
  sample shown to one discriminator, won by a correct label); Elo or Glicko, round by round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from gensemble.errors import ConfigError

if TYPE_CHECKING:
    from gensemble.tournament.table import Judgements


def fool_rates(j: Judgements, soft: bool = False) -> np.ndarray:
    """(M, N) share of G_i's samples that D_j labels real (calibrated p > ½), smoothed off 0 and 1.
    With soft, the expected share under the calibrated probabilities: the mean p itself."""
    if soft:
        return j.fake_probs.double().mean(dim=2).numpy()
    s = j.fake_probs.shape[2]
    return ((j.fake_probs > 0.5).double().sum(dim=2).numpy() + 0.5) / (s + 1.0)


def judges_of(j: Judgements) -> list[list[int]]:
    """Each generator's own judges: its member's discriminators, or every discriminator if it has none."""
    everyone = list(range(len(j.discriminators)))
    return [[d for d, o in enumerate(j.owners) if o == g] or everyone for g in j.generators]


def battle_matrix(j: Judgements, soft: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(M, M) battle margins B[a, b] (positive: a beats b) and (M, M) GAM test ratios r_test.

    B[a, b] = log(F[a, J_b] / F[b, J_b]) − log(F[b, J_a] / F[a, J_a]), with F[g, J] the mean fool rate
    of judges J on G_g's samples. This is −GMAM of Durugkar et al. (whose positive sign favours the
    second model); GAM's r_samples = F[b, J_a] / F[a, J_b] is its unnormalised form. r_test[a, b] is the
    ratio of the two judge panels' error rates on held-out real data: GAM asks for r_test ≈ 1 before a
    battle is trusted.

    With `soft` (the default) error rates are expected errors under the calibrated probabilities
    rather than counts of p > ½: a sample at p = 0.51 is not a full error, and the estimate is smoother.
    """
    fr = fool_rates(j, soft)
    judges = judges_of(j)
    r = j.real_probs.shape[1]
    if soft:
        real_err = (1.0 - j.real_probs.double()).mean(dim=1).numpy()
    else:
        real_err = ((j.real_probs <= 0.5).double().sum(dim=1).numpy() + 0.5) / (r + 1.0)  # (N,)
    m = len(j.generators)
    f = np.array([[fr[g, judges[h]].mean() for h in range(m)] for g in range(m)])  # f[g, h] = F[g, J_h]
    err = np.array([real_err[judges[h]].mean() for h in range(m)])
    margins = np.log(f / np.diag(f)[None, :]) - np.log(f.T / np.diag(f)[:, None])
    r_test = err[:, None] / err[None, :]
    return margins, r_test


def battle_scores(margins: np.ndarray, draw_margin: float = 0.05) -> np.ndarray:
    """Each generator's share of battles won (draws, |margin| < draw_margin, count half)."""
    m = margins.shape[0]
    if m == 1:
        return np.array([0.5])
    wins = (margins > draw_margin).sum(1) + 0.5 * ((np.abs(margins) <= draw_margin).sum(1) - 1)
    return wins / (m - 1)


@dataclass(frozen=True)
class RatingConfig:
    """Skill-rating settings (Elo: Elo 1978; Glicko: Glickman 1999)."""

    rounds: int = 40  # rating periods; every (generator or real data, discriminator) pair plays each one
    games: int = 8  # samples each pair sees per round; each sample is one game
    k_factor: float = 16.0  # Elo step per game
    initial_rating: float = 1500.0
    initial_rd: float = 350.0  # Glicko rating deviation at the start
    rd_growth: float = 0.0  # Glicko c: RD growth per period. 0, because frozen networks do not change skill
    # A game's score for D: soft = its calibrated probability of the right label (a sample at p = 0.51
    # is nearly a draw); hard = 1 if p is on the right side of ½, else 0.
    outcome: Literal["soft", "hard"] = "soft"


GLICKO_Q = math.log(10) / 400.0


def _expected(r: np.ndarray, r_opp: np.ndarray, g: np.ndarray | float = 1.0) -> np.ndarray:
    return 1.0 / (1.0 + 10.0 ** (-g * (r - r_opp) / 400.0))


def _glicko_g(rd: np.ndarray) -> np.ndarray:
    return 1.0 / np.sqrt(1.0 + 3.0 * GLICKO_Q**2 * rd**2 / math.pi**2)


def play_games(j: Judgements, rounds: int, games: int, seed: int, outcome: str = "soft") -> np.ndarray:
    """Outcomes (rounds, M + 1, N): each discriminator's mean score over `games` samples of every
    generator and (last row) of the real data, a fresh random draw of samples each round."""
    rng = np.random.default_rng(seed)
    if outcome == "soft":
        fake, real = (1.0 - j.fake_probs.double()).numpy(), j.real_probs.double().numpy()
    else:
        fake = (j.fake_probs <= 0.5).double().numpy()  # D right: it calls the fake fake
        real = (j.real_probs > 0.5).double().numpy()  # D right: it calls the real real
    m, n, s = fake.shape
    out = np.empty((rounds, m + 1, n))
    for t in range(rounds):
        idx = rng.integers(0, s, size=(m, n, games))
        out[t, :m] = np.take_along_axis(fake, idx, axis=2).mean(axis=2)
        ridx = rng.integers(0, real.shape[1], size=(n, games))
        out[t, m] = np.take_along_axis(real, ridx, axis=1).mean(axis=1)
    return out


def rate(
    outcomes: np.ndarray, method: Literal["elo", "glicko"], cfg: RatingConfig = RatingConfig()
) -> dict[str, np.ndarray]:
    """Ratings of the generator-side players (rows) and discriminators (columns) from per-round
    outcomes (rounds, P, N) in [0, 1] from each discriminator's side. Returns {"rows", "cols"} and,
    for Glicko, {"rows_rd", "cols_rd"}."""
    rounds, p, n = outcomes.shape
    rg = np.full(p, cfg.initial_rating)
    rd_ = np.full(n, cfg.initial_rating)
    if method == "elo":
        history_g, history_d = [], []
        for t in range(rounds):
            e_d = _expected(rd_[None, :], rg[:, None])  # (P, N): D's expected score
            delta = cfg.k_factor * cfg.games * (outcomes[t] - e_d)
            rd_ = rd_ + delta.sum(axis=0)
            rg = rg - delta.sum(axis=1)
            history_g.append(rg.copy())
            history_d.append(rd_.copy())
        # Elo keeps drifting with each noisy round; the mean over the last half is the steadier estimate.
        half = rounds // 2
        return {"rows": np.mean(history_g[half:], axis=0), "cols": np.mean(history_d[half:], axis=0)}
    if method != "glicko":
        raise ConfigError(f"unknown rating method {method!r}; known: elo, glicko")
    dev_g = np.full(p, cfg.initial_rd)
    dev_d = np.full(n, cfg.initial_rd)
    for t in range(rounds):
        dev_g = np.minimum(np.sqrt(dev_g**2 + cfg.rd_growth**2), cfg.initial_rd)
        dev_d = np.minimum(np.sqrt(dev_d**2 + cfg.rd_growth**2), cfg.initial_rd)
        s_d = outcomes[t]  # (P, N)
        # Discriminators: opponents are the row players.
        g_opp = _glicko_g(dev_g)[:, None]
        e = _expected(rd_[None, :], rg[:, None], g_opp)
        d2_inv = GLICKO_Q**2 * cfg.games * (g_opp**2 * e * (1 - e)).sum(axis=0)
        new_rd_ = rd_ + GLICKO_Q / (1 / dev_d**2 + d2_inv) * cfg.games * (g_opp * (s_d - e)).sum(axis=0)
        new_dev_d = np.sqrt(1.0 / (1 / dev_d**2 + d2_inv))
        # Row players: opponents are the discriminators, and their score is 1 − D's.
        g_opp = _glicko_g(dev_d)[None, :]
        e = _expected(rg[:, None], rd_[None, :], g_opp)
        d2_inv = GLICKO_Q**2 * cfg.games * (g_opp**2 * e * (1 - e)).sum(axis=1)
        rg = rg + GLICKO_Q / (1 / dev_g**2 + d2_inv) * cfg.games * (g_opp * ((1 - s_d) - e)).sum(axis=1)
        dev_g = np.sqrt(1.0 / (1 / dev_g**2 + d2_inv))
        rd_, dev_d = new_rd_, new_dev_d
    return {"rows": rg, "cols": rd_, "rows_rd": dev_g, "cols_rd": dev_d}
