"""Completion by the ensemble: every member proposes a filled-in image, the critics choose.

Each member projects the known pixels into its latent space (`latent.search`) and proposes
``known·x + hole·G(z)``: its generated pixels in the hole, the image's own everywhere else. Each
candidate is scored by a cost, lower is better,

    cost = known_mse  +  boundary_weight · boundary  −  realism_weight · realism,

* known_mse: how well the member reproduced the known pixels (mean squared error);
* boundary: the mean squared jump across the hole's edge, between each filled pixel and its known
  4-neighbours: a seam where the proposal does not continue the image;
* realism: the ensemble critic's log density ratio log p_data/p_model of the whole candidate (the
  calibrated critic of the critic fusions), dropped when the run has no discriminators.

The default weights were chosen on Fashion-MNIST *training* images (benchmarks/completion.py
--tune), never on the held-out images the benchmark scores; see docs/editing.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from gensemble.config import check_ranges
from gensemble.editing.latent import SearchConfig, search
from gensemble.errors import ConfigError


@dataclass(frozen=True)
class CompletionConfig:
    search: SearchConfig = field(default_factory=SearchConfig)
    boundary_weight: float = 0.5
    realism_weight: float = 0.002
    n_critic_fit: int = 1000  # held-out real images (and as many generated) the ensemble critic is fitted on

    def validate(self, path: str = "") -> None:
        check_ranges(self, path, boundary_weight=(0, 1e3), realism_weight=(0, 1e3), n_critic_fit=(10, 10**6))


@dataclass
class Completion:
    """The chosen completion of each image and every member's candidate with its score."""

    chosen: Tensor  # (B, C, H, W)
    choice: Tensor  # (B,) index into `members`
    candidates: Tensor  # (M, B, C, H, W) composites
    members: list[str]
    cost: Tensor  # (M, B), lower is better
    known_mse: Tensor  # (M, B)
    boundary: Tensor  # (M, B)
    realism: Tensor | None  # (M, B), or None without a critic

    def scores(self, b: int) -> dict[str, dict[str, float]]:
        """Image b's candidates: {member: {cost, known_mse, boundary, realism}} (JSON-ready)."""
        out = {}
        for m, name in enumerate(self.members):
            row = {"cost": self.cost[m, b], "known_mse": self.known_mse[m, b], "boundary": self.boundary[m, b]}
            if self.realism is not None:
                row["realism"] = self.realism[m, b]
            out[name] = {k: round(float(v), 6) for k, v in row.items()}
        return out


def composite(x: Tensor, generated: Tensor, hole: Tensor) -> Tensor:
    """Known pixels from x, hole pixels from the generated image."""
    return x * (1 - hole) + generated * hole


def boundary_jump(image: Tensor, hole: Tensor) -> Tensor:
    """Mean squared difference across hole/known edges of each image (B,); 0 where there are none."""
    total, count = torch.zeros(len(image)), torch.zeros(len(image))
    for dim in (2, 3):
        a, b = image.narrow(dim, 0, image.shape[dim] - 1), image.narrow(dim, 1, image.shape[dim] - 1)
        ha, hb = hole.narrow(dim, 0, hole.shape[dim] - 1), hole.narrow(dim, 1, hole.shape[dim] - 1)
        edge = (ha != hb).float()  # one side filled, the other known
        total += ((a - b) ** 2 * edge).flatten(1).sum(1) / image.shape[1]
        count += edge.flatten(1).sum(1)
    return total / count.clamp(min=1)


def propose(generators: dict, x: Tensor, hole: Tensor, cfg: SearchConfig) -> tuple[Tensor, Tensor]:
    """Every member's composite (M, B, C, H, W) and known-pixel error (M, B)."""
    known = 1 - hole
    comps, errs = [], []
    for model in generators.values():
        proj = search(model, x, known, cfg)
        comps.append(composite(x, proj.image, hole))
        errs.append(proj.known_mse)
    return torch.stack(comps), torch.stack(errs)


def complete_images(
    generators: dict, x: Tensor, hole: Tensor, critic=None, cfg: CompletionConfig = CompletionConfig()
) -> Completion:
    """Complete images x (B, C, H, W) in [-1, 1] where hole (B or 1, 1, H, W) is 1.

    `generators` maps member names to models; `critic` is a fitted EnsembleCritic (or None).
    """
    if not generators:
        raise ConfigError("no member of this run can complete images; train GAN or VAE members on images")
    hole = hole.expand(len(x), 1, *x.shape[2:]).float()
    candidates, known_err = propose(generators, x, hole, cfg.search)
    flat = candidates.flatten(0, 1)
    boundary = boundary_jump(flat, hole.repeat(len(generators), 1, 1, 1)).view(len(generators), len(x))
    cost = known_err + cfg.boundary_weight * boundary
    realism = None
    if critic is not None:
        realism = critic.log_ratio(flat).view(len(generators), len(x)).cpu()
        cost = cost - cfg.realism_weight * realism
    choice = cost.argmin(0)
    chosen = candidates[choice, torch.arange(len(x))]
    return Completion(chosen, choice, candidates, list(generators), cost, known_err, boundary, realism)


def psnr(mse: Tensor, peak: float = 2.0) -> Tensor:
    """Peak signal-to-noise ratio in dB for images in [-1, 1] (peak-to-peak range 2)."""
    return 10 * torch.log10(peak**2 / mse.clamp(min=1e-12))


def hole_mse(images: Tensor, target: Tensor, hole: Tensor) -> Tensor:
    """Mean squared error over the hole only (..., B): what a completion got right that it never saw."""
    err = ((images - target) ** 2 * hole).flatten(-3).sum(-1)
    return err / (hole.flatten(-3).sum(-1) * images.shape[-3]).clamp(min=1)


__all__ = ["Completion", "CompletionConfig", "complete_images", "composite", "boundary_jump", "hole_mse", "psnr"]
