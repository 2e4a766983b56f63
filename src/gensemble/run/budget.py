"""What a run will cost in time, estimated before it runs by training a throwaway copy for a moment.

The copy is built from the same config (same seeds; the run itself is untouched) and trained by
the scheme through the local executor, the path the real run takes: the stacked engine where it
pays, the scheme's own rounds, and every member. After a warm-up (kernels, allocator, the thread
probe) it trains in chunks of doubling size until PROBE_SECONDS have passed; the per-step cost is
the slope of chunk time against chunk steps, extrapolated to `train.steps`. Timing a few single-member steps instead, as this did before, was
off by 2-6× (measured in benchmarks/estimates.py): too few steps on a noisy machine, and not the
code path that runs.
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import replace

import numpy as np
import torch

from gensemble import threads
from gensemble.ensemble import build_ensemble, scheme_for
from gensemble.execution import make_executor

WARM_STEPS = 3  # steps each member takes before the clock starts
CHUNK_STEPS = 5  # steps in the first timed chunk; each next one is twice as long
PROBE_SECONDS = 2.0  # the timed part lasts at least this long (or until train.steps is reached)


def estimate_seconds(cfg, data, device: torch.device, probe_seconds: float = PROBE_SECONDS) -> float:
    """Seconds the run's training will take here (checkpoint and image writes not included)."""
    with contextlib.redirect_stderr(io.StringIO()):  # the copy's progress lines are not the run's
        return _probe(cfg, data, device, probe_seconds)


def _probe(cfg, data, device: torch.device, probe_seconds: float) -> float:
    steps = cfg.train.steps
    warm = min(WARM_STEPS, steps)
    probe_cfg = replace(cfg, train=replace(cfg.train, steps=warm))
    ens = build_ensemble(probe_cfg, data.shape, device)
    scheme, executor = scheme_for(cfg), make_executor("local")
    scheme.train(ens, data, no_hook, executor)
    previous = torch.get_num_threads()
    try:
        done, per_step = pick_threads(ens, cfg, data, scheme, executor, warm)
        timed = _time_steps(ens, cfg, data, scheme, executor, done, probe_seconds)
        return timed if timed > 0 or per_step is None else per_step * cfg.train.steps
    finally:
        torch.set_num_threads(previous)


def pick_threads(ens, cfg, data, scheme, executor, done: int) -> tuple[int, float | None]:
    """Under `--threads auto` the run will time 1 and all threads and keep the faster
    (gensemble.threads), so the estimate is timed at that count too: beside a busy neighbour two
    threads run several times slower than one, and timing the default count overestimated 2-5×
    (benchmarks/estimates.py --neighbour). Returns the steps trained so far and the chosen count's
    seconds per step (None when nothing was timed)."""
    choices = threads.auto_choices()
    if len(choices) < 2:
        return done, None
    rates = {}
    for n in reversed(choices):  # most first, as the run's tuner does
        torch.set_num_threads(n)
        target = min(cfg.train.steps, done + 2 * CHUNK_STEPS)
        if target <= done:
            break
        ens.cfg = replace(cfg, train=replace(cfg.train, steps=target))
        start = time.perf_counter()
        scheme.train(ens, data, no_hook, executor)
        rates[n] = (time.perf_counter() - start) / (target - done)
        done = target
    if rates:
        best = min(rates)  # fewest threads unless more are clearly (10%) faster
        for n in sorted(rates)[1:]:
            if rates[n] < 0.9 * rates[best]:
                best = n
        torch.set_num_threads(best)
        return done, rates[best]
    return done, None


def _time_steps(ens, cfg, data, scheme, executor, done: int, probe_seconds: float) -> float:
    steps = cfg.train.steps
    # Chunks of doubling size: each call of the scheme pays a fixed cost (stacking the members,
    # starting the loop) that the real run pays once, so the per-step cost is the slope of a line
    # through (chunk steps, chunk seconds), not their ratio (a toy's steps are cheaper than it).
    size, sizes, times = CHUNK_STEPS, [], []
    while done < steps and sum(times) < probe_seconds:
        target = min(steps, done + size)
        ens.cfg = replace(cfg, train=replace(cfg.train, steps=target))
        start = time.perf_counter()
        scheme.train(ens, data, no_hook, executor)
        times.append(time.perf_counter() - start)
        sizes.append(target - done)
        done, size = target, size * 2
    if not sizes:
        return 0.0
    if len(sizes) >= 3:
        slope, overhead = np.polyfit(sizes, times, 1)
        if slope > 0:
            return float(slope * steps + max(overhead, 0.0))
    return sum(times) / sum(sizes) * steps


def no_hook(member, stats) -> None:
    """The throwaway copy writes nothing."""


def describe_seconds(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.0f} days"
