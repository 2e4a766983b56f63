"""GAN and VAE losses as pure functions over logits and tensors, plus optimiser construction.

Every GAN loss has the same pair of signatures, so a training loop never spells out the maths:
``d_loss(real_logits, fake_logits) -> Tensor`` and ``g_loss(fake_logits) -> Tensor``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from gensemble.config import check_ranges
from gensemble.errors import ConfigError
from gensemble.registry import Registry

# --- GAN losses -------------------------------------------------------------------------------


def d_minimax(real: Tensor, fake: Tensor) -> Tensor:
    """-log D(x) - log(1 - D(G(z))), written with softplus for stability."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def g_minimax(fake: Tensor) -> Tensor:
    """The original saturating objective: minimise log(1 - D(G(z))) = -softplus(logit)."""
    return -F.softplus(fake).mean()


def g_nonsaturating(fake: Tensor) -> Tensor:
    """-log D(G(z)); same fixed point as minimax but strong gradients early on (Goodfellow 2014)."""
    return F.softplus(-fake).mean()


def d_hinge(real: Tensor, fake: Tensor) -> Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def g_hinge(fake: Tensor) -> Tensor:
    return -fake.mean()


def d_least_squares(real: Tensor, fake: Tensor) -> Tensor:
    """LSGAN (Mao et al. 2017) with targets a=0 (fake), b=1 (real)."""
    return 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean()


def g_least_squares(fake: Tensor) -> Tensor:
    return 0.5 * ((fake - 1.0) ** 2).mean()


def d_wasserstein(real: Tensor, fake: Tensor) -> Tensor:
    """The critic part of WGAN-GP; the gradient penalty is added by the trainer (it needs D)."""
    return fake.mean() - real.mean()


def g_wasserstein(fake: Tensor) -> Tensor:
    return -fake.mean()


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, eps: Tensor) -> Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): (||∇D(x̂)||₂ - 1)² on random interpolates x̂.

    `eps` has one weight per example, shape (B,); stacked critics (the batched ensemble engine) pass
    (M, B) with real/fake of shape (M, B, ...) and get one penalty per critic, shape (M,).
    """
    shape = eps.shape + (1,) * (real.dim() - eps.dim())
    mixed = (eps.view(shape) * real + (1 - eps.view(shape)) * fake).requires_grad_(True)
    out = critic(mixed)
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return ((grad.flatten(eps.dim()).norm(2, dim=-1) - 1.0) ** 2).mean(dim=-1)


@dataclass(frozen=True)
class GANLoss:
    """A named pair of discriminator and generator objectives."""

    d_loss: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[[Tensor], Tensor]
    gradient_penalty: bool = False  # WGAN-GP adds a penalty on D's gradients


GAN_LOSSES: Registry[GANLoss] = Registry("loss")
GAN_LOSSES.register("minimax", "original minimax: G minimises log(1 - D(G(z)))")(
    GANLoss(d_minimax, g_minimax)
)
GAN_LOSSES.register("non-saturating", "non-saturating: G minimises -log D(G(z))")(
    GANLoss(d_minimax, g_nonsaturating)
)
GAN_LOSSES.register("hinge", "hinge loss (Lim & Ye 2017; Miyato et al. 2018)")(GANLoss(d_hinge, g_hinge))
GAN_LOSSES.register("least-squares", "least-squares GAN (Mao et al. 2017)")(
    GANLoss(d_least_squares, g_least_squares)
)
GAN_LOSSES.register("wgan-gp", "Wasserstein loss with gradient penalty (Gulrajani et al. 2017)")(
    GANLoss(d_wasserstein, g_wasserstein, gradient_penalty=True)
)


# --- VAE ----------------------------------------------------------------------------------------


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(q(z|x) || N(0, I)) per example, summed over latent dimensions."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def elbo(
    decoded: Tensor,
    x: Tensor,
    mu: Tensor,
    logvar: Tensor,
    beta: float = 1.0,
    reconstruction: Literal["bce", "mse"] = "bce",
) -> tuple[Tensor, Tensor, Tensor]:
    """Negative β-ELBO (Higgins et al. 2017), averaged over the batch: (loss, recon, kl).

    With "bce", `decoded` are logits of Bernoulli pixels over x mapped to [0, 1]; with "mse",
    `decoded` is the mean of a unit-variance Gaussian over x in [-1, 1] (so recon is ½‖x - x̂‖²).
    """
    if reconstruction == "bce":
        target = (x + 1.0) / 2.0
        recon = F.binary_cross_entropy_with_logits(decoded, target, reduction="none").flatten(1).sum(1)
    else:
        recon = 0.5 * (decoded - x).pow(2).flatten(1).sum(1)
    kl = gaussian_kl(mu, logvar)
    return (recon + beta * kl).mean(), recon.mean(), kl.mean()


# --- Optimisers ---------------------------------------------------------------------------------


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
        return torch.optim.Adam(
            params, lr=lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, fused=True
        )
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.RMSprop(
        params, lr=lr, alpha=cfg.alpha, eps=cfg.eps, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
