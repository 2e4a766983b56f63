"""The tournament's data: every judge's judgements (Judgements) and the result table (ScoreTable)
with its JSON form, which RUN/tournament.json holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from gensemble.calibration import Calibrator
from gensemble.tournament.judges import JudgeConfig


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
            "fool_rate": self.fool_rate.round(6).tolist(),
            "real_accept": [round(float(v), 6) for v in self.real_accept],
            "scoring": self.scoring,
            "calibration": self.calibration,
            "n_samples": self.n_samples,
            "pairs": self.pairs(),
            **{k: _jsonable(v) for k, v in self.extra.items()},
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ScoreTable:
        """The table `to_json` wrote (RUN/tournament.json); extras keep their JSON form."""
        known = {"generators", "discriminators", "matrix", "auc", "fool_rate", "real_accept", "pairs"}
        known |= {
            "generator_scores",
            "discriminator_scores",
            "scoring",
            "calibration",
            "n_samples",
            "step",
            "seed",
        }
        arr = lambda k: np.asarray(d.get(k, []), dtype=np.float64)  # noqa: E731
        return cls(
            generators=tuple(d["generators"]),
            discriminators=tuple(d["discriminators"]),
            matrix=arr("matrix"),
            auc=arr("auc"),
            fool_rate=arr("fool_rate"),
            real_accept=arr("real_accept"),
            generator_scores=arr("generator_scores"),
            discriminator_scores=arr("discriminator_scores"),
            scoring=d.get("scoring", "matrix"),
            calibration=d.get("calibration", "platt"),
            n_samples=int(d.get("n_samples", 0)),
            extra={k: v for k, v in d.items() if k not in known},
        )

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


@dataclass
class Judgements:
    """Every judge's raw logits and calibrated probabilities on held-out real data and on a fixed
    sample set from every generator."""

    generators: tuple[str, ...]
    discriminators: tuple[str, ...]  # the judges' names
    owners: tuple[str | None, ...]  # member of each judge, None for shared critics and feature judges
    real_logits: Tensor  # (N, R)
    fake_logits: Tensor  # (M, N, S)
    real_probs: Tensor  # (N, R), calibrated
    fake_probs: Tensor  # (M, N, S), calibrated
    calibrators: dict[str, Calibrator]
    calibration: str
    judges: JudgeConfig = field(default_factory=JudgeConfig)

    def counted(self) -> np.ndarray:
        """(M, N) which judgements count towards S(G): all, or all but a member's own judge of its
        generators (and their snapshots, "member@step") when self-judgement is off."""
        mask = np.ones((len(self.generators), len(self.discriminators)), dtype=bool)
        if not self.judges.self_judgement:
            for i, g in enumerate(self.generators):
                for k, owner in enumerate(self.owners):
                    mask[i, k] = owner is None or owner != g.split("@", 1)[0]
            mask[mask.sum(axis=1) == 0] = True  # a generator judged only by its own D keeps it
        return mask
