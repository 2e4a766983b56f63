"""weighted: a mixture with weights softmax(tournament score / temperature)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gensemble.errors import ConfigError
from gensemble.fusion.base import FusionContext, register_fusion
from gensemble.fusion.params import FusionParams
from gensemble.fusion.proposal import MixtureSampler


def softmax_weights(scores: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(scores / temperature), computed stably."""
    z = np.asarray(scores, dtype=np.float64) / temperature
    z = np.exp(z - z.max())
    return z / z.sum()


@dataclass(frozen=True)
class WeightedParams(FusionParams):
    # Matrix scores are mean probabilities in [0, 1], where members differ by a few hundredths; a
    # temperature of 0.05 turns a 0.1 lead into e² ≈ 7.4 times the weight. Ratings need ~100.
    temperature: float = 0.05

    def _check(self, path: str) -> None:
        if self.temperature <= 0:
            raise ConfigError(f"config key '{path}.temperature' must be positive, got {self.temperature}")


@register_fusion("weighted", WeightedParams, True)
def fuse_by_score(ctx: FusionContext, p: WeightedParams) -> MixtureSampler:
    """mixture with weights softmax(tournament score / temperature)"""
    sel = ctx.selection("fusion 'weighted'")
    table = ctx.table("fusion 'weighted'")
    scores = np.array([table.generator_scores[table.generators.index(g)] for g in sel.generators])
    return MixtureSampler(ctx.generators(sel.generators), softmax_weights(scores, p.temperature), ctx.names)
