"""Executors: how member work runs. Schemes describe the work; an executor decides where it runs.

Schemes hand an executor two kinds of work:

* `run(ens, tasks, data, hooks)`: independent member tasks. A `MemberTask` asks for one member to be
  brought to `target_step`, optionally on per-example data weights (bagging, boosting). Members of one
  task list never interact, so an executor may run them in any order, stacked, or elsewhere. Tasks
  whose member already reached its target are skipped, which is how a resumed run passes over
  finished members.
* `run_lockstep(ens, members, target, round_fn, hooks)`: coupled members (a shared discriminator or
  classifier) that must advance together; `round_fn()` makes one step of each and returns their stats.

Backends are registered in `EXECUTORS` by name; `make_executor(name)` builds one (the CLI's `--backend`),
and the run passes it to its scheme:

* "local" (the default): in this process; members of one config train stacked (`training/batched.py`) where
  that pays (always on a GPU; on a CPU for networks without convolutions), the others one by one.
* "batched": like "local", but stacks every group it can, convolutions on a CPU included.
* "loop": in this process, one member at a time, never stacked; the reference the engine is tested against.
* "isolated": every task goes through the self-contained path a remote backend uses: `task_spec` packs
  it (member config, state, data reference, target), `run_task_spec` trains it from that alone and
  returns the new state, `apply_result` writes that back. It runs in this process; it exists to prove
  (in tests) that a remote backend can reproduce local training exactly.

A remote backend (Ray) subclasses `RemoteExecutor` and implements `map(specs)`, e.g. with
`ray.get([remote_run.remote(s) for s in specs])` where `remote_run` wraps `run_task_spec`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from gensemble.data import DataConfig, Dataset, load_dataset
from gensemble.ensemble.base import Executor, MemberTask, Stacking
from gensemble.ensemble.state import ema_key
from gensemble.errors import ConfigError
from gensemble.registry import Registry
from gensemble.training.batched import BatchedGAN, batch_key
from gensemble.training.loop import StepHook, TrainConfig, fit_member, update_ema
from gensemble.training.member import Member, MemberConfig, build_member

if TYPE_CHECKING:
    from gensemble.ensemble.state import Ensemble

Stats = dict[str, float]


# --- the interface -------------------------------------------------------------------------------


class LocalExecutor(Executor):
    """In this process: same-config GAN members train stacked (as `stacking` says), the rest one by one."""

    def __init__(self, stacking: Stacking = "auto", name: str = "local") -> None:
        self.stacking, self.name = stacking, name

    def run(self, ens: Ensemble, tasks: Sequence[MemberTask], data: Dataset, hooks: StepHook) -> None:
        for group in self.groups([t for t in tasks if not t.done]):
            if len(group) == 1:
                t = group[0]
                fit_member(t.member, data, ens.cfg.train, hooks, t.data_weights, steps=t.target_step)
            else:
                self.run_batched(ens, group, data, hooks)

    def groups(self, tasks: list[MemberTask]) -> list[list[MemberTask]]:
        """Tasks that can train as one stacked model, in order of their first member."""

        out: dict[Any, list[MemberTask]] = {}
        for i, t in enumerate(tasks):
            key = batch_key(t.member, t.target_step)
            if key is None or not self.stacks([t.member.model.G, t.member.model.D]):
                key = ("alone", i)
            out.setdefault(key, []).append(t)
        return list(out.values())

    def run_batched(self, ens: Ensemble, group: list[MemberTask], data: Dataset, hooks: StepHook) -> None:

        members = [t.member for t in group]
        engine = BatchedGAN(members)
        weights = [t.data_weights for t in group]
        batch = ens.cfg.train.batch_size
        desc = f"train {members[0].name}..{members[-1].name} (stacked ×{len(members)})"
        self.run_lockstep(
            ens,
            members,
            group[0].target_step,
            lambda: engine.step(data, batch, weights),
            hooks,
            engine.write_back,
            desc,
        )


# --- the self-contained path for remote backends ------------------------------------------------


@dataclass
class MemberState:
    """A member's whole trainable state as tensors and JSON: weights, optimiser moments, RNG, step."""

    weights: dict[str, Tensor]
    tensors: dict[str, Tensor]
    training: dict[str, Any]


def export_state(member: Member) -> MemberState:
    """A copy of the member's state that shares no storage with it (safe to ship or to keep)."""
    tensors: dict[str, Tensor] = {}
    training = member.training_state(tensors)
    return MemberState(
        {k: v.detach().cpu().clone() for k, v in member.weights().items()},
        {k: v.clone() for k, v in tensors.items()},
        training,
    )


def import_state(member: Member, state: MemberState) -> None:
    member.load_weights(state.weights)
    member.load_training_state(state.training, state.tensors)


@dataclass
class TaskSpec:
    """Everything a worker needs to advance one member, with no reference to the driver's objects."""

    member: MemberConfig  # resolved: named, defaults written out
    state: MemberState
    data: DataConfig  # the worker loads the training split itself
    shape: tuple[int, ...]
    train: TrainConfig
    target_step: int
    data_weights: Tensor | None = None
    ema: dict[str, Tensor] | None = None  # the member's EMA generator, updated alongside (train.ema_decay)
    device: str = "cpu"


@dataclass
class TaskResult:
    state: MemberState
    ema: dict[str, Tensor] | None = None
    logs: list[tuple[int, Stats]] = field(default_factory=list)  # (step, stats) at each logging step


def task_spec(ens: Ensemble, task: MemberTask, target_step: int | None = None) -> TaskSpec:
    ema = ens.aux.get(ema_key(task.member.name))
    return TaskSpec(
        member=task.member.cfg,
        state=export_state(task.member),
        data=ens.cfg.data,
        shape=tuple(ens.shape),
        train=ens.cfg.train,
        target_step=task.target_step if target_step is None else target_step,
        data_weights=None if task.data_weights is None else task.data_weights.detach().cpu().clone(),
        ema=None if ema is None else {k: v.detach().cpu().clone() for k, v in ema.state_dict().items()},
        device=str(ens.device),
    )


def run_task_spec(spec: TaskSpec, data: Dataset | None = None) -> TaskResult:
    """Worker side: rebuild the member from its config, load its state, train it to the target."""

    device = torch.device(spec.device)
    if data is None:
        data = load_dataset(spec.data, "train")
        data.x = data.x.to(device)
    member = build_member(spec.member, spec.shape, device)
    import_state(member, spec.state)
    ema = None
    if spec.ema is not None:
        ema = build_member(spec.member, spec.shape, device).model.generator_net().requires_grad_(False)
        ema.load_state_dict(spec.ema)
    logs: list[tuple[int, Stats]] = []

    def on_step(m: Member, stats: Stats) -> None:
        if ema is not None:
            update_ema(ema, m.model.generator_net(), spec.train.ema_beta(m.step))
        if m.step % spec.train.log_every == 0 or m.step == spec.train.steps:
            logs.append((m.step, stats))

    weights = None if spec.data_weights is None else spec.data_weights.to(device)
    fit_member(member, data, spec.train, on_step, weights, steps=spec.target_step)
    ema_state = None if ema is None else {k: v.detach().cpu().clone() for k, v in ema.state_dict().items()}
    return TaskResult(export_state(member), ema_state, logs)


def apply_result(ens: Ensemble, member: Member, result: TaskResult, hooks: Any) -> None:
    """Driver side: the worker's state into the live member, its EMA into the run, its log lines to the hooks."""
    import_state(member, result.state)
    if result.ema is not None:
        ens.aux[ema_key(member.name)].load_state_dict(result.ema)
    log = getattr(hooks, "log", None)
    for step, stats in result.logs:
        if log is not None:
            log(member.name, step, stats)


class RemoteExecutor(Executor):
    """Ships tasks as `TaskSpec`s in chunks that end at checkpoint steps, and checkpoints between chunks.

    Subclasses implement `map(specs) -> results` (in order). Per-step hooks run on the worker only as
    far as EMA and logging go; weight snapshots (`train.snapshot_every`) are not taken remotely.
    """

    def map(self, specs: list[TaskSpec]) -> list[TaskResult]:
        raise NotImplementedError

    def run(self, ens: Ensemble, tasks: Sequence[MemberTask], data: Dataset, hooks: StepHook) -> None:
        if ens.cfg.train.snapshot_every:
            raise ConfigError(
                f"backend {self.name!r} does not take weight snapshots; set train.snapshot_every: 0"
            )
        every = ens.cfg.train.checkpoint_every
        pending = [t for t in tasks if not t.done]
        while pending:
            # Each chunk stops at the member's next checkpoint step, so a crash loses at most one chunk.
            chunk = [min(t.target_step, (t.member.step // every + 1) * every) for t in pending]
            results = self.map([task_spec(ens, t, c) for t, c in zip(pending, chunk)])
            for t, r in zip(pending, results):
                apply_result(ens, t.member, r, hooks)
            if ens.run_dir is not None:
                ens.save()
            pending = [t for t in pending if not t.done]


class IsolatedExecutor(RemoteExecutor):
    """The remote path, run in this process: every task is packed, trained from its spec, unpacked."""

    name = "isolated"

    def __init__(self, data: Dataset | None = None) -> None:
        self.data = data

    def run(self, ens: Ensemble, tasks: Sequence[MemberTask], data: Dataset, hooks: StepHook) -> None:
        self.data = data  # in-process, the worker may share the driver's copy of the data
        super().run(ens, tasks, data, hooks)

    def map(self, specs: list[TaskSpec]) -> list[TaskResult]:
        return [run_task_spec(s, self.data) for s in specs]


# --- the registry ---------------------------------------------------------------------------------

EXECUTORS: Registry[Callable[..., Executor]] = Registry("backend")
EXECUTORS.register("local", "this process; same-config members train stacked where that pays (default)")(
    lambda address=None: LocalExecutor("auto", name="local")
)
EXECUTORS.register("batched", "this process; every group of same-config members trains stacked")(
    lambda address=None: LocalExecutor("always", name="batched")
)
EXECUTORS.register("loop", "this process, one member at a time (the reference for the batched engine)")(
    lambda address=None: LocalExecutor("never", name="loop")
)
EXECUTORS.register("isolated", "the remote-backend path (self-contained task specs), run in this process")(
    lambda address=None: IsolatedExecutor()
)
