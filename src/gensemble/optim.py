"""Optimisers: the settings members and auxiliary networks are trained with, and the one builder."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from gensemble.config import check_ranges
from gensemble.errors import ConfigError

# A learning rate above this only ever diverges; refusing it saves a wasted run.
MAX_LR = 10.0


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser settings. `lr_d` lets D use its own rate (TTUR, Heusel et al. 2017)."""

    name: Literal["adam", "sgd", "rmsprop"] = "adam"
    lr: float = 2e-4
    lr_d: float | None = None
    betas: tuple[float, float] = (0.5, 0.999)  # DCGAN's β1 = 0.5
    momentum: float = 0.0
    alpha: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 0.0

    def validate(self, path: str = "") -> None:

        p = f"{path}." if path else ""
        for key in ("lr", "lr_d"):
            value = getattr(self, key)
            if value is not None and not 0 < value <= MAX_LR:
                raise ConfigError(f"config key '{p}{key}' must be in (0, {MAX_LR:g}], got {value!r}")
        for i, beta in enumerate(self.betas):
            if not 0 <= beta < 1:
                raise ConfigError(f"config key '{p}betas[{i}]' must be in [0, 1), got {beta!r}")
        if not 0 < self.eps <= 1:
            raise ConfigError(f"config key '{p}eps' must be in (0, 1], got {self.eps!r}")
        check_ranges(self, path, momentum=(0, 0.999), alpha=(0, 0.9999), weight_decay=(0, 1))


def build_optimizer(params: Iterable[Tensor], cfg: OptimConfig, role: str = "G") -> torch.optim.Optimizer:
    """An optimiser for one network; D (role "D") uses `lr_d` when it is set."""
    lr = cfg.lr_d if (role == "D" and cfg.lr_d is not None) else cfg.lr
    if cfg.name == "adam":
        # Fused: one kernel per update instead of a dozen per tensor (about 2% faster a DCGAN step on
        # a CPU in benchmarks/loop_speed.py; the same update up to float rounding).
        return torch.optim.Adam(
            params, lr=lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, fused=True
        )
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.RMSprop(
        params, lr=lr, alpha=cfg.alpha, eps=cfg.eps, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
