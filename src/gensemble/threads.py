"""How many CPU threads PyTorch uses, chosen by measuring rather than guessing.

On a shared machine the best setting changes with the neighbours: on a quiet 2-core machine two
threads train a DCGAN faster than one, while with a busy neighbour two threads spin against it and
run slower than one (benchmarks/threads.py measures both). No fixed count is near the best in both
cases, so by default (`auto`) a fresh run times a few steps at each candidate count and keeps the
fastest for the rest of the run.

The choice is made at a run's first steps (1 and all threads in alternation, 3 × 4 steps each, most
first; median step time; more threads must be 10% faster to win) and made again when the pace at the
chosen count moves by more than 1.5× (a neighbour came or went) or every 5,000 steps; the count in
use is saved in every checkpoint: convolutions give slightly different floating-point results with
different thread counts, so a resumed run starts from its own count (and re-measures only when its
pace moves). Two runs under different loads may choose differently; for bit-identical reruns fix
the count (`--threads N`, `GENSEMBLE_THREADS=N` or `train.threads`).
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


# How a run chooses its thread count: PROBE_ROUNDS alternations of PROBE_STEPS timed steps per count
# (after one warm-up step per switch); more threads must beat fewer by PROBE_MARGIN. The dry run's
# estimate (run/budget.py) chooses the same way and prices these steps.
PROBE_STEPS, PROBE_ROUNDS, PROBE_MARGIN = 4, 3, 0.1


def fastest_count(medians: dict[int, float], margin: float = PROBE_MARGIN) -> int:
    """The thread count to keep, from each count's median step time: the fewest, unless more are
    faster by `margin` (beside busy neighbours extra threads lose far more than they gain)."""
    best = min(medians)
    for n in sorted(medians)[1:]:
        if medians[n] < (1 - margin) * medians[best]:
            best = n
    return best


class ThreadTuner:
    """Called after every training step. Probes the candidate counts in alternation (N, 1, N, 1, ...,
    `rounds` times each, `probe_steps` steps a time after a warm-up step), then keeps the one with
    the lowest median step time. Alternating and taking medians keeps a neighbour's burst from
    deciding; a larger count must be clearly faster (by `margin`) to win, because beside busy
    neighbours extra threads lose far more than they gain on a quiet machine."""

    # After the choice the tuner keeps watching: the median step time of every `window` steps is
    # compared with the chosen count's, and a change by more than `drift`× either way (a neighbour
    # came or went) measures again; so does every `every` steps, since with one thread a neighbour's
    # leaving barely shows (docs: threads.json). At most `max_probes` measurements a run.
    window, drift, every, max_probes = 100, 1.5, 5000, 10

    def __init__(
        self,
        choices: tuple[int, ...],
        probe_steps: int = PROBE_STEPS,
        rounds: int = PROBE_ROUNDS,
        margin: float = PROBE_MARGIN,
        chosen: int | None = None,
    ) -> None:
        self.choices = tuple(sorted(dict.fromkeys(choices)))  # unique, fewest first (ties go to fewer)
        self.probe_steps, self.rounds, self.margin = probe_steps, rounds, margin
        self.rates: dict[int, float] = {}
        self.probes = 0
        self._recent: list[float] = []
        self._since = 0  # steps since the last choice
        self._chosen_time: float | None = None  # the chosen count's median step time (None: not yet timed)
        self._last = 0.0
        self._probe()
        if chosen is not None:  # a resumed run: its saved count, watched from here, not probed first
            self.best = chosen
            torch.set_num_threads(chosen)

    def _probe(self) -> None:
        """Start measuring every candidate count afresh."""
        self.probes += 1
        self.times: dict[int, list[float]] = {c: [] for c in self.choices}
        self.best: int | None = None
        # Most threads first, so that what is built and cached at the first steps (oneDNN kernels,
        # thread pools) is built for the count a quiet machine keeps.
        self._queue = [c for _ in range(self.rounds) for c in reversed(self.choices)]
        self._count = -2  # -2: not started; -1: the warm-up step after a switch

    def _watch(self) -> None:
        """One step at the chosen count: measure again when its pace has moved (or it is time to)."""
        now = time.perf_counter()
        dt, self._last = now - self._last, now
        self._since += 1
        if self._since == 1:
            return  # (the first step after a choice or a resume also timed what came before it)
        self._recent.append(dt)
        if len(self._recent) < self.window:
            return
        median, self._recent = statistics.median(self._recent), []
        if self._chosen_time is None:
            self._chosen_time = median
            return
        moved = max(median / self._chosen_time, self._chosen_time / median) > self.drift
        if (moved or self._since >= self.every) and self.probes < self.max_probes:
            why = (
                f"the step time moved from {self._chosen_time * 1e3:.0f} to {median * 1e3:.0f} ms"
                if moved
                else f"{self._since} steps since the last measurement"
            )
            print(f"[threads] {why}: measuring again", file=sys.stderr, flush=True)
            self._probe()

    def tick(self) -> None:
        if self.best is not None:
            self._watch()
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
        best = fastest_count(medians, self.margin)
        self.best = best
        self._chosen_time, self._recent, self._since, self._last = medians[best], [], 0, now
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
    if saved is not None:  # the count it saved, kept until the pace moves (see ThreadTuner)
        torch.set_num_threads(int(saved))
        if _MODE == "auto" and available_cores() > 1:
            _TUNER = ThreadTuner((1, available_cores()), chosen=int(saved))
    elif available_cores() > 1:
        _TUNER = ThreadTuner((1, available_cores()))
    else:
        torch.set_num_threads(1)


def auto_choices() -> tuple[int, ...]:
    """The thread counts a run under `auto` chooses among (empty when the count is fixed or unset)."""
    if _MODE != "auto" or available_cores() < 2:
        return ()
    return (1, available_cores())


def tick() -> None:
    """Training loops call this after every step."""
    if _TUNER is not None:
        _TUNER.tick()


def tuner() -> ThreadTuner | None:
    return _TUNER
