"""How many CPU threads PyTorch uses, chosen by measuring rather than guessing.

On a shared machine the best setting changes with the neighbours: on a quiet 2-core machine two
threads train a DCGAN faster than one, while with a busy neighbour two threads spin against it and
run slower than one (benchmarks/threads.py measures both). No fixed count is near the best in both
cases, so by default (`auto`) a fresh run times a few steps at each candidate count and keeps the
fastest for the rest of the run.

The choice is made once per run, at its first steps, on a fixed schedule (8 steps at each count), and
saved in its checkpoints: convolutions give slightly different floating-point results with different
thread counts, so a resumed run reuses its own count and still reaches exactly the uninterrupted
run's weights. Two fresh runs under different loads may choose differently; for bit-identical
reruns fix the count (`--threads N`, `GENSEMBLE_THREADS=N` or `train.threads`).
"""

from __future__ import annotations

import os
import time

import torch

from gensemble.errors import ConfigError


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class ThreadTuner:
    """Called after every training step: times `probe_steps` steps at each count, then keeps the fastest."""

    def __init__(self, choices: tuple[int, ...], probe_steps: int = 8) -> None:
        self.choices = tuple(dict.fromkeys(choices))  # unique, in order
        self.probe_steps = probe_steps
        self.rates: dict[int, float] = {}
        self.best: int | None = None
        self._queue = list(self.choices)
        self._count = -2  # not started: the first tick switches to the first candidate
        self._t0 = 0.0

    def tick(self) -> None:
        if self.best is not None:
            return
        now = time.perf_counter()
        if self._count == -2:
            torch.set_num_threads(self._queue[0])
            self._count = -1
            return
        self._count += 1
        if self._count == 0:  # the step after a switch warms the thread pool up; time from here
            self._t0 = now
            return
        if self._count < self.probe_steps:
            return
        self.rates[self._queue.pop(0)] = self.probe_steps / max(now - self._t0, 1e-9)
        if self._queue:
            torch.set_num_threads(self._queue[0])
            self._count = -1
        else:
            self.best = max(self.rates, key=self.rates.get)
            torch.set_num_threads(self.best)


_MODE: int | str = "auto"  # "auto" or a fixed count
_EXPLICIT = False
_TUNER: ThreadTuner | None = None


def explicit() -> bool:
    """Whether the user chose the thread count on the command line (it then beats train.threads)."""
    return _EXPLICIT


def set_threads(threads: int | str | None, from_user: bool = False) -> None:
    """ "auto" or None (measure at each run's start; $GENSEMBLE_THREADS overrides) or a fixed positive count."""
    global _MODE, _EXPLICIT, _TUNER
    _EXPLICIT = _EXPLICIT or from_user
    if threads is None or threads == "auto":
        env = os.environ.get("GENSEMBLE_THREADS")
        if env and env != "auto":
            return set_threads(env, from_user=from_user)
        _MODE = "auto"
        return
    try:
        n = int(threads)
    except (TypeError, ValueError):
        raise ConfigError(f"--threads takes a positive count or 'auto', got {str(threads)[:40]!r}") from None
    if not 1 <= n <= 1024:
        raise ConfigError(f"--threads takes a count from 1 to 1024 or 'auto', got {n}")
    torch.set_num_threads(n)
    _MODE, _TUNER = n, None


def start_run(saved: int | None = None) -> None:
    """Before a run trains: reuse the count it saved (a resume), else probe afresh (auto) or keep the fixed one."""
    global _TUNER
    _TUNER = None
    if _MODE != "auto":
        return
    if saved is not None:
        torch.set_num_threads(int(saved))
    elif available_cores() > 1:
        _TUNER = ThreadTuner((1, available_cores()))
    else:
        torch.set_num_threads(1)


def tick() -> None:
    """Training loops call this after every step."""
    if _TUNER is not None:
        _TUNER.tick()


def tuner() -> ThreadTuner | None:
    return _TUNER
