"""One GAN round, written once: n_critic discriminator updates, then one generator update.

Every GAN trainer runs its rounds through `gan_round`: one member (`training.loop.gan_step`), M
members of one architecture batched with vmap (`training.batched.BatchedGAN`), GMAN's N critics and MGAN's
shared critic with its classifier head. A trainer supplies only what differs, as `RoundParts`:

* `draw()`: one D phase's random inputs (real, z, eps), drawn from each member's own RNG in that
  order. The gradient-penalty interpolation weights `eps` follow one rule everywhere: each member's
  RNG draws the weights of its own rows (MGAN drew all of them from member 0's RNG before);
* `G`: latent batch -> fake batch, in whatever layout the objectives take;
* `d_loss(real, fake, eps)` and `g_loss(fake)`: the objectives, each with one stats dict per member;
* `d_opt` and `g_opt`: what steps (anything with zero_grad() and step(): an optimiser, a NetGroup,
  `Optimizers` over several).

With `reuse_fake` and n_critic = 1, the G phase reuses the D phase's fake batch (generated with its
graph, detached for D), as pytorch/examples' dcgan/main.py does: one generator pass per round
instead of two, and one latent draw fewer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

Stats = dict[str, float]
Draw = tuple[Tensor, Tensor, Tensor | None]


class Updater(Protocol):
    def zero_grad(self) -> None: ...

    def step(self) -> None: ...


class Optimizers:
    """Several updaters zeroed and stepped as one, in order; `after` runs once they have stepped
    (GMAN* keeps its learned temperatures non-negative there)."""

    def __init__(self, *updaters: Updater, after: Callable[[], None] | None = None) -> None:
        self.updaters, self.after = updaters, after

    def zero_grad(self) -> None:
        for u in self.updaters:
            u.zero_grad()

    def step(self) -> None:
        for u in self.updaters:
            u.step()
        if self.after is not None:
            self.after()


@dataclass
class RoundParts:
    """What one trainer's round is made of; `gan_round` puts it together."""

    n_critic: int
    draw: Callable[[], Draw]
    noise: Callable[[], Tensor]  # the G phase's latent batch (not drawn when the fake is reused)
    G: Callable[[Tensor], Tensor]
    d_loss: Callable[[Tensor, Tensor, Tensor | None], tuple[Tensor, list[Stats]]]
    g_loss: Callable[[Tensor], tuple[Tensor, list[Stats]]]
    d_opt: Updater
    g_opt: Updater
    reuse_fake: bool = False
    # The critic's networks (D, MGAN's classifier head): frozen during the G phase, so its backward
    # computes no weight gradients for them (they were discarded: D's next update zeroes them first).
    critic: Sequence[nn.Module] = ()


@contextmanager
def frozen(modules: Sequence[nn.Module]) -> Iterator[None]:
    """The modules' trainable parameters with requires_grad off inside the block (StyleGAN2-ADA's
    training loop toggles it per phase the same way)."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def gan_round(r: RoundParts) -> list[Stats]:
    """n_critic D updates on fresh real and fake batches, then one G update; each member's stats."""
    reuse = r.reuse_fake and r.n_critic == 1
    fake = None
    d_stats: list[Stats] = []
    for _ in range(r.n_critic):
        real, z, eps = r.draw()
        if reuse:
            fake = r.G(z)
            d_fake = fake.detach()
        else:
            with torch.no_grad():
                d_fake = r.G(z)
        loss_d, d_stats = r.d_loss(real, d_fake, eps)
        r.d_opt.zero_grad()
        loss_d.backward()
        r.d_opt.step()
    if fake is None:
        fake = r.G(r.noise())
    with frozen(r.critic):
        loss_g, g_stats = r.g_loss(fake)
        r.g_opt.zero_grad()
        loss_g.backward()
    r.g_opt.step()
    return [{**d, **g} for d, g in zip(d_stats, g_stats)]
