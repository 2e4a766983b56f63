"""Latent search: the code z whose image G(z) best matches the known pixels of an image.

A GAN member starts from several random codes (restarts) and keeps, per image, the restart with
the lowest loss; a VAE member starts from its encoder's code. Both then minimise, with Adam on z
alone (the networks are frozen and in evaluation mode),

    loss(z) = Σ_known (G(z) − x)² / |known|  +  prior_weight · ‖z‖² / dim(z),

whose second term keeps z where the prior N(0, I) puts its mass, so the filled-in pixels look like
the model's samples and not like an adversarial fit to the known ones (Yeh et al. 2017 use the same
split of a context loss and a prior loss). Each image's loss is summed, never averaged over the
batch, so an image's result does not depend on what else is in the batch.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch
from torch import Tensor

from gensemble.config import SEED_RANGE, check_ranges
from gensemble.models.base import GenerativeModel

CHUNK = 256  # rows (images × restarts) optimised at a time, to bound memory


@dataclass(frozen=True)
class SearchConfig:
    """How hard each member searches for a code."""

    restarts: int = 4  # random starting codes per image (GANs; a VAE starts from its encoder)
    steps: int = 60  # Adam steps on z
    lr: float = 0.05
    prior_weight: float = 0.01
    seed: int = 0

    def validate(self, path: str = "") -> None:
        check_ranges(
            self,
            path,
            restarts=(1, 64),
            steps=(0, 10_000),
            lr=(1e-6, 10),
            prior_weight=(0, 1e3),
            seed=SEED_RANGE,
        )


@dataclass
class Projection:
    """Per image: the code found, its image G(z), and the masked loss it reached."""

    z: Tensor  # (B, z_dim)
    image: Tensor  # (B, C, H, W) in [-1, 1]
    known_mse: Tensor  # (B,) mean squared error over the known pixels


def known_mse(image: Tensor, target: Tensor, known: Tensor) -> Tensor:
    """Mean squared error over the known pixels of each image (B,). `known` is (B, 1, H, W) in {0, 1}."""
    err = ((image - target) ** 2 * known).flatten(1).sum(1)
    return err / (known.flatten(1).sum(1) * image.shape[1]).clamp(min=1)


def _starts(model: GenerativeModel, target: Tensor, known: Tensor, cfg: SearchConfig) -> Tensor:
    """Starting codes (B·R, z_dim): the encoder's mean for a VAE (R = 1), else prior draws."""
    if model.family == "vae":
        fill = (target * known).flatten(1).sum(1) / (known.flatten(1).sum(1) * target.shape[1]).clamp(min=1)
        filled = torch.where(known.bool(), target, fill.view(-1, 1, 1, 1))
        with torch.no_grad():
            mu, _ = model.encode(filled)  # type: ignore[attr-defined]
        return mu
    # Each image draws its restarts from a seed of its own (cfg.seed and its known pixels), so an
    # image starts from the same codes whatever else is in the call and wherever it stands there.
    # One draw per restart: the first r restarts are then the same whatever cfg.restarts is (torch
    # fills a long normal tensor in blocks, so one (R, z) draw would not begin with the (1, z) one).
    starts = []
    for x, k in zip(target, known):
        gen = torch.Generator().manual_seed(image_seed(cfg.seed, x, k))
        starts.extend(torch.randn(model.z_dim, generator=gen) for _ in range(cfg.restarts))
    return torch.stack(starts)


def image_seed(seed: int, image: Tensor, known: Tensor) -> int:
    """A seed from `seed` and an image's known pixels (as float32 bytes): the same image, the same seed."""
    data = (image * known).detach().float().cpu().contiguous().numpy().tobytes()
    return (seed * 1_000_003 + zlib.crc32(data + known.detach().float().cpu().numpy().tobytes())) % (2**63)


def search(
    model: GenerativeModel, target: Tensor, known: Tensor, cfg: SearchConfig = SearchConfig()
) -> Projection:
    """Project each image of `target` (B, C, H, W) into `model`'s latent space, fitting only `known` pixels."""
    device = next(model.parameters()).device
    target, known = target.to(device), known.to(device)
    restarts = 1 if model.family == "vae" else cfg.restarts
    z0 = _starts(model, target, known, cfg).to(device)
    rows = torch.arange(len(target), device=device).repeat_interleave(restarts)
    was_training = model.training
    grads = [p.requires_grad for p in model.parameters()]
    model.eval().requires_grad_(False)
    try:
        zs, losses = [], []
        for i in range(0, len(z0), CHUNK):
            z, loss = _optimise(
                model, z0[i : i + CHUNK], target[rows[i : i + CHUNK]], known[rows[i : i + CHUNK]], cfg
            )
            zs.append(z)
            losses.append(loss)
        z, loss = torch.cat(zs), torch.cat(losses)
        best = (
            loss.view(len(target), restarts).argmin(1) + torch.arange(len(target), device=device) * restarts
        )
        z = z[best]
        with torch.no_grad():
            image = model.decode(z)
    finally:
        model.train(was_training)
        for p, g in zip(model.parameters(), grads):
            p.requires_grad_(g)
    return Projection(z.detach().cpu(), image.detach().cpu(), known_mse(image, target, known).detach().cpu())


def _optimise(
    model: GenerativeModel, z0: Tensor, target: Tensor, known: Tensor, cfg: SearchConfig
) -> tuple[Tensor, Tensor]:
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=cfg.lr)
    for _ in range(cfg.steps):
        loss = known_mse(model.decode(z), target, known) + cfg.prior_weight * z.pow(2).mean(1)
        opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        opt.step()
    with torch.no_grad():
        final = known_mse(model.decode(z), target, known) + cfg.prior_weight * z.pow(2).mean(1)
    return z.detach(), final
