"""multi-discriminator (GMAN, Durugkar et al. 2017): every generator trains against N discriminators.

The N critics "gman.D0".."gman.D{N-1}" share member 0's architecture and optimiser settings, and
differ by their initial weights (each seeded by its name). Every round, each member draws a real and
a latent batch from its own RNG; each critic is trained on all members' real batches against all
their fakes (so with several members, the critics judge the members' uniform mixture). Then each
generator i minimises its losses against the N critics, V_i1..V_iN (the member's GAN loss on each
critic's logits), aggregated:

    mean      (1/N) Σ_j V_ij                                  GMAN-0
    max       max_j V_ij                                      GMAN-max: the harshest critic
    softmax   Σ_j softmax(λ V_i)_j V_ij, temperature λ         GMAN-λ: λ = 0 is the mean, λ → ∞ the max

With `learn_temperature` (GMAN*), each generator learns its own λ ≥ 0 by minimising
F_λ − `temperature_penalty`·λ: left alone it would pick λ = 0, the mean, its easiest target.
Members' own discriminators ("m0.D") are not used; they are kept in the run, marked idle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

import torch
from torch import Tensor, nn

from gensemble.config import check_ranges
from gensemble.ensemble.base import SCHEMES, Executor, Scheme, build_aux_discriminator, require_same
from gensemble.ensemble.state import AuxNet
from gensemble.errors import ConfigError
from gensemble.optim import build_optimizer
from gensemble.training.batched import batch_draws, batched_d_phase, net_group, rows
from gensemble.training.loop import noise, sample_batch
from gensemble.training.round import Optimizers, RoundParts, gan_round

if TYPE_CHECKING:
    from gensemble.data import Dataset
    from gensemble.ensemble.config import RunConfig
    from gensemble.ensemble.state import Ensemble
    from gensemble.training.loop import StepHook


@dataclass(frozen=True)
class GMANConfig:
    discriminators: int = 3  # N
    aggregate: Literal["mean", "max", "softmax"] = "softmax"
    temperature: float = 1.0  # λ of the softmax aggregate (the initial λ when it is learned)
    learn_temperature: bool = False  # GMAN*: each generator learns λ ≥ 0
    temperature_penalty: float = 0.001  # f(λ) = penalty·λ, subtracted from the learned-λ objective

    def validate(self, path: str = "") -> None:
        # Each critic costs a discriminator's memory and a D update per step; 64 is far past GMAN's 5.
        check_ranges(self, path, discriminators=(1, 64), temperature=(0, 1e4), temperature_penalty=(0, 1e4))
        if self.learn_temperature and self.aggregate != "softmax":
            raise ConfigError(
                f"config key '{path}.learn_temperature' needs aggregate: softmax, not {self.aggregate!r}"
            )


class Temperatures(nn.Module):
    """One learned softmax temperature λ per generator (GMAN*)."""

    def __init__(self, n: int, init: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.full((n,), float(init)))


def aggregate(values: Tensor, how: str, temperature: Tensor) -> Tensor:
    """(N critics, M generators) losses -> (M,) per-generator objective (GMAN's F)."""
    if how == "mean":
        return values.mean(0)
    if how == "max":
        return values.max(0).values
    weights = torch.softmax(temperature * values, dim=0)
    return (weights * values).sum(0)


TEMPERATURES = "gman.lambda"  # the learned temperatures' checkpoint name


def critic_names(n: int) -> list[str]:
    """The N critics' checkpoint names: "gman.D0" .. "gman.D{N-1}"."""
    return [f"gman.D{j}" for j in range(n)]


class GMANNets(NamedTuple):
    """GMAN's auxiliary networks: its N critics and, with learn_temperature, the temperatures."""

    critics: list[AuxNet]
    temperatures: AuxNet | None

    @classmethod
    def of(cls, ens: Ensemble, n: int) -> GMANNets:
        lam = ens.aux_net(TEMPERATURES) if TEMPERATURES in ens.aux else None
        return cls([ens.aux_net(name) for name in critic_names(n)], lam)


@SCHEMES.register(
    "multi-discriminator", "GMAN: each generator against N discriminators (mean, max, softmax λ)"
)
class MultiDiscriminator(Scheme):
    config = GMANConfig
    families = ("gan",)
    own_critics = False

    def check(self, cfg: RunConfig) -> None:
        super().check(cfg)
        require_same(cfg, ("loss", "n_critic", "gp_weight", "reuse_fake"))

    def build(self, ens: Ensemble) -> None:
        p, spec = self.params, ens.cfg.members[0]
        for name in critic_names(p.discriminators):
            D, opt = build_aux_discriminator(ens, spec, name)
            ens.add_aux(name, D, "discriminator", opt)
        if p.learn_temperature:
            lam = Temperatures(len(ens.members), p.temperature)
            ens.add_aux(TEMPERATURES, lam, "parameter", build_optimizer(lam.parameters(), spec.optim, "G"))
        ens.idle.update(f"{m.name}.D" for m in ens.members)
        ens.state.mixture_weights = torch.full((len(ens.members),), 1.0 / len(ens.members))

    def train(self, ens: Ensemble, data: Dataset, hooks: StepHook, executor: Executor) -> None:
        members, p = ens.members, self.params
        nets = GMANNets.of(ens, p.discriminators)
        gens = [m.model.G for m in members]
        G = net_group(gens, [m.optimizers["G"] for m in members], executor.stacks(gens))
        critics = [c.net for c in nets.critics]
        D = net_group(critics, [c.optimizer for c in nets.critics], executor.stacks(critics))
        G.train()
        D.train()
        lam = None if nets.temperatures is None else nets.temperatures.net
        lam_opt = None if nets.temperatures is None else nets.temperatures.optimizer
        loss, cfg0 = members[0].loss, members[0].cfg
        batch, device, n_d = ens.cfg.train.batch_size, data.x.device, p.discriminators

        def draw() -> tuple[Tensor, Tensor, Tensor | None]:
            real = torch.cat([sample_batch(data, batch, m.rng) for m in members])
            z = batch_draws(members, lambda m: noise(m, batch, device))
            eps = None
            if loss.gradient_penalty:
                eps = torch.cat([torch.rand(batch, generator=m.rng) for m in members]).to(device)
                eps = eps.expand(n_d, -1)
            return real, z, eps

        def d_loss(real: Tensor, fake: Tensor, eps: Tensor | None) -> tuple[Tensor, list[dict[str, float]]]:
            # Every critic sees the same batches: expand (no copy) along the critic axis.
            loss_d, d_stats = batched_d_phase(
                D, loss, real.expand(n_d, *real.shape), fake.expand(n_d, *fake.shape), eps, cfg0.gp_weight
            )
            # Critics' statistics are averaged over the critics and shared by every member's log line.
            shared = {k: sum(s[k] for s in d_stats) / n_d for k in d_stats[0]}
            return loss_d, [shared] * len(members)

        def g_loss(fake: Tensor) -> tuple[Tensor, list[dict[str, float]]]:
            logits = D(fake, shared=True).view(n_d * len(members), batch)
            values = torch.vmap(loss.g_loss)(logits).view(n_d, len(members))
            temperature = lam.value if lam is not None else torch.tensor(p.temperature, device=device)
            objective = aggregate(values, p.aggregate, temperature)
            total = objective.sum() - (p.temperature_penalty * lam.value.sum() if lam is not None else 0.0)
            columns = {"loss_g": objective.detach()}
            if lam is not None or p.aggregate == "softmax":
                columns["lambda"] = temperature.detach().expand(len(members))
            return total, rows(columns)

        def keep_lambda_non_negative() -> None:
            with torch.no_grad():
                lam.value.clamp_(min=0.0)  # λ < 0 would favour the weakest critic; GMAN keeps λ ≥ 0

        g_opt = G if lam_opt is None else Optimizers(G, lam_opt, after=keep_lambda_non_negative)
        parts = RoundParts(
            n_critic=cfg0.n_critic,
            draw=draw,
            noise=lambda: batch_draws(members, lambda m: noise(m, batch, device)),
            G=lambda z: G(z).flatten(0, 1),  # all members' fakes as one batch, for every critic
            d_loss=d_loss,
            g_loss=g_loss,
            d_opt=D,
            g_opt=g_opt,
            critic=D.param_owners(),
            reuse_fake=cfg0.reuse_fake,
        )

        def one_round() -> list[dict[str, float]]:
            return gan_round(parts)

        def write_back() -> None:
            G.write_back()
            D.write_back()

        executor.run_lockstep(ens, members, ens.cfg.train.steps, one_round, hooks, write_back, "train gman")
