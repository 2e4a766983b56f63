"""mlp-gan: fully connected generator and discriminator, for 2-D points and flattened images."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from gensemble.config import check_ranges
from gensemble.models.base import GAN, MODELS, ModelEntry
from gensemble.models.blocks import Norm, Reshape, maybe_spectral, norm_1d


@dataclass(frozen=True)
class MLPGANConfig:
    """Sizes follow the 2-D mixture experiments of VEEGAN/PacGAN, scaled down for a CPU."""

    z_dim: int = 2
    g_hidden: int = 256
    g_layers: int = 3
    d_hidden: int = 256
    d_layers: int = 3
    g_norm: Norm = "none"
    d_norm: Norm = "none"
    spectral_norm: bool = False

    def validate(self, path: str = "") -> None:

        check_ranges(
            self,
            path,
            z_dim=(1, 4096),
            g_hidden=(1, 16384),
            d_hidden=(1, 16384),
            g_layers=(1, 64),
            d_layers=(1, 64),
        )


def _mlp(sizes: list[int], act: nn.Module, norm: Norm, spectral: bool = False) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [maybe_spectral(nn.Linear(a, b), spectral), norm_1d(norm, b), act]
    return layers


def build_mlp_gan(cfg: MLPGANConfig, shape: tuple[int, ...]) -> GAN:
    out = math.prod(shape)
    g_layers = _mlp([cfg.z_dim] + [cfg.g_hidden] * cfg.g_layers, nn.ReLU(), cfg.g_norm)
    g_layers.append(nn.Linear(cfg.g_hidden, out))
    d_layers: list[nn.Module] = [nn.Flatten()]
    d_layers += _mlp([out] + [cfg.d_hidden] * cfg.d_layers, nn.LeakyReLU(0.2), cfg.d_norm, cfg.spectral_norm)
    d_layers += [maybe_spectral(nn.Linear(cfg.d_hidden, 1), cfg.spectral_norm), nn.Flatten(0)]
    if len(shape) > 1:
        # Images live in [-1, 1]; 2-D mixtures are raw coordinates (grid25 spans ±4), so no squashing.
        g_layers += [nn.Tanh(), Reshape(*shape)]
    return GAN(nn.Sequential(*g_layers), nn.Sequential(*d_layers), cfg.z_dim)


MODELS.register("mlp-gan", "MLP generator and discriminator (2-D points or flattened images)")(
    ModelEntry(MLPGANConfig, build_mlp_gan, "gan")
)
