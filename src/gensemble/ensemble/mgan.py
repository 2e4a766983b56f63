"""mixture (MGAN, Hoang et al. 2018): K generators, one discriminator, and a classifier head that
tells the generators apart.

The shared discriminator "mgan.D" has member 0's architecture; the classifier "mgan.C" is a K-way
linear head on the discriminator's penultimate features (D and C share everything but their last
layer, as in the paper). Every round, each member draws a real and a latent batch from its own RNG;
the discriminator sees all real batches against all K fake batches (the uniform mixture), and

    D, C minimise   d_loss(D(real), D(fake)) + CE(C(fake), k)
    G_k minimises   g_loss(D(G_k(z))) + β · CE(C(G_k(z)), k)

so each generator is rewarded when the classifier recognises it, which pushes the generators onto
different modes. (The classifier's term is weighted 1 for D and C, β for the generators, as in the
authors' code; β = 1 is their default, their CIFAR-10 script uses 0.01.) The mixture is uniform.
Members' own discriminators are not used; they are kept in the run, marked idle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gensemble.config import check_ranges
from gensemble.ensemble.base import SCHEMES, Executor, Scheme, aux_seed, build_aux_discriminator, require_same
from gensemble.ensemble.state import AuxNet
from gensemble.errors import ConfigError
from gensemble.losses import gradient_penalty
from gensemble.optim import build_optimizer
from gensemble.training.batched import batch_draws, net_group, rows
from gensemble.training.loop import noise, sample_batch
from gensemble.training.round import Optimizers, RoundParts, gan_round

if TYPE_CHECKING:
    from gensemble.data import Dataset
    from gensemble.ensemble.config import RunConfig
    from gensemble.ensemble.state import Ensemble
    from gensemble.training.loop import StepHook


@dataclass(frozen=True)
class MGANConfig:
    beta: float = 1.0  # weight of the generators' diversity term

    def validate(self, path: str = "") -> None:
        check_ranges(self, path, beta=(0, 1e4))


def split_discriminator(D: nn.Module) -> tuple[nn.Sequential, nn.Sequential]:
    """(trunk, head): D = head ∘ trunk, where head is the final Linear(features, 1) and the flatten."""
    if not (isinstance(D, nn.Sequential) and isinstance(D[-1], nn.Flatten) and isinstance(D[-2], nn.Linear)):
        raise ConfigError(
            "the mixture scheme needs a discriminator that ends in a linear layer (mlp-gan, dcgan)"
        )
    return D[:-2], D[-2:]


CRITIC, CLASSIFIER = "mgan.D", "mgan.C"  # the names they are checkpointed under


class MGANNets(NamedTuple):
    """MGAN's auxiliary networks: the shared critic and the K-way classifier head on its trunk."""

    critic: AuxNet
    classifier: AuxNet

    @classmethod
    def of(cls, ens: Ensemble) -> MGANNets:
        return cls(ens.aux_net(CRITIC), ens.aux_net(CLASSIFIER))


@SCHEMES.register("mgan", "MGAN: K generators, one discriminator, a classifier that tells them apart (β)")
class MGAN(Scheme):
    config = MGANConfig
    families = ("gan",)
    own_critics = False

    def check(self, cfg: RunConfig) -> None:
        super().check(cfg)
        if len(cfg.members) < 2:
            raise ConfigError(
                f"scheme 'mixture' needs at least 2 generators to tell apart; member {cfg.members[0].name!r} is alone"
            )
        require_same(cfg, ("loss", "n_critic", "gp_weight", "reuse_fake"))

    def build(self, ens: Ensemble) -> None:
        spec = ens.cfg.members[0]
        D, opt = build_aux_discriminator(ens, spec, CRITIC)
        ens.add_aux(CRITIC, D, "discriminator", opt)
        features = split_discriminator(D)[1][0].in_features
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(aux_seed(spec.seed, CLASSIFIER))
            head = nn.Linear(features, len(ens.members))
        ens.add_aux(CLASSIFIER, head, "classifier", build_optimizer(head.parameters(), spec.optim, "D"))
        ens.idle.update(f"{m.name}.D" for m in ens.members)
        ens.state.mixture_weights = torch.full((len(ens.members),), 1.0 / len(ens.members))

    def train(self, ens: Ensemble, data: Dataset, hooks: StepHook, executor: Executor) -> None:
        members, beta = ens.members, self.params.beta
        gens = [m.model.G for m in members]
        G = net_group(gens, [m.optimizers["G"] for m in members], executor.stacks(gens))
        G.train()
        nets = MGANNets.of(ens)
        D, C = nets.critic.net.train(), nets.classifier.net.train()
        opt_d, opt_c = nets.critic.optimizer, nets.classifier.optimizer
        trunk, head = split_discriminator(D)
        loss, cfg0 = members[0].loss, members[0].cfg
        k, batch, device = len(members), ens.cfg.train.batch_size, data.x.device
        owner = torch.arange(k, device=device).repeat_interleave(batch)  # which generator made each fake

        def draw() -> tuple[Tensor, Tensor, Tensor | None]:
            real = torch.cat([sample_batch(data, batch, m.rng) for m in members])
            z = batch_draws(members, lambda m: noise(m, batch, device))
            eps = None
            if loss.gradient_penalty:  # each member's RNG draws the weights of its own rows
                eps = torch.cat([torch.rand(batch, generator=m.rng) for m in members]).to(device)
            return real, z, eps

        def d_loss(real: Tensor, fake: Tensor, eps: Tensor | None) -> tuple[Tensor, list[dict[str, float]]]:
            h_real, h_fake = trunk(real), trunk(fake)
            real_logits, fake_logits = head(h_real), head(h_fake)
            loss_d = loss.d_loss(real_logits, fake_logits)
            if eps is not None:
                loss_d = loss_d + cfg0.gp_weight * gradient_penalty(D, real, fake, eps)
            loss_c = F.cross_entropy(C(h_fake), owner)
            shared = {
                "loss_d": loss_d.item(),
                "loss_c": loss_c.item(),
                "d_real": torch.sigmoid(real_logits.detach()).mean().item(),
                "d_fake": torch.sigmoid(fake_logits.detach()).mean().item(),
            }
            return loss_d + loss_c, [shared] * k

        def g_loss(fake: Tensor) -> tuple[Tensor, list[dict[str, float]]]:
            h = trunk(fake)
            adversarial = torch.vmap(loss.g_loss)(head(h).view(k, batch))
            diversity = F.cross_entropy(C(h), owner, reduction="none").view(k, batch).mean(1)
            total = (adversarial + beta * diversity).sum()
            return total, rows({"loss_g": adversarial.detach(), "ce": diversity.detach()})

        parts = RoundParts(
            n_critic=cfg0.n_critic,
            draw=draw,
            noise=lambda: batch_draws(members, lambda m: noise(m, batch, device)),
            G=lambda z: G(z).flatten(0, 1),  # the K fake batches as one: the critic sees the mixture
            d_loss=d_loss,
            g_loss=g_loss,
            d_opt=Optimizers(opt_d, opt_c),
            g_opt=G,
            critic=(D, C),
            reuse_fake=cfg0.reuse_fake,
        )

        def one_round() -> list[dict[str, float]]:
            return gan_round(parts)

        executor.run_lockstep(ens, members, ens.cfg.train.steps, one_round, hooks, G.write_back, "train mgan")


# Its name until this round was "mixture", which fusion/ also uses for a mixture of generators; runs
# saved with `scheme: mixture` still load.
SCHEMES.alias("mixture", "mgan")
