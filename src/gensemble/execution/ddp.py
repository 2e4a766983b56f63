"""Data-parallel training with torch.distributed (DDP), for members too large for one process.

Launched by torchrun, one process per CPU share or GPU::

    torchrun --nproc_per_node=2 -m gensemble train --ddp CONFIG --out RUN [--resume] [--device cpu|cuda|auto]

Every process (rank) builds the same members from their seeds and draws every batch, latent code and
penalty weight from the member's own RNG, keeping only its rows of each batch (`train.Shard`). DDP
averages the gradients, so each update is the one a single process would make on the whole batch,
and all ranks' RNGs stay identical: rank 0's checkpoint resumes the run on any number of processes,
or on none. Rank 0 alone writes metrics and checkpoints, through the usual hooks and `Ensemble.save()`.
The backend is gloo on the CPU and nccl on GPUs (one GPU per process, picked by LOCAL_RANK).

Every rank runs the run's scheme under the "ddp" executor, which trains each member task on all
ranks in turn; so the schemes whose members train as tasks (independent, swap, boosting) run
unchanged, and their scheme state (bootstrap weights, swaps, boosting rounds) is the local one.

BatchNorm: on GPUs every BatchNorm layer becomes a SyncBatchNorm, so it normalises by the whole
batch's statistics, as a single process would. gloo has no SyncBatchNorm, so on the CPU each rank
normalises by its own shard and the running statistics are rank 0's (DDP broadcasts buffers).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from gensemble.ensemble.base import SCHEMES, MemberTask
from gensemble.errors import ConfigError, GensembleError
from gensemble.execution.base import EXECUTORS, Executor
from gensemble.progress import set_quiet
from gensemble.training.loop import Shard, StepHook, TrainConfig, fit_member, resolve_device
from gensemble.training.member import Member

if TYPE_CHECKING:
    from gensemble.data import Dataset
    from gensemble.ensemble.state import Ensemble

T = TypeVar("T")
LAUNCH = "torchrun --nproc_per_node=N -m gensemble train --ddp CONFIG --out RUN"


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in a torchrun job."""

    rank: int
    world: int
    local_rank: int

    @classmethod
    def from_environ(cls) -> DistEnv:
        """Read RANK / WORLD_SIZE / LOCAL_RANK, which torchrun sets; a ConfigError without them."""
        try:
            return cls(
                int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
            )
        except (KeyError, ValueError):
            raise ConfigError(f"data-parallel training must be launched by torchrun: {LAUNCH}") from None

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.world)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def rank_device(name: str, env: DistEnv) -> torch.device:
    """cpu, or this process's own GPU (cuda:LOCAL_RANK)."""
    device = resolve_device(name)
    if device.type != "cuda":
        return device
    if env.local_rank >= torch.cuda.device_count():
        raise ConfigError(
            f"torchrun started more processes on this node than it has GPUs ({torch.cuda.device_count()}); "
            "lower --nproc_per_node or use --device cpu"
        )
    return torch.device("cuda", env.local_rank)


def start_process_group(env: DistEnv, device: torch.device) -> None:
    """nccl between GPUs, gloo between CPU processes; rendezvous through torchrun's environment."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", rank=env.rank, world_size=env.world, device_id=device)
    else:
        dist.init_process_group("gloo", rank=env.rank, world_size=env.world)


def task_schemes() -> list[str]:
    """The schemes data parallelism can run: those whose members train through executor tasks."""
    return [name for name in SCHEMES if SCHEMES.get(name).runs_as_tasks]


def check_ddp_config(cfg: Any, world: int) -> None:
    """Refuse, on every rank alike, what data parallelism cannot do."""
    if cfg.scheme.name not in task_schemes():
        raise ConfigError(
            f"data-parallel training supports the schemes {', '.join(task_schemes())}, not "
            f"{cfg.scheme.name!r}, whose members train coupled at every step"
        )
    if cfg.train.batch_size % world:
        raise ConfigError(
            f"config key 'train.batch_size' ({cfg.train.batch_size}) must be divisible by the number of "
            f"processes ({world}), so that every rank gets an equal shard"
        )


class DataParallelModel:
    """A member's model as the step functions see it under DDP: each network it steps with wrapped
    in DistributedDataParallel, everything else (z_dim, cfg, generator_net, train) passed through.

    A GAN's G and D are wrapped separately because the step uses them separately; a VAE is wrapped
    whole because the step calls it whole. The member keeps its unwrapped model, so weights and
    checkpoints are the same as in a single process.
    """

    def __init__(self, model: nn.Module, device_ids: list[int] | None = None) -> None:
        self.model = model
        wrap = lambda net: DistributedDataParallel(net, device_ids=device_ids)  # noqa: E731
        if model.family == "gan":
            self.G, self.D = wrap(model.G), wrap(model.D)
        else:
            self._whole = wrap(model)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._whole(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["model"], name)


def sync_batchnorm(model: nn.Module) -> None:
    """Turn the BatchNorm layers of every network into SyncBatchNorm, in place (GPU only).

    The parameters are the same objects, so optimisers and state_dict keys are unchanged.
    """
    for name, net in model.networks().items():
        converted = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        if converted is not net:
            setattr(model, name, converted)


def mean_over_ranks(stats: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average the logged losses over ranks, so that the log shows the whole batch's."""
    keys = sorted(stats)
    values = torch.tensor([stats[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return dict(zip(keys, (values / dist.get_world_size()).tolist()))


def fit_member_data_parallel(
    member: Member,
    data: Dataset,
    cfg: TrainConfig,
    shard: Shard,
    on_step: StepHook | None = None,
    weights: Tensor | None = None,
    steps: int | None = None,
) -> Member:
    """`fit_member` on this rank's shard of each batch, DDP averaging the gradients across ranks.

    Every rank must call it for the same members in the same order (it is collective).
    """
    if member.step >= (cfg.steps if steps is None else steps):
        return member
    device = next(member.model.parameters()).device
    if device.type == "cuda":
        sync_batchnorm(member.model)
    device_ids = [device.index] if device.type == "cuda" else None
    view = replace(member, model=DataParallelModel(member.model, device_ids))

    def after_step(stepped: Member, stats: dict[str, float]) -> None:
        member.step = stepped.step
        stats = mean_over_ranks(stats, device)
        if on_step is not None:
            on_step(member, stats)

    fit_member(view, data, cfg, after_step, weights, steps=steps, shard=shard)
    member.step = view.step
    return member


class DataParallelExecutor(Executor):
    """The executor of a torchrun job: member tasks one after another, each data-parallel over all ranks.

    Every rank runs the scheme; only rank 0 has hooks (the others get None), so only it writes.
    """

    name = "ddp"
    stacking = "never"

    def __init__(self, env: DistEnv) -> None:
        self.env, self.shard = env, env.shard
        self._group = False

    @property
    def is_main(self) -> bool:  # type: ignore[override]
        return self.env.is_main

    def start(self, cfg: Any) -> torch.device:
        """Refuse what data parallelism cannot do (on every rank alike), pick this rank's device, join
        the process group; ranks other than 0 print nothing."""
        check_ddp_config(cfg, self.env.world)
        device = rank_device(cfg.train.device, self.env)
        if not self.env.is_main:
            set_quiet(True)
        start_process_group(self.env, device)
        self._group = True
        return device

    def on_main(self, fn: Callable[[], T]) -> T | None:
        return on_main_rank(self.env, fn)

    def finish(self, completed: bool) -> None:
        if not self._group:
            return
        if completed:
            dist.barrier()  # no rank leaves before rank 0 has saved the run
        dist.destroy_process_group()
        self._group = False

    def run(self, ens: Ensemble, tasks: Sequence[MemberTask], data: Dataset, hooks: StepHook | None) -> None:
        for t in tasks:
            fit_member_data_parallel(
                t.member, data, ens.cfg.train, self.shard, hooks, t.data_weights, t.target_step
            )

    def run_lockstep(self, ens: Ensemble, *args: Any, **kwargs: Any) -> None:
        raise ConfigError(f"data-parallel training supports the schemes {', '.join(task_schemes())}")


if "ddp" not in EXECUTORS:
    EXECUTORS.register(
        "ddp", "torchrun processes, each member data-parallel (torchrun -m gensemble train --ddp)"
    )(lambda address=None: DataParallelExecutor(DistEnv.from_environ()))


def on_main_rank(env: DistEnv, fn: Callable[[], T]) -> T | None:
    """Run fn on rank 0 only; if it raises a GensembleError, raise it on every rank (none hangs)."""
    error: list[Any] = [None]
    result = None
    if env.is_main:
        try:
            result = fn()
        except GensembleError as exc:
            error = [exc]
    dist.broadcast_object_list(error, src=0)
    if error[0] is not None:
        raise error[0]
    return result
