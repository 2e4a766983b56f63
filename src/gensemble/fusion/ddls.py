"""ddls: discriminator-driven latent sampling (Che et al. 2020, "Your GAN is secretly an
energy-based model and you should use discriminator driven latent sampling").

A GAN generator G with prior p0(z) and a critic whose logit d(x) estimates log p_data(x)/p_G(x)
define the energy E(z) = -log p0(z) - d(G(z)) on the latent space; sampling z ∝ exp(-E(z)) and
returning G(z) samples the critic-corrected distribution. Sampling runs Langevin dynamics:

    z ← z - (ε/2)·∇E(z) + noise·√ε·n,   n ~ N(0, I),   for `steps` steps,

starting from z ~ p0. Here each output first picks a member from the proposal mixture (uniform over
the selected generators) and runs the chain in that member's own latent space; d is the logit of
the calibrated ensemble critic that the other critic fusions share (Platt calibration keeps it
differentiable), so its estimate is of p_data / p_mixture. With noise 0 the chain is gradient
descent on E (a MAP point per start), which is faster to converge and less diverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gensemble.errors import ConfigError
from gensemble.fusion.base import FusionContext, register_fusion
from gensemble.fusion.critic import EnsembleCritic, shared_critic
from gensemble.fusion.params import CriticParams
from gensemble.fusion.proposal import MixtureSampler
from gensemble.sampling import Samples


@dataclass(frozen=True)
class DDLSParams(CriticParams):
    steps: int = 50  # Langevin steps per chain
    step_size: float = 0.01  # ε
    noise: float = 1.0  # scale of the √ε Gaussian noise (0: gradient descent on the energy)

    def _check(self, path: str) -> None:
        if self.calibration != "platt":
            raise ConfigError(
                f"config key '{path}.calibration' must be platt for ddls: the chain follows the critic's "
                "gradient, and isotonic calibration is flat almost everywhere"
            )
        if not 0 <= self.steps <= 100_000:
            raise ConfigError(f"config key '{path}.steps' must be in [0, 100000], got {self.steps}")
        if not 0 < self.step_size <= 10:
            raise ConfigError(f"config key '{path}.step_size' must be in (0, 10], got {self.step_size}")
        if not 0 <= self.noise <= 10:
            raise ConfigError(f"config key '{path}.noise' must be in [0, 10], got {self.noise}")


def energy(model: torch.nn.Module, critic: EnsembleCritic, z: Tensor) -> Tensor:
    """E(z) = ½‖z‖² − d(G(z)) per row (the standard normal prior, up to a constant)."""
    return 0.5 * z.pow(2).sum(1) - critic.log_ratio(model.decode(z))


def langevin(
    model: torch.nn.Module,
    critic: EnsembleCritic,
    z: Tensor,
    p: DDLSParams,
    generator: torch.Generator | None,
) -> Tensor:
    """`p.steps` Langevin steps on E from z; the networks stay frozen and in evaluation mode."""
    eps = p.step_size
    for _ in range(p.steps):
        z = z.detach().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(energy(model, critic, z).sum(), z)
        noise = torch.randn(z.shape, generator=generator, device=generator.device if generator else z.device)
        z = z.detach() - 0.5 * eps * grad + p.noise * eps**0.5 * noise.to(z.device)
    return z.detach()


class DDLSSampler:
    """Picks a member per output from the proposal mixture, then runs its chain in that latent space."""

    acceptance_rate: float | None = None  # every chain's end is kept

    def __init__(self, proposal: MixtureSampler, critic: EnsembleCritic, p: DDLSParams) -> None:
        self.proposal, self.critic, self.p = proposal, critic, p
        self.members = proposal.members

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Samples:
        picks = torch.multinomial(self.proposal.weights, n, replacement=True, generator=generator)
        xs: list[Tensor | None] = [None] * len(self.proposal.models)
        for i, model in enumerate(self.proposal.models):
            count = int((picks == i).sum())
            if count == 0:
                continue
            was_training = model.training
            model.eval()
            try:
                parts = []
                for start in range(0, count, self.p.batch_size):
                    z = model.latent(min(self.p.batch_size, count - start), generator)
                    parts.append(model.decode(langevin(model, self.critic, z, self.p, generator)).cpu())
            finally:
                model.train(was_training)
            xs[i] = torch.cat(parts)
        # Outputs in the order of the picks, so member ids interleave as the mixture draws them.
        x = torch.empty(n, *next(t for t in xs if t is not None).shape[1:])
        for i, t in enumerate(xs):
            if t is not None:
                x[picks == i] = t
        return Samples(x, self.proposal._index[picks], list(self.members))


@register_fusion("ddls", DDLSParams, True)
def fuse_by_ddls(ctx: FusionContext, p: DDLSParams) -> DDLSSampler:
    """discriminator-driven latent sampling: Langevin dynamics on −log p(z) − d(G(z)) per member (Che et al. 2020)"""
    proposal, critic = shared_critic(ctx, "fusion 'ddls'")
    return DDLSSampler(proposal, critic, p)
