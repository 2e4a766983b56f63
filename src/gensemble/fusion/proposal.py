"""Where the critic fusions' proposals come from: the mixture sampler, and the pool of proposals a
choice is simulated on.

`ProposalPool` holds each generator's proposals, drawn in fixed seeded chunks (a smaller pool is a
prefix of a larger one, whichever fusion asked first), their features on the choice space, and every
critic's log density ratio for them: drawn and judged once per fusion context.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from torch import Tensor

from gensemble.errors import ConfigError
from gensemble.metrics.features import feature_map, features_of
from gensemble.sampling import Samples, mixture_sample

CHUNK = 1000  # proposals per seeded draw


class MixtureSampler:
    """Draw from member i with probability weights[i]; member ids index into `members`."""

    acceptance_rate: float | None = None

    def __init__(self, generators: dict[str, Any], weights: Tensor | np.ndarray, members: list[str]) -> None:
        w = torch.as_tensor(np.asarray(weights, dtype=np.float64)).float()
        if w.shape != (len(generators),) or not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ConfigError(
                f"mixture weights must be {len(generators)} non-negative numbers, not all 0; got {w.tolist()}"
            )
        self.names = list(generators)
        self.models = list(generators.values())
        self.weights = w / w.sum()
        self.members = members
        self._index = torch.tensor([members.index(n) for n in self.names], dtype=torch.long)

    def draw(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """n samples (CPU) and their member ids (into `members`)."""
        x, local = mixture_sample(self.models, self.weights, n, generator)
        return x, self._index[local]

    def sample(self, n: int, generator: torch.Generator | None = None) -> Samples:
        x, ids = self.draw(n, generator)
        return Samples(x, ids, list(self.members))


class Refiner:
    """A sampler that draws proposals of `proposal` and keeps or moves between them: it counts
    proposals drawn and accepted, for `acceptance_rate`."""

    def __init__(self, proposal: MixtureSampler) -> None:
        self.proposal = proposal
        self.members = proposal.members
        self.proposed = 0
        self.accepted = 0

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.proposed if self.proposed else None


class Critic(Protocol):
    """What judges proposals: a log density ratio log p_data / p_proposal per sample. A critic made of
    feature judges only (`on_features`) can read the ratio off precomputed features."""

    on_features: bool

    def log_ratio(self, x: Tensor) -> Tensor: ...

    def log_ratio_from_features(self, feats: Tensor) -> Tensor: ...


class Chunk(NamedTuple):
    member: str
    index: int  # which CHUNK-sized draw of that member


class ProposalPool:
    """Proposals of every generator, their features and critics' log ratios, drawn and judged once.

    Ratios are cached per critic object (held here, so it cannot be collected and its slot reused),
    so every fusion built on one fitted critic reads the same judged proposals."""

    def __init__(self, space: str, device: str, seed: int) -> None:
        self.space = space
        self.fn: Callable[[Tensor], Tensor] = feature_map(space, device)
        self.seed = seed
        self._x: dict[Chunk, Tensor] = {}
        self._feats: dict[Chunk, np.ndarray] = {}
        self._ratios: dict[Any, dict[Chunk, np.ndarray]] = {}
        self._device = device
        self._other: dict[str, dict[Chunk, np.ndarray]] = {}  # features on other spaces, per space

    def features_of(self, x: Tensor) -> np.ndarray:
        """Features (float64) of any images on the pool's space (real ones, to compare against)."""
        return features_of(self.fn, x).double().numpy()

    def _chunk(self, key: Chunk, g: Any) -> Tensor:
        if key not in self._x:
            # Seeded by the generator's name, so its proposals do not depend on who else is pooled.
            seed = self.seed + 101 + zlib.crc32(key.member.encode()) + 7919 * key.index
            with torch.no_grad():
                self._x[key] = g.sample(CHUNK, torch.Generator().manual_seed(seed)).float().cpu()
        return self._x[key]

    def _chunk_features(self, key: Chunk, g: Any) -> np.ndarray:
        if key not in self._feats:
            self._feats[key] = self.features_of(self._chunk(key, g))
        return self._feats[key]

    def features(self, name: str, g: Any, size: int) -> np.ndarray:
        """Features (size, d) of the generator's first `size` proposals."""
        keys = [Chunk(name, c) for c in range(math.ceil(size / CHUNK))]
        return np.concatenate([self._chunk_features(k, g) for k in keys])[:size]

    def features_on(self, space: str, name: str, g: Any, size: int) -> np.ndarray:
        """Features (size, d) of the same proposals on another space (a choice compared on several)."""
        if space == self.space:
            return self.features(name, g, size)
        cache, fn = self._other.setdefault(space, {}), feature_map(space, self._device)
        out = []
        for key in (Chunk(name, c) for c in range(math.ceil(size / CHUNK))):
            if key not in cache:
                cache[key] = features_of(fn, self._chunk(key, g)).double().numpy()
            out.append(cache[key])
        return np.concatenate(out)[:size]

    def ratios(self, name: str, g: Any, size: int, critic: Critic) -> np.ndarray:
        """The critic's log density ratio for the same proposals."""
        cache = self._ratios.setdefault(critic, {})
        out = []
        for key in (Chunk(name, c) for c in range(math.ceil(size / CHUNK))):
            if key not in cache:
                with torch.no_grad():
                    if critic.on_features:  # a feature judge: no second featurisation
                        f = torch.from_numpy(self._chunk_features(key, g)).float()
                        cache[key] = critic.log_ratio_from_features(f).double().numpy()
                    else:
                        cache[key] = critic.log_ratio(self._chunk(key, g)).double().numpy()
            out.append(cache[key])
        return np.concatenate(out)[:size]


def shift_for(weights: np.ndarray) -> np.ndarray:
    """−log(M w_i): the per-member correction from the uniform mixture's ratio to the w-mixture's
    (exact where members' supports do not overlap), so one critic serves every weighting."""
    m = len(weights)
    with np.errstate(divide="ignore"):
        return np.where(weights > 0, -np.log(m * np.maximum(weights, 1e-300)), -np.inf)


def pool_log_m(ratios: list[np.ndarray], burn_in: int) -> float | None:
    """D̃_M off a pool's (corrected) log ratios: their largest, when the pool holds at least `burn_in`
    proposals of the mixture (it is then a burn-in of it); None where a burn-in must be drawn."""
    pooled = np.concatenate(ratios)
    return float(pooled.max()) if len(pooled) >= burn_in else None
