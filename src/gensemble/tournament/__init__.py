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
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from scipy.stats import rankdata
from torch import Tensor, nn

from gensemble.calibration import CalibrationMethod, fit_calibrator
from gensemble.data import Dataset, heldout_halves
from gensemble.errors import ConfigError
from gensemble.health import curve_problems, judged_problems, merge, read_curves, warning_lines
from gensemble.run import Ensemble, load_run_and_heldout
from gensemble.runfolder import holds_lock, writes_into_run
from gensemble.sampling import pooled_samples
from gensemble.tournament.judges import JudgeConfig, fit_judges, judge_split
from gensemble.tournament.scorings import (  # noqa: F401  (re-exported)
    RatingConfig,
    battle_matrix,
    battle_scores,
    fool_rates,
    judges_of,
    play_games,
    rate,
)
from gensemble.tournament.table import Judgements, ScoreTable, _jsonable  # noqa: F401  (re-exported)

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


def owner_of(disc_name: str, member_names: list[str]) -> str | None:
    """The member a discriminator belongs to ("m0.D" -> "m0"), or None for a shared critic."""
    prefix = disc_name.rsplit(".", 1)[0]
    return prefix if prefix in member_names else None


def draw(model: Any, n: int, seed: int) -> Tensor:
    """n samples from one generator with a fixed seed, on CPU."""
    return model.sample(n, torch.Generator().manual_seed(seed)).float().cpu()


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
@dataclass(frozen=True)
class JudgeSet:
    """Fitted judges (name -> network x -> logit), how they were made, and whether a writer should
    keep them in the run folder: fine-tuned judges of the run's own generators, fitted now."""

    nets: dict[str, nn.Module]
    record: dict[str, Any]
    to_keep: bool


def make_judges(
    ens: Ensemble,
    cal_real: Tensor,
    judges: JudgeConfig,
    seed: int = 0,
    generators: dict[str, Any] | None = None,
) -> JudgeSet:
    """The ensemble's judges, fitted as `judges` says on the judges' share of the calibration half
    against samples pooled from every generator (or from `generators`), or read from the run folder
    where a writer kept them for this checkpoint and these settings. Nothing is written here: the
    commands that write the run (score, evaluate) call `keep_judges`."""
    judges = judges.on(ens.cfg.data.name)
    discs = {} if judges.kind == "features" else require_discriminators(ens, "scoring")
    keepable = generators is None and judges.kind == "finetuned" and ens.run_dir is not None
    record = {
        "judges": judges.record(),
        "step": ens.step,
        "seed": seed,
        "generators": [m.name for m in ens.members],
    }
    if keepable:
        saved = load_judges(ens.run_dir, discs, record)
        if saved is not None:
            return JudgeSet(saved, record, False)
    train_real, _ = judge_split(cal_real)
    nets = fit_judges(discs, generators or ens.generators(), train_real, judges, ens.cfg.data.name, seed)
    return JudgeSet(nets, record, keepable)


def keep_judges(run_dir: str | Path, made: JudgeSet) -> None:
    """Save freshly fitted judges into the run (a writer's step), so every later command for the same
    checkpoint and settings reuses them (fine-tuning them costs about 13 s of the demo each time)."""
    if made.to_keep and holds_lock(run_dir):
        save_judges(run_dir, made.nets, made.record)


def judge_population(
    generators: dict[str, Any],
    judges: dict[str, nn.Module],
    owners: tuple[str | None, ...],
    halves: tuple[Tensor, Tensor],
    n_samples: int = 2000,
    calibration: CalibrationMethod = "platt",
    seed: int = 0,
    config: JudgeConfig = JudgeConfig(),
) -> Judgements:
    """Calibrate every judge on its share of the calibration half against samples pooled from every
    generator, then let each judge every generator on fresh samples and the evaluation half
    (`halves`: the held-out split's calibration and evaluation halves, as `heldout_halves` cuts it)."""
    cal_real, eval_real = halves
    if n_samples < 2:
        raise ConfigError(f"n_samples must be at least 2, got {n_samples}")
    _, calib_real = judge_split(cal_real)
    calib_real, eval_real = calib_real[:n_samples], eval_real[:n_samples]
    cal_fake = pooled_samples(generators, len(calib_real), seed + 1)
    calibrators = {
        name: fit_calibrator(
            discriminator_logits(d, calib_real), discriminator_logits(d, cal_fake), calibration
        )
        for name, d in judges.items()
    }
    real_logits = all_logits(judges, eval_real)
    # Fresh samples (another seed) for scoring: the calibrators never saw them.
    fake_logits = torch.stack(
        [
            all_logits(judges, draw(g, n_samples, seed + 104_729 * (i + 1)))
            for i, g in enumerate(generators.values())
        ]
    )
    cals = list(calibrators.values())
    real_probs = torch.stack([c.predict_proba(real_logits[j]) for j, c in enumerate(cals)])
    fake_probs = torch.stack(
        [
            torch.stack([c.predict_proba(fake_logits[i, j]) for j, c in enumerate(cals)])
            for i in range(len(generators))
        ]
    )
    return Judgements(
        generators=tuple(generators),
        discriminators=tuple(judges),
        owners=owners,
        real_logits=real_logits,
        fake_logits=fake_logits,
        real_probs=real_probs,
        fake_probs=fake_probs,
        calibrators=calibrators,
        calibration=calibration,
        judges=config,
    )


def judge(
    ens: Ensemble,
    real_data: Dataset | Tensor,
    n_samples: int = 2000,
    calibration: CalibrationMethod = "platt",
    seed: int = 0,
    judges: JudgeConfig = JudgeConfig(),
    fitted: dict[str, nn.Module] | None = None,
) -> Judgements:
    """Fit the judges (or take `fitted` ones), calibrate them, then let each judge every generator."""
    judges = judges.on(ens.cfg.data.name)
    cal_real, eval_real = heldout_halves(real_data, seed)
    nets = fitted if fitted is not None else make_judges(ens, cal_real, judges, seed).nets
    names = [m.name for m in ens.members]
    owners = tuple(owner_of(d, names) for d in nets)
    return judge_population(
        ens.generators(), nets, owners, (cal_real, eval_real), n_samples, calibration, seed, judges
    )


# --- pure scoring functions -----------------------------------------------------------------------
def roc_auc(pos: Tensor | np.ndarray, neg: Tensor | np.ndarray) -> float:
    """P(score(pos) > score(neg)) + ½ P(tie): the Mann-Whitney form of ROC AUC."""
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
    counted = j.counted()
    g_scores = (matrix * counted).sum(axis=1) / counted.sum(axis=1)
    d_scores = auc.mean(axis=0)
    extra: dict[str, Any] = {"judges": j.judges.record()}
    if scoring == "battle":
        margins, r_test = battle_matrix(j)
        g_scores = battle_scores(margins, draw_margin)
        extra |= {"battle_margins": margins, "battle_r_test": r_test}
    elif scoring in ("elo", "glicko"):
        ratings = rate(play_games(j, rating.rounds, rating.games, seed, rating.outcome), scoring, rating)
        g_scores, d_scores = ratings["rows"][:-1], ratings["cols"]
        extra |= {"real_rating": float(ratings["rows"][-1])}
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
    judges: JudgeConfig = JudgeConfig(),
    fitted: dict[str, nn.Module] | None = None,
) -> ScoreTable:
    """Every judge scores every generator on held-out real data; see the module docstring."""
    n_real = len(as_tensor(real_data))
    if n_real < MIN_REAL_FOR_SCORING:
        warnings.warn(
            f"the tournament calibrates and scores on only {n_real} held-out real images (half each); its "
            f"probabilities are rough below {MIN_REAL_FOR_SCORING}: hold out more (data.test_fraction)",
            stacklevel=2,
        )
    judgements = judge(ensemble, real_data, n_samples, calibration, seed, judges, fitted)
    table = table_from_judgements(judgements, scoring, seed)
    table.extra["n_real"] = n_real  # held-out real images, halved into calibration and scoring
    return table


MIN_REAL_FOR_SCORING = 200


@writes_into_run("score")
def score_run(
    run_dir: str | Path,
    scoring: Scoring = "matrix",
    n_samples: int = 2000,
    calibration: CalibrationMethod = "platt",
    seed: int = 0,
    device: str = "cpu",
    step: int | None = None,
    judges: JudgeConfig = JudgeConfig(),
) -> ScoreTable:
    """Load a run (its latest checkpoint, or the one at `step`), score it against its dataset's
    held-out ("test") split, and save the table as RUN/tournament.json for fusions and the report."""
    ens, heldout = load_run_and_heldout(run_dir, device, step)
    made = make_judges(ens, heldout_halves(heldout, seed)[0], judges, seed)
    table = score(ens, heldout, scoring, n_samples, calibration, seed, judges, made.nets)
    write_tournament(run_dir, table.to_json(), ens.step, seed)
    keep_judges(run_dir, made)
    judged = judged_problems(dict(zip(table.generators, map(float, table.generator_scores))))
    for line in warning_lines(merge(curve_problems(read_curves(Path(run_dir))), judged)):
        warnings.warn(line, stacklevel=3)
    return table


from gensemble.tournament.saved import (  # noqa: E402,F401
    load_judges,
    matching_tournament,
    read_tournament,
    save_judges,
    write_tournament,
)
from gensemble.tournament.selection import Selection, drop_below, select, select_top_k  # noqa: E402,F401  (re-exported)
