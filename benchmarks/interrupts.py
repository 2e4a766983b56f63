"""Signals at random moments and concurrent writers, for benchmarks/bad_inputs.py.

`signal_trials` runs a command once to time it, then until `trials` runs were stopped by SIGTERM
or SIGKILL (alternately) at a uniformly random moment between 5% and 95% of that time (a run
that finished first is counted and retried). After each, the next command
(`gensemble report RUN -o ELSEWHERE`, a reader that finishes what a killed writer committed) runs,
and the run folder is compared with its state before: every file must be byte-identical, or the
command's whole output set replaced (every file of it a new inode) and valid, with no temporaries
left. `writer_trials` starts two writers at once and checks that one is refused while the other
holds the run.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

TEMPORARY = (".tmp", ".txn-")


def gensemble_cmd(*argv: str) -> list[str]:
    return [sys.executable, "-m", "gensemble", "--quiet", *argv]


ENV = {**os.environ, "GENSEMBLE_THREADS": "1"}


def snapshot(run: Path) -> dict[str, tuple[int, str]]:
    """Every file under the run (TensorBoard's append-only logs aside): inode and content hash."""
    out = {}
    for p in sorted(run.rglob("*")):
        if p.is_file() and "tb" not in p.relative_to(run).parts:
            out[str(p.relative_to(run))] = (p.stat().st_ino, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def temporaries(run: Path) -> list[str]:
    return [str(p) for p in run.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".txn-")]


def judge(before: dict, after: dict, output_set: set[str]) -> str:
    """ "unchanged", "replaced" (the whole output set is new), or what went wrong."""
    changed = {f for f in before.keys() | after.keys() if before.get(f) != after.get(f)}
    if not changed:
        return "unchanged"
    stray = changed - output_set
    if stray:
        return f"changed outside its outputs: {sorted(stray)[:3]}"
    stale = {f for f in output_set if f in before and f in after and before[f][0] == after[f][0]}
    if stale:
        return f"half replaced: {sorted(stale)[:3]} kept their old inode"
    return "replaced"


def signal_trials(run: Path, argv: list[str], outputs, trials: int, seed: int, check) -> dict:
    """`outputs(run)`: the files the command writes; `check(run)`: raises if an artefact is invalid."""
    cmd = gensemble_cmd(*argv)
    start = time.perf_counter()
    subprocess.run(cmd, env=ENV, capture_output=True, check=True)
    full = time.perf_counter() - start
    rng = random.Random(seed)
    counts: Counter = Counter()
    problems: list[str] = []
    i = attempts = 0
    while (
        i < trials and attempts < 3 * trials
    ):  # `trials` interrupted runs; one that finished first is retried
        attempts += 1
        sig = signal.SIGTERM if i % 2 == 0 else signal.SIGKILL
        before = snapshot(run)
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.05, 0.95) * full)
        proc.send_signal(sig)
        err = proc.communicate()[1]
        rc = proc.returncode
        expected = {signal.SIGTERM: (143, -signal.SIGTERM), signal.SIGKILL: (-signal.SIGKILL,)}[sig]
        if rc == 0:
            counts["finished before the signal (retried)"] += 1
        elif rc not in expected:
            problems.append(f"{sig.name} at trial {i}: exit {rc}: {err[-300:]}")
        elif rc == 143:
            lines = [
                line for line in err.splitlines() if line.startswith("gensemble:") and "warning" not in line
            ]
            if len(lines) != 1 or "Traceback" in err:
                problems.append(f"SIGTERM at trial {i}: not one line: {err[-300:]}")
        if rc == -signal.SIGTERM:
            counts["SIGTERM before the handler was installed (at import)"] += 1
        next_cmd = gensemble_cmd("report", str(run), "-o", str(run.parent / "after-interrupt.html"))
        done = subprocess.run(next_cmd, env=ENV, capture_output=True, text=True)
        if done.returncode != 0:
            problems.append(f"trial {i}: the next command failed: {done.stderr[-300:]}")
        verdict = judge(before, snapshot(run), outputs(run))
        left = temporaries(run)
        if left:
            problems.append(f"trial {i}: temporaries after the next command: {left[:3]}")
        if verdict not in ("unchanged", "replaced"):
            problems.append(f"{sig.name} at trial {i}: {verdict}")
        else:
            try:
                check(run)
            except Exception as exc:  # an invalid artefact after the signal is a bug
                problems.append(f"trial {i}: {type(exc).__name__}: {exc}")
        if rc != 0:
            counts[f"{sig.name}: {verdict}"] += 1
            i += 1
    return {"trials": trials, "full_run_s": round(full, 2), "outcomes": dict(counts), "problems": problems}


def writer_trials(run: Path, argv: list[str], trials: int) -> dict:
    """Two copies of a writing command started together: never both inside the run at once."""
    counts: Counter = Counter()
    problems = []
    for i in range(trials):
        procs = [
            subprocess.Popen(
                gensemble_cmd(*argv), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        results = [(p.wait(), p.stderr.read()) for p in procs]
        codes = sorted(rc for rc, _ in results)
        if codes == [0, 2] and any("in use by" in err and "PID" in err for rc, err in results if rc == 2):
            counts["one refused while the other wrote"] += 1
        elif codes == [0, 0]:
            counts["one after the other (no overlap)"] += 1
        else:
            problems.append(f"trial {i}: exits {codes}: {[e[-200:] for _, e in results]}")
    return {"trials": trials, "outcomes": dict(counts), "problems": problems}
