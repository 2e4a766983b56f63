"""mlp-vae: fully connected encoder/decoder with a Gaussian latent, β-ELBO, for 2-D points and
flattened images (the convolutional family is `vae`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from gensemble.config import check_ranges
from gensemble.models.base import MODELS, ModelEntry
from gensemble.models.blocks import Reshape
from gensemble.models.vae import GaussianVAE


@dataclass(frozen=True)
class MLPVAEConfig:
    z_dim: int = 2
    hidden: int = 128
    layers: int = 3
    # β-VAE weight on the KL term. With "mse" the decoder is a unit-variance Gaussian, so β also acts
    # as the decoder's variance: β = s² is the ELBO of a decoder with standard deviation s.
    beta: float = 1.0
    reconstruction: Literal["bce", "mse"] = "mse"  # bce: images in [-1, 1] only

    def validate(self, path: str = "") -> None:
        check_ranges(self, path, z_dim=(1, 4096), hidden=(1, 16384), layers=(1, 64), beta=(0, 1e6))


def _stack(sizes: list[int]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
    return layers


class MLPVAE(GaussianVAE):
    def __init__(self, cfg: MLPVAEConfig, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.cfg, self.z_dim, self.images = cfg, cfg.z_dim, len(shape) > 1
        if cfg.reconstruction == "bce" and not self.images:
            raise ValueError("mlp-vae: reconstruction 'bce' models pixels in [-1, 1]; use 'mse' for points")
        out = math.prod(shape)
        enc: list[nn.Module] = [nn.Flatten(), *_stack([out] + [cfg.hidden] * cfg.layers)]
        self.encoder = nn.Sequential(*enc, nn.Linear(cfg.hidden, 2 * cfg.z_dim))
        dec = [*_stack([cfg.z_dim] + [cfg.hidden] * cfg.layers), nn.Linear(cfg.hidden, out)]
        self.decoder = nn.Sequential(*dec, *([Reshape(*shape)] if self.images else []))

    def decode(self, z: Tensor) -> Tensor:
        out = self.decoder(z)
        if self.cfg.reconstruction == "bce":
            return torch.sigmoid(out) * 2.0 - 1.0
        # Images live in [-1, 1]; 2-D mixtures are raw coordinates (grid25 spans ±4): no clamp there.
        return out.clamp(-1.0, 1.0) if self.images else out


MODELS.register("mlp-vae", "MLP VAE with a Gaussian latent, β-ELBO (2-D points or flattened images)")(
    ModelEntry(MLPVAEConfig, lambda cfg, shape: MLPVAE(cfg, shape), "vae")
)
