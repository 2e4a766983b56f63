"""boosting (AdaGAN, Tolstikhin et al. 2017): members are added one at a time, each trained on data
reweighted towards what the mixture so far misses.

Round t (members 0..t-1 trained, mixture weights π over them):

1. A fresh discriminator "boost.D" is trained to tell the data from samples of the current mixture
   (logistic loss), so D(x) ≈ P_data / (P_data + P_model) and the density ratio is
   h(x) = dP_model/dP_data ≈ (1 - D(x)) / D(x) = exp(-logit(x)).
2. The next component's weight β_t is 1/(t+1) ("uniform": the final mixture is uniform) or a constant;
   the first member has β = 1.
3. Each training example gets weight w_i ∝ (λ* − (1 − β_t) h(x_i))₊, with λ* from the paper's closed
   form (eq. 18 of the arXiv version, the authors' "theory_star" rule): over the ratios sorted
   ascending, λ_k = (β N + (1 − β) Σ_{j≤k} h_(j)) / k, taking the first k with
   (1 − β) h_(k) ≤ λ_k ≤ (1 − β) h_(k+1). Examples the mixture already covers well (large h) get
   weight 0. If no k qualifies (the ratios are estimates), the weights stay uniform, as in their code.
4. Member t trains on those weights; then π ← ((1 − β_t) π, β_t).

VAE members are accepted: they train on weighted data like GANs, and the density ratio comes from
the separate "boost.D", whose architecture is `ratio_model` or, by default, the first GAN member's.
A run of VAEs only must name a `ratio_model`.

Scheme state (checkpointed): mixture_weights (over all members, 0 for those not added yet),
data_weights {member: (N,)}, boost_done (members whose β has been applied) and boost_rng (the
RNG of the ratio phase), so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

from gensemble.config import SEED_RANGE, check_ranges
from gensemble.ensemble.base import SCHEMES, Executor, MemberTask, Scheme, aux_seed, build_aux_discriminator
from gensemble.ensemble.state import SchemeState
from gensemble.errors import ConfigError
from gensemble.losses import GAN_LOSSES
from gensemble.progress import progress
from gensemble.sampling import mixture_sample
from gensemble.training.loop import d_objective, sample_batch
from gensemble.training.member import MemberConfig

if TYPE_CHECKING:
    from gensemble.data import Dataset
    from gensemble.ensemble.config import RunConfig
    from gensemble.ensemble.state import Ensemble
    from gensemble.training.loop import StepHook


@dataclass(frozen=True)
class AdaGANConfig:
    beta: Literal["uniform", "constant"] = "uniform"  # β_t = 1/(t+1), or `beta_constant`
    beta_constant: float = 0.5
    ratio_steps: int = 500  # updates of the density-ratio discriminator per round
    ratio_model: dict[str, Any] | None = None  # its architecture (a GAN model); default: first GAN member's
    seed: int = 0  # seeds the ratio discriminators and the ratio phase's batches

    def validate(self, path: str = "") -> None:
        if not 0.0 < self.beta_constant <= 1.0:
            raise ConfigError(
                f"config key '{path}.beta_constant' must be in (0, 1], got {self.beta_constant}"
            )
        check_ranges(self, path, ratio_steps=(1, 10**7), seed=SEED_RANGE)


def boosting_weights(ratios: Tensor, beta: float) -> Tensor:
    """AdaGAN's data weights from density ratios h = dP_model/dP_data and the new component's β."""
    ratios = ratios.double()
    n = len(ratios)
    ordered = ratios.sort().values
    lam = (beta * n + (1.0 - beta) * ordered.cumsum(0)) / torch.arange(1, n + 1, dtype=torch.float64)
    low = (1.0 - beta) * ordered
    high = torch.cat([(1.0 - beta) * ordered[1:], ordered.new_tensor([float("inf")])])
    found = ((lam >= low) & (lam <= high)).nonzero()
    if len(found) == 0:
        return torch.full((n,), 1.0 / n)
    weights = (lam[found[0, 0]] - (1.0 - beta) * ratios).clamp(min=0.0)
    return (weights / weights.sum()).float()


@dataclass
class BoostState(SchemeState):
    data_weights: dict[str, Tensor] = field(default_factory=dict)  # each later member's reweighted data
    boost_done: int = 0  # members trained and added to the mixture (a resume skips them)
    boost_rng: Tensor | None = None  # the density-ratio rounds' RNG state


RATIO_CRITIC = "boost.D"  # the density-ratio discriminator's checkpoint name (one; rebuilt every round)


@SCHEMES.register(
    "boosting", "AdaGAN: members added one by one, each on data reweighted to what the mixture misses"
)
class Boosting(Scheme):
    config = AdaGANConfig
    state_type = BoostState
    runs_as_tasks = True

    def ratio_spec(self, cfg: RunConfig) -> MemberConfig:
        """The member config the density-ratio discriminator is built from."""
        p = self.params
        gans = [m for m in cfg.members if m.family == "gan"]
        if p.ratio_model is not None:
            spec = MemberConfig(model=dict(p.ratio_model), optim=cfg.members[0].optim, seed=p.seed)
            if spec.entry("scheme.ratio_model").family != "gan":
                raise ConfigError(
                    f"config key 'scheme.ratio_model' must be a GAN model, got {p.ratio_model['name']!r}"
                )
            spec.model_config("scheme.ratio_model")
            return spec
        if not gans:
            raise ConfigError(
                f"scheme 'boosting' cannot use member {cfg.members[0].name!r} (a VAE) without a density-ratio "
                "discriminator; set scheme.ratio_model, e.g. {name: dcgan, ndf: 32}"
            )
        return replace(gans[0], seed=p.seed, loss="minimax")

    def check(self, cfg: RunConfig) -> None:
        super().check(cfg)
        self.ratio_spec(cfg)

    def build(self, ens: Ensemble) -> None:
        D, opt = build_aux_discriminator(ens, self.ratio_spec(ens.cfg), RATIO_CRITIC)
        ens.add_aux(RATIO_CRITIC, D, "discriminator", opt)
        ens.state.mixture_weights = torch.zeros(len(ens.members))
        ens.state.boost_rng = torch.Generator().manual_seed(self.params.seed).get_state()

    def beta(self, t: int) -> float:
        if t == 0:
            return 1.0
        return 1.0 / (t + 1) if self.params.beta == "uniform" else self.params.beta_constant

    def train(self, ens: Ensemble, data: Dataset, hooks: StepHook, executor: Executor) -> None:
        steps = ens.cfg.train.steps
        for t, member in enumerate(ens.members):
            if t < ens.state.boost_done:
                continue  # trained and added to the mixture before a resume
            beta, weights = self.beta(t), None
            if t > 0:
                table = ens.state.data_weights
                if member.name not in table:
                    table[member.name] = boosting_weights(self.density_ratios(ens, data, t), beta)
                weights = table[member.name].to(data.x.device)
            executor.run(ens, [MemberTask(member, steps, weights)], data, hooks)
            mixture = ens.state.mixture_weights.clone()
            mixture[:t] *= 1.0 - beta
            mixture[t] = beta
            ens.state.mixture_weights, ens.state.boost_done = mixture, t + 1

    def density_ratios(self, ens: Ensemble, data: Dataset, t: int) -> Tensor:
        """dP_model/dP_data at every training example, from a fresh discriminator (data vs the mixture)."""
        rng = torch.Generator()
        rng.set_state(ens.state.boost_rng)
        spec = self.ratio_spec(ens.cfg)
        seed = aux_seed(spec.seed, f"{RATIO_CRITIC}.round{t}")
        D, opt = build_aux_discriminator(ens, spec, RATIO_CRITIC, seed=seed)
        ens.replace_aux(RATIO_CRITIC, D, opt)  # the run keeps the latest one
        models = [m.model for m in ens.members[:t]]
        mixture = ens.state.mixture_weights[:t]
        logistic = GAN_LOSSES.get("minimax")  # cross-entropy: D estimates P_data / (P_data + P_model)
        batch, device = ens.cfg.train.batch_size, data.x.device
        D.train()
        bar = progress(self.params.ratio_steps, f"density ratio before {ens.members[t].name}", unit="step")
        for _ in range(self.params.ratio_steps):
            real = sample_batch(data, batch, rng)
            fake, _ = mixture_sample(models, mixture, batch, rng)
            loss, _ = d_objective(D, logistic, real, fake.to(device), None, 0.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update(1)
        bar.close()
        D.eval()
        with torch.no_grad():
            logits = torch.cat([D(x) for x in data.x.split(1024)]).double().cpu()
        D.train()
        ens.state.boost_rng = rng.get_state()
        return torch.exp(-logits.clamp(-50.0, 50.0))
