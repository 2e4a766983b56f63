"""Progress bars with rate and ETA on a terminal; one line per stage otherwise (logs, CI, --quiet)."""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm import tqdm

_QUIET = False


def set_quiet(quiet: bool) -> None:
    global _QUIET
    _QUIET = quiet


def interactive() -> bool:
    return not _QUIET and sys.stderr.isatty()


# Off a terminal (nohup, CI, a log file) a line at least this often, so a long stage is visibly alive.
LOG_EVERY_S = 30.0


class _StageLine:
    """A stand-in for tqdm off a terminal: a progress line every LOG_EVERY_S seconds (not with
    --quiet), and a summary line when the stage ends."""

    def __init__(self, total: int | None, desc: str, initial: int = 0, unit: str = "it") -> None:
        self.total, self.desc, self.n, self.unit = total, desc, initial, unit
        self._start, self._first = time.perf_counter(), initial
        self._last = self._start
        self.postfix: dict[str, Any] = {}

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if not _QUIET and now - self._last >= LOG_EVERY_S:
            self._last = now
            print(self.line(now, final=False), file=sys.stderr, flush=True)

    def set_postfix(self, values: dict[str, Any] | None = None, refresh: bool = True, **kw: Any) -> None:
        self.postfix = dict(values or {}, **kw)

    def line(self, now: float, final: bool) -> str:
        """ "[desc] 120/1000 step in 30.0s, 4.0 step/s, ETA 3m40s, loss_d=0.7" (no ETA on the last line)."""
        dt = now - self._start
        done = self.n - self._first
        rate = done / dt if dt > 0 and done else 0.0
        parts = [f"[{self.desc}] {self.n}{f'/{self.total}' if self.total else ''} {self.unit} in {dt:.1f}s"]
        if rate:
            parts.append(f"{rate:.1f} {self.unit}/s" if rate >= 0.1 else f"{1 / rate:.0f} s/{self.unit}")
            if not final and self.total:
                parts.append(f"ETA {format_seconds((self.total - self.n) / rate)}")
            run_eta = RUN_CLOCK.eta()
            if not final and run_eta is not None:
                parts.append(f"whole run ETA {run_eta}")
        parts += [f"{k}={v}" for k, v in self.postfix.items()]
        return ", ".join(parts)

    def close(self) -> None:
        # One line per stage even with --quiet: it is the record of what ran.
        print(self.line(time.perf_counter(), final=True), file=sys.stderr, flush=True)

    def __enter__(self) -> _StageLine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class RunClock:
    """The whole run's ETA, beside each member's: member-steps made against those the run has left,
    at the rate so far. `train` starts it; the training loops advance it; every progress line shows it."""

    def __init__(self) -> None:
        self.total, self.done, self._start = 0, 0, 0.0

    def begin(self, remaining: int) -> None:
        self.total, self.done, self._start = remaining, 0, time.perf_counter()

    def advance(self, steps: int = 1) -> None:
        if self.total:
            self.done += steps

    def end(self) -> None:
        self.total = 0

    def eta(self) -> str | None:
        """ "12m30s" left for the whole run, or None outside a run or before the first step."""
        elapsed = time.perf_counter() - self._start
        if not self.total or not self.done or elapsed <= 0:
            return None
        return format_seconds((self.total - self.done) * elapsed / self.done)


RUN_CLOCK = RunClock()


def format_seconds(s: float) -> str:
    s = max(0, int(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class _Bar(tqdm):
    """tqdm that leaves a one-line summary behind when it closes (the bar itself is cleared)."""

    def close(self) -> None:
        if getattr(self, "_summarised", False) or self.disable:
            return super().close()
        self._summarised = True
        elapsed = self.format_dict.get("elapsed", 0.0) or 0.0
        total = f"/{self.total}" if self.total else ""
        done = self.n - (self.format_dict.get("initial", 0) or 0)
        rate = f", {done / elapsed:.1f} {self.unit}/s" if elapsed > 0 and done else ""
        post = f", {self.postfix}" if self.postfix else ""
        super().close()
        print(
            f"[{self.desc}] {self.n}{total} {self.unit} in {elapsed:.1f}s{rate}{post}",
            file=sys.stderr,
            flush=True,
        )


def progress(total: int | None, desc: str, initial: int = 0, unit: str = "it") -> Any:
    """A progress bar (tqdm: rate and ETA) or, off a terminal, a one-line-per-stage reporter."""
    if interactive():
        return _Bar(total=total, desc=desc, initial=initial, unit=unit, dynamic_ncols=True, leave=False)
    return _StageLine(total, desc, initial, unit)
