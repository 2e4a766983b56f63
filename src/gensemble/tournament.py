"""The tournament: every discriminator scores every generator, and the best are selected.

With M generators G_i and N discriminators D_j (every GAN member's own D, every critic a scheme
added; VAE decoders are generators too, whatever scheme trained them):

* S_{D_j}(G_i): how real D_j finds G_i's samples, the mean *calibrated* probability over a fixed
  sample set. S(G_i) = (1/N) Σ_j S_{D_j}(G_i).
* S_{G_i}(D_j): how well D_j separates held-out real data from G_i's samples, as ROC AUC.
  S(D_j) = (1/M) Σ_i S_{G_i}(D_j).

Held-out real data (the dataset's "test" split) is shuffled with a fixed seed and halved: the first
half, with an equal number of samples pooled from all the generators, fits one calibrator per
discriminator (gensemble.calibration); the second half, with fresh samples, is what is scored. So
no score is measured on the data its calibrator saw.

Two other scorings read the same judgements (`scoring=`):

* ``battle``: pairwise battles in the manner of GAM (Im et al. 2016) and GMAM (Durugkar et al.
  2017): each generator's "own" judges are its member's discriminators (all of them when it has
  none), and a battle compares how often each side fools the other's judges, normalised by how often
  it fools its own. S(G_i) is the share of battles won (draws count half).
* ``elo`` / ``glicko``: a skill rating (Olsson et al. 2018). Generators, discriminators and the real
  data (as one more "generator") are players; a game is one sample shown to one discriminator, which
  wins when it labels it correctly. Ratings are updated round by round.

Everything below `judge` is a pure function of the judgement arrays.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from gensemble.calibration import CalibrationMethod, Calibrator, fit_calibrator
from gensemble.errors import ConfigError

if TYPE_CHECKING:
    from gensemble.data import Dataset
    from gensemble.run import Ensemble

Scoring = Literal["matrix", "battle", "elo", "glicko"]
SCORINGS: tuple[str, ...] = ("matrix", "battle", "elo", "glicko")
LOGIT_BATCH = 2048


# --- shared helpers: the fusion methods use these too ----------------------------------------------
@contextlib.contextmanager
def evaluating(*modules: nn.Module) -> Iterator[None]:
    """Put modules in eval mode (BN running statistics, no spectral-norm update), then restore."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


@torch.no_grad()
def discriminator_logits(disc: nn.Module, x: Tensor, batch_size: int = LOGIT_BATCH) -> Tensor:
    """Logits (n,) of one discriminator on x, in eval mode, computed on its device, returned on CPU."""
    device = next(disc.parameters()).device
    with evaluating(disc):
        out = [
            disc(x[i : i + batch_size].to(device)).reshape(-1).float().cpu()
            for i in range(0, len(x), batch_size)
        ]
    return torch.cat(out) if out else torch.empty(0)


def all_logits(discs: dict[str, nn.Module], x: Tensor) -> Tensor:
    """Logits (N_discriminators, n) of every discriminator on x."""
    return torch.stack([discriminator_logits(d, x) for d in discs.values()])


def as_tensor(real: Dataset | Tensor) -> Tensor:
    return real if isinstance(real, Tensor) else real.x


def heldout_halves(real: Dataset | Tensor, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Held-out real data shuffled with a fixed seed and halved: (calibration half, evaluation half)."""
    x = as_tensor(real)
    if len(x) < 4:
        raise ConfigError(f"held-out real data has {len(x)} examples; scoring needs at least 4")
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    half = len(x) // 2
    return x[perm[:half]], x[perm[half:]]


def owner_of(disc_name: str, member_names: list[str]) -> str | None:
    """The member a discriminator belongs to ("m0.D" -> "m0"), or None for a shared critic."""
    prefix = disc_name.rsplit(".", 1)[0]
    return prefix if prefix in member_names else None


def draw(model: Any, n: int, seed: int) -> Tensor:
    """n samples from one generator with a fixed seed, on CPU."""
    return model.sample(n, torch.Generator().manual_seed(seed)).float().cpu()


def pooled_fakes(generators: dict[str, Any], n: int, seed: int) -> Tensor:
    """About n samples split evenly over the generators (the uniform mixture, unshuffled)."""
    k = max(1, math.ceil(n / len(generators)))
    return torch.cat([draw(g, k, seed + 7919 * i) for i, g in enumerate(generators.values())])


def require_discriminators(ens: Ensemble, what: str, hint: str | None = None) -> dict[str, nn.Module]:
    """The ensemble's discriminators, or a one-line error saying that `what` needs some."""
    discs = ens.discriminators()
    if not discs:
        where = f"run {str(ens.run_dir)!r}" if ens.run_dir is not None else "this ensemble"
        families = sorted({m.family.upper() for m in ens.members})
        hint = hint or "train at least one GAN member, or a scheme that adds discriminators"
        raise ConfigError(
            f"{what} needs discriminators, but {where} has none (its members are {' and '.join(families)}s); {hint}"
        )
    return discs


# --- judgements: the one stage that runs networks --------------------------------------------------
@dataclass
class Judgements:
    """Every discriminator's raw logits and calibrated probabilities on held-out real data and on a
    fixed sample set from every generator."""

    generators: tuple[str, ...]
    discriminators: tuple[str, ...]
    owners: tuple[str | None, ...]  # member of each discriminator, None for shared critics
    real_logits: Tensor  # (N, R)
    fake_logits: Tensor  # (M, N, S)
    real_probs: Tensor  # (N, R), calibrated
    fake_probs: Tensor  # (M, N, S), calibrated
    calibrators: dict[str, Calibrator]
    calibration: str


def judge(
    ens: Ensemble,
    real_data: Dataset | Tensor,
    n_samples: int = 2000,
    calibration: CalibrationMethod = "platt",
    seed: int = 0,
) -> Judgements:
    """Calibrate every discriminator on the calibration half, then let each judge every generator."""
    if n_samples < 2:
        raise ConfigError(f"n_samples must be at least 2, got {n_samples}")
    discs = require_discriminators(ens, "scoring")
    gens = ens.generators()
    cal_real, eval_real = heldout_halves(real_data, seed)
    cal_real, eval_real = cal_real[:n_samples], eval_real[:n_samples]
    cal_fake = pooled_fakes(gens, len(cal_real), seed + 1)
    calibrators = {
        name: fit_calibrator(
            discriminator_logits(d, cal_real), discriminator_logits(d, cal_fake), calibration
        )
        for name, d in discs.items()
    }
    real_logits = all_logits(discs, eval_real)
    # Fresh samples (another seed) for scoring: the calibrators never saw them.
    fake_logits = torch.stack(
        [all_logits(discs, draw(g, n_samples, seed + 104_729 * (i + 1))) for i, g in enumerate(gens.values())]
    )
    cals = list(calibrators.values())
    real_probs = torch.stack([c.predict_proba(real_logits[j]) for j, c in enumerate(cals)])
    fake_probs = torch.stack(
        [
            torch.stack([c.predict_proba(fake_logits[i, j]) for j, c in enumerate(cals)])
            for i in range(len(gens))
        ]
    )
    names = [m.name for m in ens.members]
    return Judgements(
        generators=tuple(gens),
        discriminators=tuple(discs),
        owners=tuple(owner_of(d, names) for d in discs),
        real_logits=real_logits,
        fake_logits=fake_logits,
        real_probs=real_probs,
        fake_probs=fake_probs,
        calibrators=calibrators,
        calibration=calibration,
    )


# --- pure scoring functions -----------------------------------------------------------------------
def roc_auc(pos: Tensor | np.ndarray, neg: Tensor | np.ndarray) -> float:
    """P(score(pos) > score(neg)) + ½ P(tie): the Mann-Whitney form of ROC AUC."""
    from scipy.stats import rankdata

    pos, neg = np.asarray(pos, dtype=np.float64).ravel(), np.asarray(neg, dtype=np.float64).ravel()
    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def score_matrix(j: Judgements) -> tuple[np.ndarray, np.ndarray]:
    """(M, N) mean calibrated probability S_{D_j}(G_i) and (M, N) ROC AUC S_{G_i}(D_j)."""
    matrix = j.fake_probs.double().mean(dim=2).numpy()
    # AUC on raw logits: calibration is monotone, and isotonic steps would only add ties.
    auc = np.array(
        [
            [roc_auc(j.real_logits[d], j.fake_logits[g, d]) for d in range(len(j.discriminators))]
            for g in range(len(j.generators))
        ]
    )
    return matrix, auc


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


# --- the table ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreTable:
    """The tournament's result: the M×N matrix, both score vectors and per-pair details."""

    generators: tuple[str, ...]
    discriminators: tuple[str, ...]
    matrix: np.ndarray  # (M, N) S_{D_j}(G_i): mean calibrated probability of "real"
    auc: np.ndarray  # (M, N) S_{G_i}(D_j): ROC AUC of real vs G_i's samples
    fool_rate: np.ndarray  # (M, N) share of G_i's samples D_j labels real
    real_accept: np.ndarray  # (N,) share of held-out real data D_j labels real
    generator_scores: np.ndarray  # (M,) S(G_i) under `scoring`
    discriminator_scores: np.ndarray  # (N,) S(D_j) under `scoring`
    scoring: str = "matrix"
    calibration: str = "platt"
    n_samples: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # battle margins / ratings, by scoring

    def generator_ranking(self) -> list[str]:
        """Generators, best first."""
        return [self.generators[i] for i in np.argsort(-self.generator_scores, kind="stable")]

    def discriminator_ranking(self) -> list[str]:
        return [self.discriminators[i] for i in np.argsort(-self.discriminator_scores, kind="stable")]

    def pairs(self) -> list[dict[str, Any]]:
        """One record per (generator, discriminator) pair."""
        return [
            {
                "generator": g,
                "discriminator": d,
                "mean_prob": float(self.matrix[i, j]),
                "auc": float(self.auc[i, j]),
                "fool_rate": float(self.fool_rate[i, j]),
            }
            for i, g in enumerate(self.generators)
            for j, d in enumerate(self.discriminators)
        ]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; `matrix[i][j]` is S_{D_j}(G_i)."""
        return {
            "generators": list(self.generators),
            "discriminators": list(self.discriminators),
            "matrix": self.matrix.round(6).tolist(),
            "generator_scores": [round(float(v), 6) for v in self.generator_scores],
            "discriminator_scores": [round(float(v), 6) for v in self.discriminator_scores],
            "auc": self.auc.round(6).tolist(),
            "real_accept": [round(float(v), 6) for v in self.real_accept],
            "scoring": self.scoring,
            "calibration": self.calibration,
            "n_samples": self.n_samples,
            "pairs": self.pairs(),
            **{k: _jsonable(v) for k, v in self.extra.items()},
        }

    def format(self) -> str:
        """A readable table: rows are generators, columns discriminators, then both score vectors."""
        width = max(8, *(len(d) for d in self.discriminators)) + 1
        gw = max(9, *(len(g) for g in self.generators)) + 1
        lines = [f"S_D(G): mean calibrated P(real) ({self.calibration}); scores by {self.scoring}"]
        lines.append(
            "generator".ljust(gw)
            + "".join(d.rjust(width) for d in self.discriminators)
            + "S(G)".rjust(width + 2)
        )
        for i, g in enumerate(self.generators):
            row = "".join(f"{v:{width}.3f}" for v in self.matrix[i])
            lines.append(g.ljust(gw) + row + f"{self.generator_scores[i]:{width + 2}.3f}")
        lines.append("AUC mean".ljust(gw) + "".join(f"{v:{width}.3f}" for v in self.auc.mean(axis=0)))
        lines.append("S(D)".ljust(gw) + "".join(f"{v:{width}.3f}" for v in self.discriminator_scores))
        lines.append(f"generators, best first: {', '.join(self.generator_ranking())}")
        lines.append(f"discriminators, best first: {', '.join(self.discriminator_ranking())}")
        return "\n".join(lines)


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.round(6).tolist()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


def table_from_judgements(
    j: Judgements,
    scoring: Scoring = "matrix",
    seed: int = 0,
    draw_margin: float = 0.05,
    rating: RatingConfig = RatingConfig(),
) -> ScoreTable:
    """Pure: judgements -> ScoreTable under one of the scorings."""
    if scoring not in SCORINGS:
        raise ConfigError(f"unknown scoring {scoring!r}; known: {', '.join(SCORINGS)}")
    matrix, auc = score_matrix(j)
    g_scores, d_scores = matrix.mean(axis=1), auc.mean(axis=0)
    extra: dict[str, Any] = {}
    if scoring == "battle":
        margins, r_test = battle_matrix(j)
        g_scores = battle_scores(margins, draw_margin)
        extra = {"battle_margins": margins, "battle_r_test": r_test}
    elif scoring in ("elo", "glicko"):
        ratings = rate(play_games(j, rating.rounds, rating.games, seed, rating.outcome), scoring, rating)
        g_scores, d_scores = ratings["rows"][:-1], ratings["cols"]
        extra = {"real_rating": float(ratings["rows"][-1])}
        if scoring == "glicko":
            extra |= {"generator_rd": ratings["rows_rd"][:-1], "discriminator_rd": ratings["cols_rd"]}
    return ScoreTable(
        generators=j.generators,
        discriminators=j.discriminators,
        matrix=matrix,
        auc=auc,
        fool_rate=fool_rates(j),
        real_accept=(j.real_probs > 0.5).double().mean(dim=1).numpy(),
        generator_scores=np.asarray(g_scores, dtype=np.float64),
        discriminator_scores=np.asarray(d_scores, dtype=np.float64),
        scoring=scoring,
        calibration=j.calibration,
        n_samples=int(j.fake_probs.shape[2]),
        extra=extra,
    )


def score(
    ensemble: Ensemble,
    real_data: Dataset | Tensor,
    scoring: Scoring = "matrix",
    n_samples: int = 2000,
    calibration: CalibrationMethod = "platt",
    seed: int = 0,
) -> ScoreTable:
    """Every discriminator scores every generator on held-out real data; see the module docstring."""
    n_real = len(as_tensor(real_data))
    if n_real < MIN_REAL_FOR_SCORING:
        warnings.warn(
            f"the tournament calibrates and scores on only {n_real} held-out real images (half each); its "
            f"probabilities are rough below {MIN_REAL_FOR_SCORING}: hold out more (data.test_fraction)",
            stacklevel=2,
        )
    table = table_from_judgements(judge(ensemble, real_data, n_samples, calibration, seed), scoring, seed)
    table.extra["n_real"] = n_real  # held-out real images, halved into calibration and scoring
    return table


MIN_REAL_FOR_SCORING = 200


def score_run(
    run_dir: str | Path,
    scoring: Scoring = "matrix",
    n_samples: int = 2000,
    calibration: CalibrationMethod = "platt",
    seed: int = 0,
    device: str = "cpu",
    step: int | None = None,
) -> ScoreTable:
    """Load a run (its latest checkpoint, or the one at `step`) and score it against its dataset's held-out ("test") split."""
    from gensemble.data import load_dataset
    from gensemble.run import load_run

    ens = load_run(run_dir, device, step)
    return score(ens, load_dataset(ens.cfg.data, "test"), scoring, n_samples, calibration, seed)


# --- selection ------------------------------------------------------------------------------------
def select_top_k(
    names: tuple[str, ...] | list[str], scores: np.ndarray, k: int, what: str = "generators"
) -> list[str]:
    """The k best names by score (ties keep the original order); k = 0 keeps all."""
    if k < 0:
        raise ConfigError(f"top-k for {what} must be non-negative, got {k}")
    if k > len(names):
        raise ConfigError(f"top-k asks for {k} {what}, but there are only {len(names)}")
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep = order[:k] if k else order
    return [names[i] for i in sorted(keep)]


def drop_below(
    names: tuple[str, ...] | list[str], scores: np.ndarray, threshold: float | None, what: str = "generators"
) -> list[str]:
    """Names whose score is at least `threshold` (None keeps all); an empty result is an error."""
    if threshold is None:
        return list(names)
    keep = [n for n, s in zip(names, scores) if s >= threshold]
    if not keep:
        raise ConfigError(
            f"every one of the {what} scores below the threshold {threshold} (best: {max(scores):.3f}); lower it"
        )
    return keep


@dataclass(frozen=True)
class Selection:
    generators: tuple[str, ...]
    discriminators: tuple[str, ...]


def select(
    table: ScoreTable,
    top_k_generators: int = 0,
    top_k_discriminators: int = 0,
    min_generator_score: float | None = None,
    min_discriminator_score: float | None = None,
) -> Selection:
    """Drop members scoring below the thresholds, then keep the top k of each side (0: all)."""
    out = []
    for names, scores, k, low, what in (
        (table.generators, table.generator_scores, top_k_generators, min_generator_score, "generators"),
        (
            table.discriminators,
            table.discriminator_scores,
            top_k_discriminators,
            min_discriminator_score,
            "discriminators",
        ),
    ):
        kept = drop_below(names, scores, low, what)
        kept_scores = np.array([scores[names.index(n)] for n in kept])
        if k > len(kept):
            raise ConfigError(f"top-k asks for {k} {what}, but only {len(kept)} remain after the threshold")
        out.append(tuple(select_top_k(kept, kept_scores, k, what)))
    return Selection(*out)
