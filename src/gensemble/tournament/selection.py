"""Selecting generators and discriminators from a tournament's ScoreTable: top-k and thresholds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gensemble.errors import ConfigError

if TYPE_CHECKING:
    from gensemble.tournament.table import ScoreTable


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
