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
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from gensemble import threads
from gensemble.ensemble import build_ensemble, scheme_for
from gensemble.execution import make_executor

WARM_STEPS = 3  # steps each member takes before the clock starts
CHUNK_STEPS = 5  # steps in the first timed chunk; each next one is twice as long
PROBE_SECONDS = 2.0  # the timed part lasts at least this long (or until train.steps is reached)


def estimate_seconds(
    cfg, data, device: torch.device, probe_seconds: float = PROBE_SECONDS, left: float = 1.0
) -> float:
    """Seconds the run's training will take here: building the members, the thread tuner's
    measurements at the count it will not keep, and the steps, of which a fraction `left` is still
    to go (a resume); checkpoint and image writes not included."""
    with contextlib.redirect_stderr(io.StringIO()):  # the copy's progress lines are not the run's
        return _probe(cfg, data, device, probe_seconds, left)


# A process older than this did not start for the command at hand (a notebook, a test session).
FRESH_PROCESS_S = 60.0


def startup_seconds(load_s: float) -> float:
    """What `gensemble train` will pay here before it builds the members: starting Python, importing
    torch, reading the config and the data. A dry run started for the purpose has just paid the
    same, so it is this process's age; in an older process, only the data's loading (`load_s`)."""
    age = process_age()
    return age if 0 < age < FRESH_PROCESS_S else load_s


def process_age() -> float:
    """Seconds since this process started (Linux; 0 elsewhere)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time after boot
        return max(time.clock_gettime(time.CLOCK_BOOTTIME) - started, 0.0)
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


def _probe(cfg, data, device: torch.device, probe_seconds: float, left: float) -> float:
    steps = cfg.train.steps
    warm = min(WARM_STEPS, steps)
    probe_cfg = replace(cfg, train=replace(cfg.train, steps=warm))
    start = time.perf_counter()
    ens = build_ensemble(probe_cfg, data.shape, device)
    build = time.perf_counter() - start  # the run builds its members (and checks memory) too
    scheme, executor = scheme_for(cfg), make_executor("local")
    scheme.train(ens, data, no_hook, executor)
    previous = torch.get_num_threads()
    try:
        done, per_step, tuning = pick_threads(ens, cfg, data, scheme, executor, warm)
        timed = _time_steps(ens, cfg, data, scheme, executor, done, probe_seconds)
        steps_s = timed if timed > 0 or per_step is None else per_step * cfg.train.steps
        return build + tuning + steps_s * left
    finally:
        torch.set_num_threads(previous)


def pick_threads(ens, cfg, data, scheme, executor, done: int) -> tuple[int, float | None, float]:
    """Under `--threads auto` the run times 1 and all threads and keeps the faster
    (gensemble.threads.ThreadTuner), so the estimate is timed at that count too, chosen the way the
    tuner chooses: the counts in alternation, most first, PROBE_ROUNDS times, by median, fewer
    threads unless more are clearly faster. Beside a busy neighbour two threads run several times
    slower than one; one timing of each count let a neighbour's burst decide, and the estimate then
    timed the count the run would not keep (benchmarks/estimates.py --neighbour).

    Returns the steps trained so far, the chosen count's seconds per step (None when nothing was
    timed), and the seconds the run's tuner will spend on steps at the other counts beyond what they
    cost at the chosen one."""
    choices = threads.auto_choices()
    if len(choices) < 2:
        return done, None, 0.0
    times: dict[int, list[float]] = {n: [] for n in choices}
    for n in [c for _ in range(threads.PROBE_ROUNDS) for c in reversed(choices)]:
        target = min(cfg.train.steps, done + CHUNK_STEPS)
        if target <= done:
            break
        torch.set_num_threads(n)
        ens.cfg = replace(cfg, train=replace(cfg.train, steps=target))
        start = time.perf_counter()
        scheme.train(ens, data, no_hook, executor)
        times[n].append((time.perf_counter() - start) / (target - done))
        done = target
    medians = {n: statistics.median(t) for n, t in times.items() if t}
    if not medians:
        return done, None, 0.0
    best = threads.fastest_count(medians)
    torch.set_num_threads(best)
    # Each count the tuner does not keep gets PROBE_ROUNDS × (PROBE_STEPS + a warm-up step) steps.
    per_count = threads.PROBE_ROUNDS * (threads.PROBE_STEPS + 1)
    tuning = sum(max(m - medians[best], 0.0) * per_count for n, m in medians.items() if n != best)
    return done, medians[best], tuning


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
