"""Training one member: explicit D and G phases (or one ELBO phase for a VAE), with hooks around.

The step functions are the maths-free core; `fit_member` is the loop; logging, checkpoints and
TensorBoard are hooks (`gensemble.run.hooks`) so the loop stays short.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gensemble import threads
from gensemble.config import check_ranges
from gensemble.data import Dataset
from gensemble.data.transforms import augment
from gensemble.errors import ConfigError, shown
from gensemble.losses import GANLoss, elbo, gradient_penalty, r1_penalty
from gensemble.progress import RUN_CLOCK, interactive, progress
from gensemble.training.diffaugment import apply as apply_augment
from gensemble.training.diffaugment import draw as draw_augment
from gensemble.training.member import Member
from gensemble.training.round import RoundParts, gan_round

# Far beyond any run in the literature (PacGAN's 2-D runs: ~400k steps; BigGAN: batch 2048), so a
# value above them is a typo (1e12 for 1e5), refused before anything is written.
MAX_STEPS = 10**8
MAX_BATCH = 65_536


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2000  # generator updates per member (VAE: optimiser steps)
    batch_size: int = 64
    checkpoint_every: int = 500
    log_every: int = 50
    image_every: int = 0  # TensorBoard sample grids every N steps (0: only at the end)
    ema_decay: float = 0.0  # keep an EMA of each generator's weights at this fixed decay (0 = off)
    # The EMA as StyleGAN2-ADA keeps it: a half-life of this many thousand images, ramped up as
    # min(half-life, ema_rampup × images seen) so the initialisation is forgotten early (0 = off).
    ema_halflife_kimg: float = 0.0
    ema_rampup: float = 0.05
    snapshot_every: int = 0  # save each generator's weights every N steps, for a "soup" (0 = off)
    threads: int | None = None  # PyTorch CPU threads; None: measured and adapted while training (--threads)
    device: str = "cpu"  # cpu, cuda, cuda:N (a GPU by index) or auto

    def validate(self, path: str = "") -> None:
        check_ranges(
            self,
            path,
            steps=(1, MAX_STEPS),
            batch_size=(1, MAX_BATCH),
            checkpoint_every=(1, None),
            log_every=(1, None),
            image_every=(0, None),
            snapshot_every=(0, None),
            threads=(1, 1024),
        )
        p = f"{path}." if path else ""
        if not re.fullmatch(r"cpu|auto|cuda(:\d{1,3})?", self.device):
            raise ConfigError(
                f"config key '{p}device' must be cpu, cuda, cuda:N or auto, got {shown(self.device)}"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"config key '{p}ema_decay' must be in [0, 1), got {self.ema_decay}")
        if not 0.0 <= self.ema_halflife_kimg <= 1e6:
            raise ConfigError(
                f"config key '{p}ema_halflife_kimg' must be in [0, 1e6], got {self.ema_halflife_kimg}"
            )
        if not 0.0 <= self.ema_rampup <= 1.0:
            raise ConfigError(f"config key '{p}ema_rampup' must be in [0, 1], got {self.ema_rampup}")
        if self.ema_decay > 0 and self.ema_halflife_kimg > 0:
            raise ConfigError(f"set one of '{p}ema_decay' and '{p}ema_halflife_kimg', not both")

    @property
    def keeps_ema(self) -> bool:
        return self.ema_decay > 0 or self.ema_halflife_kimg > 0

    def ema_beta(self, step: int) -> float:
        """The EMA decay after `step` generator updates: fixed, or StyleGAN2-ADA's ramped half-life
        (training/training_loop.py, "Update G_ema"): β = ½^(batch / min(half-life, ramp × images seen))."""
        if self.ema_halflife_kimg <= 0:
            return self.ema_decay
        nimg = self.ema_halflife_kimg * 1000.0
        if self.ema_rampup > 0:
            nimg = min(nimg, step * self.batch_size * self.ema_rampup)
        return 0.5 ** (self.batch_size / max(nimg, 1e-8))


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for a GPU that is not there is a config error, not a crash."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {name!r} was requested but no CUDA GPU is available; use --device cpu or auto"
            )
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name!r} was requested but this machine has {torch.cuda.device_count()} GPU(s): "
                f"cuda:0..cuda:{torch.cuda.device_count() - 1}"
            )
    return torch.device(name)


@dataclass(frozen=True)
class Shard:
    """This process's rows of every batch under data parallelism: rank, rank + world, ...

    Every rank draws the whole batch from the same RNG stream and keeps its own rows, so all ranks'
    RNGs stay identical (any rank's checkpoint resumes the run) and the gradient averaged over ranks
    is the whole batch's, as in a single process.
    """

    rank: int = 0
    world: int = 1

    def take(self, batch: Tensor) -> Tensor:
        return batch if self.world == 1 else batch[self.rank :: self.world]


WHOLE = Shard()


def sample_batch(
    data: Dataset, batch_size: int, rng: torch.Generator, weights: Tensor | None = None, shard: Shard = WHOLE
) -> Tensor:
    """A batch drawn with replacement (uniform, or by per-example `weights` for boosting/bagging)."""
    if weights is None:
        idx = torch.randint(len(data), (batch_size,), generator=rng)
    else:
        # Drawn on the CPU, where `rng` lives: the same draws on every device.
        idx = torch.multinomial(weights.cpu(), batch_size, replacement=True, generator=rng)
    x = data.x[idx.to(data.x.device)]
    cfg = data.meta.get("config")  # the DataConfig it was loaded with; it says whether to flip
    return shard.take(augment(x, cfg, rng) if cfg is not None else x)


def noise(member: Member, n: int, device: torch.device, shard: Shard = WHOLE) -> Tensor:
    """Latent codes drawn on the CPU from the member's RNG, then moved: the same on every device."""
    return shard.take(torch.randn(n, member.model.z_dim, generator=member.rng)).to(device)


def d_objective(
    D: Callable[[Tensor], Tensor],
    loss: GANLoss,
    real: Tensor,
    fake: Tensor,
    eps: Tensor | None,
    gp_weight: float,
) -> tuple[Tensor, dict[str, float]]:
    """The discriminator objective on one real and one (detached) fake batch; `eps` are the gradient
    penalty's interpolation weights (None without a penalty)."""
    real_logits, fake_logits = D(real), D(fake)
    loss_d = loss.d_loss(real_logits, fake_logits)
    if eps is not None:
        loss_d = loss_d + gp_weight * gradient_penalty(D, real, fake, eps)
    stats = {
        "loss_d": loss_d.item(),
        "d_real": torch.sigmoid(real_logits).mean().item(),
        "d_fake": torch.sigmoid(fake_logits).mean().item(),
    }
    return loss_d, stats


def member_round(
    member: Member, data: Dataset, batch_size: int, weights: Tensor | None = None, shard: Shard = WHOLE
) -> RoundParts:
    """One GAN member's round (on this process's shard of each batch): its own G, D and optimisers."""
    G, loss, cfg = member.model.G, member.loss, member.cfg
    D = member.model.D if not cfg.augment else augmented(member, batch_size, tuple(data.x.shape[-2:]), shard)
    device = data.x.device

    def draw() -> tuple[Tensor, Tensor, Tensor | None]:
        real = sample_batch(data, batch_size, member.rng, weights, shard)
        z = noise(member, batch_size, device, shard)
        # The whole batch's weights are drawn and sharded, as the batch is: every rank's RNG stays equal.
        eps = (
            shard.take(torch.rand(batch_size, generator=member.rng)).to(device)
            if loss.gradient_penalty
            else None
        )
        return real, z, eps

    def d_loss(real: Tensor, fake: Tensor, eps: Tensor | None) -> tuple[Tensor, list[dict[str, float]]]:
        loss_d, stats = d_objective(D, loss, real, fake, eps, cfg.gp_weight)
        if cfg.r1:
            loss_d = loss_d + 0.5 * cfg.r1 * r1_penalty(D, real)
        return loss_d, [stats]

    def g_loss(fake: Tensor) -> tuple[Tensor, list[dict[str, float]]]:
        loss_g = loss.g_loss(D(fake))
        return loss_g, [{"loss_g": loss_g.item()}]

    return RoundParts(
        n_critic=cfg.n_critic,
        draw=draw,
        noise=lambda: noise(member, batch_size, device, shard),
        G=G,
        d_loss=d_loss,
        g_loss=g_loss,
        d_opt=member.optimizers["D"],
        g_opt=member.optimizers["G"],
        critic=(member.model.D,),
        reuse_fake=cfg.reuse_fake,
    )


def augmented(
    member: Member, batch_size: int, size: tuple[int, int], shard: Shard
) -> Callable[[Tensor], Tensor]:
    """The member's D behind DiffAugment (cfg.augment): each call draws the whole batch's transforms
    from the member's RNG and applies this process's share of them."""
    D, policy = member.model.D, member.cfg.augment

    def critic(x: Tensor) -> Tensor:
        return D(apply_augment(x, draw_augment(policy, batch_size, size, member.rng).take(shard.take)))

    return critic


def gan_step(
    member: Member, data: Dataset, batch_size: int, weights: Tensor | None = None, shard: Shard = WHOLE
) -> dict[str, float]:
    """n_critic discriminator updates, then one generator update: `gan_round` for one member."""
    return gan_round(member_round(member, data, batch_size, weights, shard))[0]


def vae_step(
    member: Member, data: Dataset, batch_size: int, weights: Tensor | None = None, shard: Shard = WHOLE
) -> dict[str, float]:
    """One step on the negative β-ELBO."""
    model, opt = member.model, member.optimizers["vae"]
    x = sample_batch(data, batch_size, member.rng, weights, shard)
    # The whole batch's noise is drawn and sharded, as the batch is: ranks never share a draw.
    out, mu, logvar = model(x, eps=noise(member, batch_size, x.device, shard))
    loss, recon, kl = elbo(out, x, mu, logvar, model.cfg.beta, model.cfg.reconstruction)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {"loss": loss.item(), "recon": recon.item(), "kl": kl.item()}


STEPS = {"gan": gan_step, "vae": vae_step}
StepHook = Callable[[Member, dict[str, float]], None]


def together(hooks: Any) -> contextlib.AbstractContextManager:
    """RunHooks.together() when the hooks have it: one checkpoint after all members' hooks of a step."""
    return hooks.together() if hasattr(hooks, "together") else contextlib.nullcontext()


def needs_weights(hooks: Any, step: int) -> bool:
    """Whether the hooks at `step` read the members' weights (RunHooks says; a plain callable may)."""
    fn = getattr(hooks, "needs_weights", None)
    return True if fn is None else bool(fn(step))


def run_rounds(
    members: Sequence[Member],
    target: int,
    round_fn: Callable[[], list[dict[str, float]]],
    on_step: StepHook | None,
    log_every: int,
    write_back: Callable[[], None] | None = None,
    desc: str | None = None,
) -> None:
    """The training loop, for one member or several in lockstep: call `round_fn` (one step of every
    member, returning each one's stats) until the members reach `target`, then the hooks.

    `write_back` copies stacked weights into the members; it runs before any hook that reads them.
    `on_step` is None on processes that do not write (DDP ranks other than 0)."""
    members = list(members)
    if not members or members[0].step >= target:
        return
    names = f"{members[0].name}..{members[-1].name}" if len(members) > 1 else members[0].name
    bar = progress(target, desc or f"train {names}", initial=members[0].step, unit="step")
    try:
        while members[0].step < target:
            started = time.perf_counter()
            stats = round_fn()
            for m in members:
                m.step += 1
            bar.update(1)
            RUN_CLOCK.advance([m.name for m in members], time.perf_counter() - started)
            threads.tick()  # re-decides the thread count now and then (see gensemble.threads)
            if write_back is not None and needs_weights(on_step, members[0].step):
                write_back()
            if on_step is not None:
                with together(on_step):
                    for m, st in zip(members, stats):
                        on_step(m, st)
            if members[0].step % log_every == 0:
                bar.set_postfix(postfix(stats[0]), refresh=False)
    finally:
        if write_back is not None:
            write_back()
        bar.close()


def fit_member(
    member: Member,
    data: Dataset,
    cfg: TrainConfig,
    on_step: StepHook | None = None,
    weights: Tensor | None = None,
    steps: int | None = None,
    shard: Shard = WHOLE,
) -> Member:
    """Train `member` until it has made `steps` (default cfg.steps) updates; resumes from member.step.
    The one-member case of `run_rounds`."""
    total = cfg.steps if steps is None else steps
    step_fn = STEPS[member.family]
    member.model.train()

    def one_round() -> list[dict[str, float]]:
        return [step_fn(member, data, cfg.batch_size, weights, shard=shard)]

    run_rounds([member], total, one_round, on_step, cfg.log_every)
    return member


def postfix(stats: dict[str, float]) -> dict[str, str]:
    """A progress bar's postfix: the latest losses and, on a terminal's bar, the whole run's ETA while
    `train` runs (off a terminal the progress line states it itself, once)."""
    out = {k: f"{v:.3f}" for k, v in stats.items()}
    eta = RUN_CLOCK.eta() if interactive() else None
    return out | ({"run ETA": eta} if eta is not None else {})


@torch.no_grad()
def update_ema(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    """ema ← decay·ema + (1 − decay)·net for parameters; buffers (BN statistics) are copied."""
    for pe, p in zip(ema.parameters(), net.parameters()):
        pe.lerp_(p.detach(), 1.0 - decay)
    for be, b in zip(ema.buffers(), net.buffers()):
        be.copy_(b)
