"""GAN and VAE losses as pure functions over logits and tensors, plus optimiser construction.

Every GAN loss has the same pair of signatures, so a training loop never spells out the maths:
``d_loss(real_logits, fake_logits) -> Tensor`` and ``g_loss(fake_logits) -> Tensor``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

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


def r1_penalty(critic: Callable[[Tensor], Tensor], real: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018): E ||∇_x D(x)||² on real images, which keeps D flat on the data so
    that it cannot saturate on a small training set. Weighted by γ/2 in the D objective."""
    x = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()


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
