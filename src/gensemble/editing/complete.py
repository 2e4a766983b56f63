"""Completion by the ensemble: every member proposes a filled-in image, the critics choose.

Each member projects the known pixels into its latent space (`latent.search`) and proposes
``known·x + hole·G(z)``: its generated pixels in the hole, the image's own everywhere else. Every
candidate is described by three numbers:

* known_mse: how well the member reproduced the known pixels (mean squared error);
* boundary: the mean squared jump across the hole's edge, between each filled pixel and its known
  4-neighbours: a seam where the proposal does not continue the image;
* realism: the ensemble critic's log density ratio log p_data/p_model of the whole candidate (the
  calibrated critic of the critic fusions), 0 when the run has no discriminators.

How much each number says about the error in the hole differs by member: a GAN's latent search
fits the known pixels about as closely as a VAE's and still fills the hole worse. So the ensemble
*learns* it: `fit_cost_model` completes held-out calibration images (never the images it is later
asked to complete) with random holes, and fits per member a least-squares map from the three
numbers to the hole's true error. The ensemble also proposes a candidate of its own, the average of
the members' fills weighted by 1 / predicted error² (inverse-variance weighting), with its own
fitted map. The choice is the candidate with the lowest predicted hole error.

Without a fitted model (`cost_model=None`) the cost is the fixed combination
``known_mse + boundary_weight · boundary − realism_weight · realism``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from gensemble.config import check_ranges
from gensemble.editing.latent import SearchConfig, known_mse, search
from gensemble.errors import ConfigError


@dataclass(frozen=True)
class CompletionConfig:
    search: SearchConfig = field(default_factory=SearchConfig)
    boundary_weight: float = 0.5
    realism_weight: float = 0.002
    n_critic_fit: int = 1000  # held-out real images (and as many generated) the ensemble critic is fitted on
    n_cost_fit: int = (
        128  # held-out calibration images the cost model is fitted on (random quarter-size holes)
    )

    def validate(self, path: str = "") -> None:
        check_ranges(
            self,
            path,
            boundary_weight=(0, 1e3),
            realism_weight=(0, 1e3),
            n_critic_fit=(10, 10**6),
            n_cost_fit=(8, 10**5),
        )


ENSEMBLE = "ensemble"  # the name of the ensemble's own (blended) candidate


@dataclass
class CostModel:
    """Per candidate source (member name, or ENSEMBLE): weights of [known_mse, boundary, realism, 1]."""

    weights: dict[str, Tensor]
    n_images: int

    def predict(self, name: str, features: Tensor) -> Tensor:
        return features @ self.weights[name]


def features_of(known_mse: Tensor, boundary: Tensor, realism: Tensor | None) -> Tensor:
    """(..., 4): the three descriptions of a candidate and a constant."""
    r = realism if realism is not None else torch.zeros_like(known_mse)
    return torch.stack([known_mse, boundary, r, torch.ones_like(known_mse)], -1)


def least_squares(features: Tensor, target: Tensor, ridge: float = 1e-4) -> Tensor:
    """Ridge-regularised least squares (features (B, F), target (B,)): a little ridge keeps it stable
    when a feature is constant (no critic: realism is all zeros)."""
    a = features.double()
    w = torch.linalg.solve(a.T @ a + ridge * torch.eye(a.shape[1], dtype=a.dtype), a.T @ target.double())
    return w.float()


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
            row = {
                "cost": self.cost[m, b],
                "known_mse": self.known_mse[m, b],
                "boundary": self.boundary[m, b],
            }
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


def propose(generators: dict, x: Tensor, hole: Tensor, cfg: SearchConfig) -> tuple[Tensor, Tensor, Tensor]:
    """Every member's generated image and composite (M, B, C, H, W), and its known-pixel error (M, B)."""
    known = 1 - hole
    gens, errs = [], []
    for model in generators.values():
        proj = search(model, x, known, cfg)
        gens.append(proj.image)
        errs.append(proj.known_mse)
    generated = torch.stack(gens)
    return generated, composite(x.unsqueeze(0), generated, hole.unsqueeze(0)), torch.stack(errs)


def describe(
    generators: dict, x: Tensor, hole: Tensor, critic, cfg: SearchConfig
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    """Every member's generated image and composite (M, B, C, H, W), and known_mse, boundary, realism (M, B)."""
    generated, candidates, known_err = propose(generators, x, hole, cfg)
    boundary, realism = judge(candidates, hole, critic)
    return generated, candidates, known_err, boundary, realism


def judge(candidates: Tensor, hole: Tensor, critic) -> tuple[Tensor, Tensor | None]:
    m, b = candidates.shape[:2]
    flat = candidates.flatten(0, 1)
    boundary = boundary_jump(flat, hole.repeat(m, 1, 1, 1)).view(m, b)
    realism = critic.log_ratio(flat).view(m, b).cpu() if critic is not None else None
    return boundary, realism


def blend(generated: Tensor, predicted: Tensor) -> Tensor:
    """The members' generated images averaged with weights 1 / predicted error² (per image)."""
    w = 1.0 / predicted.clamp(min=1e-4) ** 2
    w = w / w.sum(0, keepdim=True)
    return (w[:, :, None, None, None] * generated).sum(0)


def ensemble_candidate(
    x: Tensor, hole: Tensor, generated: Tensor, predicted: Tensor, critic
) -> tuple[Tensor, Tensor]:
    """The ensemble's own candidate (B, C, H, W) and its features (B, 4)."""
    mixed = blend(generated, predicted)
    candidate = composite(x, mixed, hole)
    boundary, realism = judge(candidate.unsqueeze(0), hole, critic)
    feats = features_of(
        known_mse(mixed, x, 1 - hole), boundary[0], realism[0] if realism is not None else None
    )
    return candidate, feats


def fit_cost_model(
    generators: dict, x: Tensor, hole: Tensor, critic, cfg: SearchConfig = SearchConfig()
) -> CostModel:
    """Fit, per member and for the ensemble's blend, the map from a candidate's description to its true
    hole error, on calibration images x with holes `hole` (B, 1, H, W)."""
    generated, candidates, known_err, boundary, realism = describe(generators, x, hole, critic, cfg)
    truth = hole_mse(candidates, x.unsqueeze(0), hole.unsqueeze(0))
    feats = features_of(known_err, boundary, realism)
    weights = {name: least_squares(feats[m], truth[m]) for m, name in enumerate(generators)}
    predicted = torch.stack([feats[m] @ weights[name] for m, name in enumerate(generators)])
    candidate, mixed_feats = ensemble_candidate(x, hole, generated, predicted, critic)
    weights[ENSEMBLE] = least_squares(mixed_feats, hole_mse(candidate, x, hole))
    return CostModel(weights, len(x))


def complete_images(
    generators: dict,
    x: Tensor,
    hole: Tensor,
    critic=None,
    cfg: CompletionConfig = CompletionConfig(),
    cost_model: CostModel | None = None,
) -> Completion:
    """Complete images x (B, C, H, W) in [-1, 1] where hole (B or 1, 1, H, W) is 1.

    `generators` maps member names to models; `critic` is a fitted EnsembleCritic (or None);
    `cost_model` (from `fit_cost_model`) predicts each candidate's hole error and adds the ensemble's
    own blended candidate; without it the fixed weighted cost of the config decides.
    """
    if not generators:
        raise ConfigError("no member of this run can complete images; train GAN or VAE members on images")
    hole = hole.expand(len(x), 1, *x.shape[2:]).float()
    generated, candidates, known_err, boundary, realism = describe(generators, x, hole, critic, cfg.search)
    names = list(generators)
    if cost_model is None:
        cost = known_err + cfg.boundary_weight * boundary
        if realism is not None:
            cost = cost - cfg.realism_weight * realism
    else:
        feats = features_of(known_err, boundary, realism)
        cost = torch.stack([cost_model.predict(n, feats[m]) for m, n in enumerate(names)])
        candidate, mf = ensemble_candidate(x, hole, generated, cost, critic)
        candidates = torch.cat([candidates, candidate.unsqueeze(0)])
        cost = torch.cat([cost, cost_model.predict(ENSEMBLE, mf).unsqueeze(0)])
        known_err, boundary = torch.cat([known_err, mf[None, :, 0]]), torch.cat([boundary, mf[None, :, 1]])
        if realism is not None:
            realism = torch.cat([realism, mf[None, :, 2]])
        names = [*names, ENSEMBLE]
    choice = cost.argmin(0)
    chosen = candidates[choice, torch.arange(len(x))]
    return Completion(chosen, choice, candidates, names, cost, known_err, boundary, realism)


def psnr(mse: Tensor, peak: float = 2.0) -> Tensor:
    """Peak signal-to-noise ratio in dB for images in [-1, 1] (peak-to-peak range 2)."""
    return 10 * torch.log10(peak**2 / mse.clamp(min=1e-12))


def hole_mse(images: Tensor, target: Tensor, hole: Tensor) -> Tensor:
    """Mean squared error over the hole only (..., B): what a completion got right that it never saw."""
    err = ((images - target) ** 2 * hole).flatten(-3).sum(-1)
    return err / (hole.flatten(-3).sum(-1) * images.shape[-3]).clamp(min=1)


__all__ = [
    "Completion",
    "CompletionConfig",
    "CostModel",
    "complete_images",
    "composite",
    "fit_cost_model",
    "boundary_jump",
    "hole_mse",
    "psnr",
]
