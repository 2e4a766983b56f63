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


class _StageLine:
    """A stand-in for tqdm that prints a single summary line when the stage ends."""

    def __init__(self, total: int | None, desc: str, initial: int = 0, unit: str = "it") -> None:
        self.total, self.desc, self.n, self.unit = total, desc, initial, unit
        self._start, self._first = time.perf_counter(), initial
        self.postfix: dict[str, Any] = {}

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, values: dict[str, Any] | None = None, refresh: bool = True, **kw: Any) -> None:
        self.postfix = dict(values or {}, **kw)

    def close(self) -> None:
        dt = time.perf_counter() - self._start
        done = self.n - self._first
        rate = f", {done / dt:.1f} {self.unit}/s" if dt > 0 and done else ""
        extra = "".join(f", {k}={v}" for k, v in self.postfix.items())
        total = f"/{self.total}" if self.total else ""
        # One line per stage even with --quiet: it is the record of what ran.
        print(f"[{self.desc}] {self.n}{total} {self.unit} in {dt:.1f}s{rate}{extra}", file=sys.stderr)

    def __enter__(self) -> _StageLine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress(total: int | None, desc: str, initial: int = 0, unit: str = "it") -> Any:
    """A progress bar (tqdm: rate and ETA) or, off a terminal, a one-line-per-stage reporter."""
    if interactive():
        return tqdm(total=total, desc=desc, initial=initial, unit=unit, dynamic_ncols=True, leave=False)
    return _StageLine(total, desc, initial, unit)
