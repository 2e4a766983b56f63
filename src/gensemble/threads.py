"""How many CPU threads PyTorch uses, chosen by measuring rather than guessing.

On a shared machine the best setting changes with the neighbours: on a quiet 2-core machine two
threads train a DCGAN faster than one, while with a busy neighbour two threads spin against it and
run slower than one (benchmarks/threads.py measures both). No fixed count is near the best in both
cases, so by default (`auto`) a fresh run times a few steps at each candidate count and keeps the
fastest for the rest of the run.

The choice is made once per run, at its first steps (1 and all threads in alternation, 3 × 4 steps
each, most first; median step time; more threads must be 10% faster to win), and saved in its checkpoints: convolutions give slightly different floating-point results with different
thread counts, so a resumed run reuses its own count and still reaches exactly the uninterrupted
run's weights. Two fresh runs under different loads may choose differently; for bit-identical
reruns fix the count (`--threads N`, `GENSEMBLE_THREADS=N` or `train.threads`).
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import torch

from gensemble.errors import ConfigError


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class ThreadTuner:
    """Called after every training step. Probes the candidate counts in alternation (N, 1, N, 1, ...,
    `rounds` times each, `probe_steps` steps a time after a warm-up step), then keeps the one with
    the lowest median step time. Alternating and taking medians keeps a neighbour's burst from
    deciding; a larger count must be clearly faster (by `margin`) to win, because beside busy
    neighbours extra threads lose far more than they gain on a quiet machine."""

    def __init__(
        self, choices: tuple[int, ...], probe_steps: int = 4, rounds: int = 3, margin: float = 0.1
    ) -> None:
        self.choices = tuple(sorted(dict.fromkeys(choices)))  # unique, fewest first (ties go to fewer)
        self.probe_steps, self.margin = probe_steps, margin
        self.times: dict[int, list[float]] = {c: [] for c in self.choices}
        self.rates: dict[int, float] = {}
        self.best: int | None = None
        # Most threads first, so that what is built and cached at the first steps (oneDNN kernels,
        # thread pools) is built for the count a quiet machine keeps.
        self._queue = [c for _ in range(rounds) for c in reversed(self.choices)]
        self._count = -2  # -2: not started; -1: the warm-up step after a switch
        self._last = 0.0

    def tick(self) -> None:
        if self.best is not None:
            return
        now = time.perf_counter()
        if self._count == -2 or self._count == -1:
            if self._count == -2:
                torch.set_num_threads(self._queue[0])
            self._count, self._last = (-1 if self._count == -2 else 0), now
            return
        self.times[self._queue[0]].append(now - self._last)
        self._last = now
        self._count += 1
        if self._count < self.probe_steps:
            return
        self._queue.pop(0)
        if self._queue:
            torch.set_num_threads(self._queue[0])
            self._count = -1
            return
        medians = {c: statistics.median(t) for c, t in self.times.items() if t}
        self.rates = {c: 1.0 / max(m, 1e-9) for c, m in medians.items()}
        best = self.choices[0]
        for c in self.choices[1:]:
            if medians[c] < (1 - self.margin) * medians[best]:
                best = c
        self.best = best
        torch.set_num_threads(best)
        rates = ", ".join(f"{c} thread{'s' if c > 1 else ''} {r:.1f} steps/s" for c, r in self.rates.items())
        print(f"[threads] {rates}: training on {best} (--threads N fixes it)", file=sys.stderr, flush=True)


# None: leave PyTorch's setting alone (the library default: importing gensemble never changes
# process-wide state); the CLI sets "auto" unless told otherwise.
_MODE: int | str | None = None
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
    if _MODE is None and saved is None:
        return
    if _MODE is not None and _MODE != "auto":
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
