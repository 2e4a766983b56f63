"""The batched engine: members of one architecture trained as one stacked model.

Each parameter of M identical networks is stacked on a leading member axis and held as a real
`nn.Parameter` of a `BatchedNets` container; the forward pass is `torch.vmap` over
`torch.func.functional_call`, so M members cost one batched kernel per layer (a batched matmul, a
grouped convolution) instead of M small ones. A regular torch optimiser over the stacked parameters
makes exactly the per-member updates, because Adam, SGD and RMSprop work element by element.

Exactness against training members one by one (`training.loop.gan_step`) rests on three rules:
  * every random draw comes from each member's own `member.rng`, in `gan_step`'s order;
  * each member's loss is computed on its own slice (losses are vmapped, then summed, never averaged
    over members, so each member's gradient is its own, unscaled);
  * BatchNorm running statistics are stacked buffers updated in place under vmap, per member.
Networks with parametrisations (spectral norm keeps power-iteration state in them) are not
stacked; they train through the loop.

`LoopedNets` has the same interface over separate networks, so coupled schemes (GMAN, MGAN) write
their step once and run stacked when the architectures agree, looped when they do not.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.utils import parametrize

from gensemble.data import Dataset
from gensemble.losses import GANLoss, gradient_penalty
from gensemble.training.bmm import mlp_plan, run_plan
from gensemble.training.loop import noise, sample_batch
from gensemble.training.member import Member
from gensemble.training.round import RoundParts, gan_round

Stats = dict[str, float]


class NetGroup:
    """Several networks trained side by side. Inputs and outputs carry a leading member axis."""

    def __call__(self, x: Tensor, shared: bool = False) -> Tensor:
        """(M, B, ...) -> (M, B, ...); with `shared`, every network gets the same x of shape (B, ...)."""
        raise NotImplementedError

    def zero_grad(self) -> None:
        raise NotImplementedError

    def step(self) -> None:
        raise NotImplementedError

    def write_back(self) -> None:
        """Copy weights and optimiser state into the member networks (a no-op when they are the same)."""

    def train(self, mode: bool = True) -> None:
        raise NotImplementedError

    def param_owners(self) -> list[nn.Module]:
        """The modules whose parameters this group trains (to freeze them for a phase)."""
        raise NotImplementedError


class LoopedNets(NetGroup):
    """The reference: each network runs on its own slice, each optimiser steps its own network."""

    def __init__(self, nets: Sequence[nn.Module], optimizers: Sequence[torch.optim.Optimizer]) -> None:
        self.nets, self.optimizers = list(nets), list(optimizers)

    def __call__(self, x: Tensor, shared: bool = False) -> Tensor:
        return torch.stack([net(x if shared else x[i]) for i, net in enumerate(self.nets)])

    def zero_grad(self) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def train(self, mode: bool = True) -> None:
        for net in self.nets:
            net.train(mode)

    def param_owners(self) -> list[nn.Module]:
        return list(self.nets)


class BatchedNets(NetGroup, nn.Module):
    """M networks of one architecture as one module: parameters and buffers stacked on axis 0."""

    def __init__(self, nets: Sequence[nn.Module], optimizers: Sequence[torch.optim.Optimizer]) -> None:
        nn.Module.__init__(self)
        # Plain attributes, not submodules: the members keep owning their networks.
        object.__setattr__(self, "members", tuple(nets))
        object.__setattr__(self, "member_optimizers", tuple(optimizers))
        self.template = copy.deepcopy(nets[0])  # the architecture; its own weights are never used
        self.names = [n for n, _ in nets[0].named_parameters()]
        self.buffer_names = [n for n, _ in nets[0].named_buffers()]
        with torch.no_grad():
            self.params = nn.ParameterList(
                [nn.Parameter(torch.stack([dict(n.named_parameters())[k] for n in nets])) for k in self.names]
            )
            for i, k in enumerate(self.buffer_names):
                self.register_buffer(f"buffer{i}", torch.stack([dict(n.named_buffers())[k] for n in nets]))
        opt = optimizers[0]
        group = {k: v for k, v in opt.param_groups[0].items() if k in opt.defaults}
        self.optimizer = type(opt)(self.params, **group)
        self._pull_optimizer_state()
        self.plan = mlp_plan(self.template)

    def batched_buffers(self) -> dict[str, Tensor]:
        return {k: getattr(self, f"buffer{i}") for i, k in enumerate(self.buffer_names)}

    def __call__(self, x: Tensor, shared: bool = False) -> Tensor:
        params = dict(zip(self.names, self.params))
        if self.plan is not None:
            # MLPs: explicit batched matmuls over the stacked weights, no vmap dispatch per layer.
            buffers = self.batched_buffers()
            return run_plan(self.plan, params, buffers, x, shared, len(self.members), self.template.training)

        def one(params: dict[str, Tensor], buffers: dict[str, Tensor], xi: Tensor) -> Tensor:
            return functional_call(self.template, (params, buffers), (xi,))

        return torch.vmap(one, in_dims=(0, 0, None if shared else 0))(params, self.batched_buffers(), x)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.optimizer.step()

    def train(self, mode: bool = True) -> BatchedNets:
        self.template.train(mode)
        for net in self.members:
            net.train(mode)
        return self

    def param_owners(self) -> list[nn.Module]:
        return [self]  # the stacked parameters; the members' own are not used while stacked

    def _member_params(self, i: int) -> list[Tensor]:
        named = dict(self.members[i].named_parameters())
        return [named[k] for k in self.names]

    def _pull_optimizer_state(self) -> None:
        """Stack the members' optimiser state (Adam moments, momentum buffers) into the stacked optimiser."""
        for j, stacked in enumerate(self.params):
            states = [
                opt.state.get(self._member_params(i)[j], {}) for i, opt in enumerate(self.member_optimizers)
            ]
            if not states[0]:
                continue
            # Moments have the parameter's shape and are stacked; the step count is shared (lockstep).
            self.optimizer.state[stacked] = {
                k: torch.stack([s[k] for s in states]) if _shaped_like(v, stacked[0]) else _copy(v)
                for k, v in states[0].items()
            }

    @torch.no_grad()
    def write_back(self) -> None:
        """Each member's slice of the weights, buffers and optimiser state back into its own network."""
        for i, (net, opt) in enumerate(zip(self.members, self.member_optimizers)):
            for p, stacked in zip(self._member_params(i), self.params):
                p.copy_(stacked[i])
                state = self.optimizer.state.get(stacked)
                if state:
                    opt.state[p] = {
                        k: v[i].clone() if _shaped_like(v, stacked) else _copy(v) for k, v in state.items()
                    }
            buffers = dict(net.named_buffers())
            for k, b in self.batched_buffers().items():
                buffers[k].copy_(b[i])


def _shaped_like(value: Any, param: Tensor) -> bool:
    return isinstance(value, Tensor) and value.shape == param.shape


def _copy(value: Any) -> Any:
    return value.clone() if isinstance(value, Tensor) else copy.deepcopy(value)


def batchable(nets: Sequence[nn.Module], optimizers: Sequence[torch.optim.Optimizer]) -> bool:
    """Same architecture, parameter shapes, device and optimiser settings; no parametrisations."""
    if len(nets) < 2:
        return False

    def signature(net: nn.Module, opt: torch.optim.Optimizer) -> str:
        shapes = [(k, tuple(v.shape), str(v.dtype), str(v.device)) for k, v in net.state_dict().items()]
        group = {k: v for k, v in opt.param_groups[0].items() if k in opt.defaults}
        return json.dumps([repr(net), shapes, type(opt).__name__, repr(sorted(group.items()))])

    if any(parametrize.is_parametrized(m) for net in nets for m in net.modules()):
        return False
    first = signature(nets[0], optimizers[0])
    return all(signature(n, o) == first for n, o in zip(nets[1:], optimizers[1:]))


def net_group(
    nets: Sequence[nn.Module], optimizers: Sequence[torch.optim.Optimizer], batched: bool = True
) -> NetGroup:
    """Stacked when `batched` and the networks allow it, looped otherwise."""
    if batched and batchable(nets, optimizers):
        return BatchedNets(nets, optimizers)
    return LoopedNets(nets, optimizers)


CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def batching_pays(nets: Sequence[nn.Module]) -> bool:
    """Whether stacking is expected to be faster than the loop: on a GPU always; on a CPU only for
    networks without convolutions. vmap turns M convolutions into one grouped convolution, which
    CPU kernels run no faster (often slower) than M separate ones; see docs/ensembles.md."""
    params = [p for net in nets for p in net.parameters()]
    if params and params[0].device.type != "cpu":
        return True
    return not any(isinstance(m, CONVOLUTIONS) for net in nets for m in net.modules())


# --- One GAN step of M identical members, stacked ------------------------------------------------


def batch_draws(members: Sequence[Member], draw: Callable[[Member], Tensor]) -> Tensor:
    """One draw per member from its own RNG, stacked on a member axis."""
    return torch.stack([draw(m) for m in members])


def batched_d_phase(
    D: NetGroup, loss: GANLoss, real: Tensor, fake: Tensor, eps: Tensor | None, gp_weight: float
) -> tuple[Tensor, list[Stats]]:
    """`training.loop.d_objective` for M critics at once: the sum of their losses, and each one's statistics."""
    real_logits, fake_logits = D(real), D(fake)
    losses = torch.vmap(loss.d_loss)(real_logits, fake_logits)
    if eps is not None:
        losses = losses + gp_weight * gradient_penalty(D, real, fake, eps)
    columns = {
        "loss_d": losses.detach(),
        "d_real": torch.sigmoid(real_logits.detach()).mean(1),
        "d_fake": torch.sigmoid(fake_logits.detach()).mean(1),
    }
    return losses.sum(), rows(columns)


def rows(columns: dict[str, Tensor]) -> list[Stats]:
    """{"loss": tensor (M,)} -> one {"loss": float} per member, with a single device sync."""
    values = {k: v.tolist() for k, v in columns.items()}
    n = len(next(iter(values.values())))
    return [{k: v[i] for k, v in values.items()} for i in range(n)]


class BatchedGAN:
    """M GAN members of one config trained in lockstep as one stacked model."""

    def __init__(self, members: Sequence[Member]) -> None:
        self.members = list(members)
        self.G = BatchedNets([m.model.G for m in members], [m.optimizers["G"] for m in members])
        self.D = BatchedNets([m.model.D for m in members], [m.optimizers["D"] for m in members])
        self.G.train()
        self.D.train()

    def parts(self, data: Dataset, batch_size: int, weights: Sequence[Tensor | None]) -> RoundParts:
        """The stacked round: each member's draws from its own RNG, losses vmapped and summed."""
        members, device = self.members, data.x.device
        cfg, loss = members[0].cfg, members[0].loss
        draws = list(zip(members, weights))

        def draw() -> tuple[Tensor, Tensor, Tensor | None]:
            real = torch.stack([sample_batch(data, batch_size, m.rng, w) for m, w in draws])
            z = batch_draws(members, lambda m: noise(m, batch_size, device))
            eps = None
            if loss.gradient_penalty:
                eps = batch_draws(members, lambda m: torch.rand(batch_size, generator=m.rng)).to(device)
            return real, z, eps

        def g_loss(fake: Tensor) -> tuple[Tensor, list[Stats]]:
            per_member = torch.vmap(loss.g_loss)(self.D(fake))
            return per_member.sum(), [{"loss_g": g} for g in per_member.tolist()]

        return RoundParts(
            n_critic=cfg.n_critic,
            draw=draw,
            noise=lambda: batch_draws(members, lambda m: noise(m, batch_size, device)),
            G=self.G,
            d_loss=lambda real, fake, eps: batched_d_phase(self.D, loss, real, fake, eps, cfg.gp_weight),
            g_loss=g_loss,
            d_opt=self.D,
            g_opt=self.G,
            critic=self.D.param_owners(),
            reuse_fake=cfg.reuse_fake,
        )

    def step(self, data: Dataset, batch_size: int, weights: Sequence[Tensor | None]) -> list[Stats]:
        """`training.loop.gan_step` for every member at once, drawing from each member's RNG in the same order."""
        return gan_round(self.parts(data, batch_size, weights))

    def write_back(self) -> None:
        self.G.write_back()
        self.D.write_back()


def batch_key(member: Member, target: int) -> str | None:
    """Members with equal keys can train stacked; None for members that never can (VAEs, spectral norm)."""
    if member.family != "gan" or member.cfg.augment or member.cfg.r1:
        return None  # (augmentation and R1 are written for one member's round)
    nets = (member.model.G, member.model.D)
    if any(parametrize.is_parametrized(m) for net in nets for m in net.modules()):
        return None
    c = member.cfg
    # Everything but the seed (and the name): architecture, loss, optimiser, progress and goal.
    return json.dumps(
        [
            c.model,
            c.loss,
            c.gp_weight,
            c.n_critic,
            c.reuse_fake,
            repr(c.optim),
            member.step,
            target,
            str(member.model.G),
        ],
        sort_keys=True,
        default=str,
    )
