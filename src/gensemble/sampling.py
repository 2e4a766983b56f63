"""Samples as tensors with their owners (`Samples`), drawn from a mixture of generators; writing them
to files is `save_samples`'s job alone. Runs are sampled by `gensemble.run.sample` and
`gensemble.fusion.files`."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from gensemble.errors import ConfigError
from gensemble.imageio import make_grid, save_grid, save_npz
from gensemble.plots import save_scatter, scatter_png


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


def save_samples(samples: Samples, path: str | Path, modes: Tensor | None = None) -> Path:
    """PNG: an image grid (or a scatter plot for 2-D points). NPZ: arrays x and member_ids."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".npz"):
        raise ConfigError(f"output {str(path)!r} must end in .png or .npz")
    if suffix == ".npz":
        save_npz(samples.x, path, member_ids=samples.member_ids.numpy(), members=np.array(samples.members))
    elif samples.x.dim() == 2:
        save_scatter(
            samples.x.numpy(),
            path,
            modes=None if modes is None else modes.numpy(),
            labels=samples.member_ids.numpy(),
        )
    else:
        save_grid(samples.x, path)
    return path


def sample_png(x: Tensor, modes: Tensor | None = None, title: str = "") -> bytes:
    """A PNG of samples: an image grid, or a scatter over the true modes for 2-D points."""
    if x.dim() == 2:
        return scatter_png(x.numpy(), None if modes is None else modes.numpy(), title=title)
    buf = io.BytesIO()
    Image.fromarray(make_grid(x)).save(buf, format="PNG")
    return buf.getvalue()
