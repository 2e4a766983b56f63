"""ray: members train as Ray tasks, on a Ray cluster or on a Ray started inside this process.

    gensemble train CONFIG --backend ray                      # Ray starts here, on this machine's cores
    gensemble train CONFIG --backend ray --address auto       # the cluster `ray start` joined on this node
    gensemble train CONFIG --backend ray --address HOST:PORT  # a cluster's head node

The driver (the `gensemble train` process) owns the ensemble and its run folder. It sends each member
to a Ray task as a self-contained `TaskSpec`: member config, weights, optimiser moments, RNG state
and the step to stop at, which is the member's next checkpoint step. The task (`cpus` CPUs, and one
GPU on a CUDA run) rebuilds the member, trains it with `fit_member` and returns its state; the
driver applies it, writes the whole-ensemble checkpoint atomically and sends the member's next chunk
at once, so members never wait for each other. The RNG state travels with the member, so every
update is the one local training makes, bit for bit.

Faults: a worker that dies costs its member at most one chunk (`train.checkpoint_every` steps).
The other members are independent of it, so they train on to their targets and are saved; then the
run stops with one line naming the member, and `--resume` continues it from its checkpoint without
retraining the members that finished.

The training data reach the workers once, through Ray's object store, so nodes need neither the
dataset files nor the run folder; only the driver writes. Keep the run folder on storage every node
sees all the same, so that any node can resume the run or sample from it.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gensemble.data import DataConfig, Dataset
from gensemble.errors import ConfigError, GensembleError
from gensemble.execution.base import (
    EXECUTORS,
    MemberTask,
    RemoteExecutor,
    TaskResult,
    TaskSpec,
    apply_result,
    run_task_spec,
    task_spec,
)
from gensemble.progress import progress, set_quiet

if TYPE_CHECKING:
    from gensemble.ensemble.state import Ensemble
    from gensemble.training.loop import StepHook

INSTALL = "pip install 'gensemble[ray]'"


class RayUnavailableError(GensembleError):
    """Ray is not installed."""


class RayConnectionError(GensembleError):
    """The Ray cluster named by --address cannot be reached."""


class MemberLostError(GensembleError):
    """A member's Ray task failed or its worker died; the run is saved and can be resumed."""


def import_ray() -> Any:
    """Ray, imported only when the ray backend is used (it is an optional extra)."""
    try:
        import ray
    except ImportError:
        raise RayUnavailableError(f"the ray backend needs Ray, which is not installed: {INSTALL}") from None
    return ray


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail at once on a HOST:PORT nobody listens on; ray.init would retry it for minutes."""
    if address in ("auto", "local"):
        return  # Ray resolves these itself, and fails fast when there is no cluster
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RayConnectionError(
            f"--address {address!r} is neither 'auto' nor HOST:PORT (e.g. 10.0.0.5:6379)"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RayConnectionError(
            f"cannot reach a Ray cluster at {address!r} ({reason}); start one with 'ray start --head' "
            "or drop --address to run Ray on this machine"
        ) from None


def connect(address: str | None, num_cpus: int | None = None) -> Any:
    """Join the cluster at `address`, or start Ray in this process (`num_cpus`: all cores by default).

    A Ray that is already running in this process (a test fixture, a notebook) is used as it is.
    """
    ray = import_ray()
    if address is not None:
        check_reachable(address)
    if ray.is_initialized():
        return ray
    import logging

    quiet = {"log_to_driver": False, "logging_level": logging.WARNING, "configure_logging": True}
    if address is None:
        ray.init(num_cpus=num_cpus, include_dashboard=False, **quiet)
        return ray
    with held_back_stderr() as held:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            log = held.keep()
            if "InvalidAuthToken" in log.read_text(errors="replace"):
                first = "the cluster wants its auth token: export RAY_AUTH_MODE=token, with the token in ~/.ray/auth_token"
            raise RayConnectionError(
                f"cannot connect to the Ray cluster at {address!r}: {first} (Ray's messages: {log})"
            ) from None
        held.release()
    return ray


class held_back_stderr:  # noqa: N801  (a context manager, named for the `with` line)
    """Hold back what is written to file descriptor 2 inside the block, and drop it unless released.

    Ray's C++ client logs every retry of a failed connection straight to fd 2, around the one-line
    error that follows; a successful connection's messages are passed on at `release()`.
    """

    def __enter__(self) -> held_back_stderr:
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        self._released = False
        return self

    def release(self) -> None:
        """Pass what was held back on to stderr at the end of the block."""
        self._released = True

    def keep(self) -> Path:
        """Copy what was held back to a file that outlives the block, for the error to point at."""
        sys.stderr.flush()
        self._file.seek(0)
        fd, name = tempfile.mkstemp(prefix="gensemble-ray-connect-", suffix=".log")
        with os.fdopen(fd, "wb") as out:
            out.write(self._file.read())
        return Path(name)

    def __exit__(self, *exc: Any) -> None:
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        if self._released:
            self._file.seek(0)
            sys.stderr.write(self._file.read().decode(errors="replace"))
        self._file.close()


# --- the worker side -------------------------------------------------------------------------------


@dataclass
class SharedData:
    """The training split as it travels through the object store: numpy arrays (read zero-copy)."""

    x: np.ndarray
    y: np.ndarray | None
    config: DataConfig

    @classmethod
    def of(cls, data: Dataset) -> SharedData:
        y = None if data.y is None else data.y.detach().cpu().numpy()
        return cls(data.x.detach().cpu().numpy(), y, data.meta["config"])

    def dataset(self, device: str) -> Dataset:
        with warnings.catch_warnings():  # the store's buffers are read-only; training never writes data
            warnings.simplefilter("ignore", UserWarning)
            x = torch.from_numpy(self.x).to(device)
            y = None if self.y is None else torch.from_numpy(self.y).to(device)
        return Dataset(x=x, y=y, meta={"config": self.config})


_WORKER_DATA: dict[tuple[str, str], Dataset] = {}  # per worker process: the run's data, loaded once


def worker_dataset(data_ref: Any, device: str) -> Dataset:
    """The run's training data on this worker's device; fetched and moved once per worker process."""
    key = (data_ref.hex(), device)
    if key not in _WORKER_DATA:
        import ray

        _WORKER_DATA.clear()  # one run at a time: never keep an older run's data alive
        _WORKER_DATA[key] = ray.get(data_ref).dataset(device)
    return _WORKER_DATA[key]


def train_member_task(spec: TaskSpec, data_ref: list[Any], threads: int) -> TaskResult:
    """Ray task: train one member from its spec to `spec.target_step` and return its state.

    `data_ref` is a one-element list so that Ray hands over the reference, not the data, and the
    worker can keep the data it already holds.
    """

    set_quiet(True)
    torch.set_num_threads(threads)
    return run_task_spec(spec, worker_dataset(data_ref[0], spec.device))


# --- the driver side -------------------------------------------------------------------------------


def describe_failure(ray: Any, exc: BaseException) -> str:
    """Why a member's task failed, in a few words."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = exc.cause
        if isinstance(cause, GensembleError):
            return str(cause)
        line = (str(cause).strip().splitlines() or [""])[0][:160]
        return f"its task raised {type(cause).__name__}: {line} (traceback in the Ray worker log)"
    if isinstance(exc, ray.exceptions.OutOfMemoryError):
        return "its Ray worker ran out of memory and was killed"
    if isinstance(exc, ray.exceptions.NodeDiedError):
        return "the Ray node running it died"
    return f"its Ray worker died ({type(exc).__name__})"


class RayExecutor(RemoteExecutor):
    """Member tasks as Ray tasks, pipelined per member: see the module docstring."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        cpus_per_member: int = 1,
        max_retries: int = 0,
        task_fn: Callable[..., TaskResult] = train_member_task,
    ) -> None:
        # max_retries=0: a dead worker is reported, not silently replayed; the run resumes from its checkpoint.
        self.ray = connect(address, num_cpus)
        self.address, self.cpus, self.max_retries = address, cpus_per_member, max_retries
        self._remote = self.ray.remote(task_fn)
        self._shared: tuple[tuple, Any] | None = None
        self._load_and_run: Any = None
        self.submitted: list[tuple[str, int, int]] = []  # (member, from step, to step) of every chunk sent

    def share(self, data: Dataset) -> Any:
        """Put the training data in the object store once per dataset (schemes call `run` many times)."""
        key = (id(data), data.x.data_ptr(), tuple(data.x.shape))
        if self._shared is None or self._shared[0] != key:
            self._shared = (key, self.ray.put(SharedData.of(data)))
        return self._shared[1]

    def submit(self, ens: Ensemble, task: MemberTask, data_ref: Any) -> Any:
        """Send the member's next chunk: up to its next checkpoint step, or its target."""
        every = ens.cfg.train.checkpoint_every
        target = min(task.target_step, (task.member.step // every + 1) * every)
        self.submitted.append((task.member.name, task.member.step, target))
        gpus = 1 if ens.device.type == "cuda" else 0
        options: dict[str, Any] = {"num_cpus": self.cpus, "num_gpus": gpus, "max_retries": self.max_retries}
        if gpus:  # Ray retires a GPU worker after each task by default; keep it, and the data it holds
            options["max_calls"] = 0
        return self._remote.options(**options).remote(task_spec(ens, task, target), [data_ref], self.cpus)

    def run(self, ens: Ensemble, tasks: Sequence[MemberTask], data: Dataset, hooks: StepHook) -> None:
        if ens.cfg.train.snapshot_every:
            raise ConfigError("backend 'ray' does not take weight snapshots; set train.snapshot_every: 0")
        pending = [t for t in tasks if not t.done]
        if not pending:
            return
        ray, data_ref = self.ray, self.share(data)
        running = {self.submit(ens, t, data_ref): t for t in pending}
        failed: list[tuple[MemberTask, str]] = []
        total = sum(t.target_step for t in pending)
        bar = progress(
            total,
            f"train {len(pending)} members on ray",
            initial=sum(t.member.step for t in pending),
            unit="step",
        )
        try:
            while running:
                (ref,), _ = ray.wait(list(running), num_returns=1)
                task = running.pop(ref)
                before = task.member.step
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    failed.append((task, describe_failure(ray, exc)))
                    print(
                        f"gensemble: member {task.member.name!r} failed on Ray ({failed[-1][1]}); "
                        "the other members train on, then the run stops",
                        file=sys.stderr,
                    )
                    continue  # the others are independent of it: they finish and are saved first
                apply_result(ens, task.member, result, hooks)
                bar.update(task.member.step - before)
                if ens.run_dir is not None:
                    ens.save()
                if not task.done:
                    running[self.submit(ens, task, data_ref)] = task
        except BaseException:
            for ref in running:
                ray.cancel(ref, force=True)
            raise
        finally:
            bar.close()
        if failed:
            raise self.lost(ens, failed)

    def lost(self, ens: Ensemble, failed: list[tuple[MemberTask, str]]) -> MemberLostError:
        """The one-line error for the first failed member (naming any others)."""
        task, why = failed[0]
        others = f" (and {', '.join(repr(t.member.name) for t, _ in failed[1:])})" if failed[1:] else ""
        if ens.run_dir is None:
            return MemberLostError(f"member {task.member.name!r}{others} failed on Ray: {why}")
        return MemberLostError(
            f"member {task.member.name!r}{others} failed on Ray: {why}; the run in {str(ens.run_dir)!r} is "
            f"saved with it at step {task.member.step}: continue with --resume"
        )

    def map(self, specs: list[TaskSpec]) -> list[TaskResult]:
        """RemoteExecutor's contract, for callers that batch specs themselves: each worker loads the
        data its spec names (so every node needs the dataset files); results in order."""
        if self._load_and_run is None:
            self._load_and_run = self.ray.remote(run_task_spec)
        gpus = [1 if s.device.startswith("cuda") else 0 for s in specs]
        refs = [
            self._load_and_run.options(num_cpus=self.cpus, num_gpus=g).remote(s) for s, g in zip(specs, gpus)
        ]
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayError as exc:
            raise MemberLostError(f"a member failed on Ray: {describe_failure(self.ray, exc)}") from None


EXECUTORS.register("ray", "Ray tasks, one member each, on a cluster (--address) or on this machine")(
    lambda address=None: RayExecutor(address)
)
