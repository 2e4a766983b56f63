"""Samples as tensors with their owners (`Samples`), drawn from a mixture of generators; writing them
to files is `save_samples`'s job alone. Runs are sampled by `gensemble.run.sample` and
`gensemble.sample_job`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass
class Samples:
    """Samples and, for each, the index of the member that made it."""

    x: Tensor
    member_ids: Tensor
    members: list[str]
    acceptance_rate: float | None = None  # kept / proposed, for fusions that reject proposals

    def shares(self) -> dict[str, float]:
        """The fraction of these samples each member made."""
        counts = torch.bincount(self.member_ids.long(), minlength=len(self.members)).float()
        total = max(float(counts.sum()), 1.0)
        return {name: float(c) / total for name, c in zip(self.members, counts)}

    def summary(self) -> str:
        """ "acceptance 23.1%; members: a 40%, b 60%", warning when one member makes almost all of them."""
        shares = self.shares()
        parts = []
        if self.acceptance_rate is not None:
            parts.append(f"acceptance {100 * self.acceptance_rate:.1f}%")
        parts.append("members: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in shares.items()))
        top = max(shares, key=shares.get) if shares else None
        if top is not None and len(shares) > 1 and shares[top] >= DOMINANT_SHARE:
            parts.append(
                f"{top} makes {100 * shares[top]:.0f}% of the samples: the ensemble's diversity is lost"
            )
        return "; ".join(parts)


# A fusion that keeps almost only one member's samples has become that member.
DOMINANT_SHARE = 0.9


def mixture_sample(
    generators: list, weights: Tensor, n: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Draw n samples from a mixture: member i with probability weights[i]. Order is shuffled."""
    ids = torch.multinomial(weights / weights.sum(), n, replacement=True, generator=generator)
    parts, owners = [], []
    for i, g in enumerate(generators):
        k = int((ids == i).sum())
        if k:
            parts.append(g.sample(k, generator).cpu())
            owners.append(torch.full((k,), i, dtype=torch.long))
    x, owner = torch.cat(parts), torch.cat(owners)
    perm = torch.randperm(n, generator=generator)
    return x[perm], owner[perm]


def pooled_samples(generators: dict[str, Any], n: int, seed: int, one_stream: bool = False) -> Tensor:
    """About n samples split evenly over the generators (the uniform mixture, unshuffled): ⌈n/M⌉ of
    each, on the CPU. Each generator draws with its own seed (seed + 7919·i), so its share does not
    depend on the others'; with `one_stream` they draw in turn from one stream seeded `seed`."""
    k = max(1, math.ceil(n / len(generators)))
    shared = torch.Generator().manual_seed(seed)
    return torch.cat(
        [
            g.sample(k, shared if one_stream else torch.Generator().manual_seed(seed + 7919 * i))
            .float()
            .cpu()
            for i, g in enumerate(generators.values())
        ]
    )
