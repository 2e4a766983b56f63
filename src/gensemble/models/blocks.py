"""Layers shared by the model families."""

from __future__ import annotations

import math
from typing import Literal

from torch import nn

Norm = Literal["batch", "layer", "none"]


def norm_2d(kind: Norm, channels: int) -> nn.Module:
    """A normalisation layer for conv features. 'layer' is GroupNorm(1), safe for WGAN-GP critics."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


def norm_1d(kind: Norm, features: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(features)
    if kind == "layer":
        return nn.LayerNorm(features)
    return nn.Identity()


def conv_plan(size: int) -> tuple[int, int]:
    """(base spatial size, number of 2× stages) so that base · 2^stages == size; base is 4 or 7.

    28 px (MNIST-like) starts at 7×7, powers of two start at 4×4, as DCGAN does.
    """
    for base in (4, 7):
        stages = math.log2(size / base) if size >= base else -1
        if stages >= 1 and stages.is_integer():
            return base, int(stages)
    raise ValueError(f"image size {size} is not 7·2^k or 4·2^k (k ≥ 1); use 8, 14, 16, 28, 32 or 64")


def maybe_spectral(module: nn.Module, enabled: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(module) if enabled else module


class Reshape(nn.Module):
    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.view(x.shape[0], *self.shape)


def init_dcgan_weights(module: nn.Module) -> None:
    """N(0, 0.02) conv/linear weights and N(1, 0.02) norm scales, as in Radford et al. 2016."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif (
            isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.LayerNorm))
            and m.weight is not None
        ):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
