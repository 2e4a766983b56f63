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
    """The whole run's ETA, beside each member's: the steps each member has left, priced at the
    measured seconds per step of members of its kind (same model and training settings), and members
    of a kind not yet trained at the mean of those measured (a VAE after three DCGANs is priced like
    them until it starts, then at its own rate). `train` starts it; the training loops advance it;
    every progress line shows it."""

    def __init__(self) -> None:
        self.left: dict[str, int] = {}
        self.kinds: dict[str, str] = {}
        self.cost: dict[str, list[float]] = {}  # kind -> [steps, seconds] measured

    def begin(self, remaining: dict[str, int], kinds: dict[str, str] | None = None) -> None:
        """`remaining`: steps left per member; `kinds`: member -> what members cost alike share."""
        self.left = dict(remaining)
        self.kinds = dict(kinds or {m: m for m in remaining})
        self.cost = {}

    def advance(self, members: list[str], seconds: float) -> None:
        """One step of each of `members` took `seconds` (shared equally among them)."""
        if not self.left:
            return
        for m in members:
            if m in self.left:
                self.left[m] = max(0, self.left[m] - 1)
                c = self.cost.setdefault(self.kinds.get(m, m), [0.0, 0.0])
                c[0] += 1
                c[1] += seconds / len(members)

    def end(self) -> None:
        self.left = {}

    def eta(self) -> str | None:
        """ "12m30s" left for the whole run, or None outside a run or before the first step."""
        rates = {k: s / n for k, (n, s) in self.cost.items() if n}
        if not self.left or not rates:
            return None
        mean = sum(rates.values()) / len(rates)
        return format_seconds(sum(n * rates.get(self.kinds.get(m, m), mean) for m, n in self.left.items()))


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
