"""The run folder's guards: one writer at a time, outputs written all or nothing, and recovery.

- `run_lock(RUN, command)`: an advisory fcntl lock on RUN/.lock, held by `train` and by every
  command that writes into the run. A second writer is refused with the holder's PID. The lock is
  re-entrant within a process (the demo trains, scores and evaluates under one lock).
- `Outputs(root)`: a command's files are collected, written into a staging folder
  root/.txn-<pid>-*, and moved into place only after a commit record is on disk. Signals are
  blocked while they move, so SIGTERM or SIGINT never splits a set; after SIGKILL the next command
  finishes a committed set (`recover`) or discards an uncommitted one. Either way every earlier
  file is byte-identical or wholly replaced by a complete new set.
- `recover(root)`: what a killed command left: staging folders and atomic-write temporaries.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import shutil
import signal
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from gensemble.checkpoint import _fsync_dir, atomic_write_text, clean_stale_temporaries
from gensemble.errors import GensembleError, shown

LOCK_FILE = ".lock"
TXN_PREFIX = ".txn-"
COMMIT_FILE = "COMMIT.json"
# Subfolders whose atomic-write temporaries (".NAME.*.tmp") a killed command may leave.
ARTEFACT_DIRS = ("", "samples", "evaluations", "completion")


F = TypeVar("F", bound=Callable[..., Any])


class RunBusyError(GensembleError):
    """Another process is writing into the run folder."""


_held: dict[str, list[int]] = {}  # realpath of a run folder -> [lock fd, depth]


def _key(run_dir: Path) -> str:
    return os.path.realpath(run_dir)


def _lock_holder_pid(path: Path) -> int | None:
    """The PID holding a flock on `path`, from /proc/locks (Linux); None where it cannot be told."""
    try:
        ino = path.stat().st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 12345 08:01:654321 0 EOF"
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(ino):
            try:
                return int(parts[4])
            except ValueError:
                return None
    return None


def _command_of(pid: int | None) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, TypeError):
        return "a gensemble command"
    words = [a.decode(errors="replace") for a in argv if a]
    sub = next((w for w in words[1:] if w in COMMAND_WORDS), None)
    return f"'gensemble {sub}'" if sub else "a gensemble command"


COMMAND_WORDS = ("train", "score", "evaluate", "complete", "report", "demo", "export")


def holds_lock(run_dir: str | Path) -> bool:
    """Whether this process holds RUN's writer lock (and so may write artefacts into it)."""
    return _key(Path(run_dir)) in _held


def describe_holder(run_dir: Path) -> str:
    pid = _lock_holder_pid(run_dir / LOCK_FILE)
    return f"{_command_of(pid)} (PID {pid})" if pid is not None else "another process"


def holder(run_dir: str | Path) -> str | None:
    """Who holds RUN's writer lock ("'gensemble train' (PID 123)"), or None when nobody (or we) do."""
    run_dir = Path(run_dir)
    path = run_dir / LOCK_FILE
    if _key(run_dir) in _held or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return describe_holder(run_dir)
    finally:
        os.close(fd)
    return None


@contextlib.contextmanager
def run_lock(run_dir: str | Path, command: str) -> Iterator[None]:
    """Hold RUN's writer lock for the block (creating RUN if needed); refuse if another process holds it.

    The lock file is never written (a refused command changes no byte of the run). On entry, what
    an earlier killed command left is recovered (see `recover`)."""
    run_dir = Path(run_dir)
    key = _key(run_dir)
    if key in _held:
        _held[key][1] += 1
        try:
            yield
        finally:
            _held[key][1] -= 1
        return
    created = not run_dir.exists()
    if run_dir.exists() and not run_dir.is_dir():
        raise GensembleError(f"output {shown(str(run_dir))} is a file, not a folder; choose another --out")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK_FILE, os.O_RDONLY | os.O_CREAT, 0o666)
    except OSError as exc:
        raise GensembleError(
            f"cannot lock the run folder {shown(str(run_dir))} ({exc.strerror}); check the path and its permissions"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunBusyError(
            f"run folder {shown(str(run_dir))} is in use by {describe_holder(run_dir)}, which is writing "
            f"into it; wait for it to finish or stop it, then run 'gensemble {command}' again"
        ) from None
    _held[key] = [fd, 1]
    try:
        if (run_dir / "config.yaml").is_file():  # only a run's own folder is tidied
            recover(run_dir)
            clean_stale_temporaries(run_dir)  # nobody else is writing: every temporary is an orphan
        yield
    finally:
        del _held[key]
        if created and {p.name for p in run_dir.iterdir()} == {LOCK_FILE}:
            # A command that failed before writing anything leaves no folder behind.
            (run_dir / LOCK_FILE).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                run_dir.rmdir()
        os.close(fd)  # closing releases the flock


def writes_into_run(command: str, unless: str | None = None) -> Callable[[F], F]:
    """Run the decorated function (its first argument a run folder) under that run's writer lock;
    not when its keyword `unless` is passed as False (an evaluation that writes nothing)."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def locked(run_dir: str | Path, *args: Any, **kwargs: Any) -> Any:
            if unless is not None and kwargs.get(unless, True) is False:
                return fn(run_dir, *args, **kwargs)
            with run_lock(run_dir, command):
                return fn(run_dir, *args, **kwargs)

        return locked  # type: ignore[return-value]

    return deco


def recover_if_idle(run_dir: str | Path) -> None:
    """Recover RUN when no writer holds it (readers call this; they never wait)."""
    with contextlib.suppress(RunBusyError, GensembleError):
        if Path(run_dir).is_dir() and (Path(run_dir) / "config.yaml").is_file():
            with run_lock(run_dir, "recover"):
                pass


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftovers are orphans by the time anyone recovers
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(root: str | Path, temporaries: bool = True) -> int:
    """Finish committed output sets, drop uncommitted ones and (in a run folder, `temporaries`)
    stray atomic-write temporaries; return how many. A user's own output folder gets only the
    first two: a ".name.x.tmp" file there might be theirs."""
    root, done = Path(root), 0
    for txn in sorted(root.glob(f"{TXN_PREFIX}*")):
        try:
            pid = int(txn.name[len(TXN_PREFIX) :].split("-")[0])
        except ValueError:
            pid = -1
        if not txn.is_dir() or txn.is_symlink() or _alive(pid):
            continue
        commit = txn / COMMIT_FILE
        if commit.is_file():
            try:
                entries = json.loads(commit.read_text())["files"]
                _move_into_place(txn, root, entries)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                warnings.warn(
                    f"could not finish the outputs an interrupted command left in {txn}: {exc}", stacklevel=2
                )
        shutil.rmtree(txn, ignore_errors=True)
        done += 1
    for sub in ARTEFACT_DIRS if temporaries else ():
        folder = root / sub
        if not folder.is_dir() or folder.is_symlink():
            continue
        for tmp in folder.glob(".*.tmp"):
            if tmp.is_file():
                tmp.unlink(missing_ok=True)
                done += 1
    return done


def _move_into_place(txn: Path, root: Path, entries: list[list[str]]) -> None:
    for staged, rel in entries:
        src = txn / staged
        if not src.exists():
            continue  # moved before the kill
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)
    for folder in {(root / rel).parent for _, rel in entries}:
        _fsync_dir(folder)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends (they are then delivered)."""
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class Outputs:
    """The files one command writes under `root`, put in place all at once by `commit`."""

    def _check_destinations(self) -> None:
        """What would make a rename fail half-way (a folder or a file in a file's or folder's place)
        is found before anything moves. Space is taken while staging, and a rename needs none."""
        for rel in self.files:
            dest = self.root / rel
            if dest.is_dir() and not dest.is_symlink():
                raise GensembleError(
                    f"cannot write {shown(str(dest))}: a folder is in the way; move it or choose another output"
                )
            for parent in dest.parents:
                if parent == self.root:
                    break
                if parent.exists() and not parent.is_dir():
                    raise GensembleError(
                        f"cannot write {shown(str(dest))}: {shown(str(parent))} is a file, not a folder"
                    )

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.files: dict[str, bytes] = {}

    def add(self, path: str | Path, data: bytes | str) -> None:
        rel = os.path.relpath(Path(path), self.root)
        if rel.startswith("..") or os.path.isabs(rel):
            raise ValueError(f"{path} is outside {self.root}")
        self.files[rel] = data.encode() if isinstance(data, str) else data

    def commit(self) -> None:
        """Stage every file, record the commit, move them into place; a failure before the record
        changes nothing."""
        if not self.files:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        recover(self.root, temporaries=(self.root / "config.yaml").is_file())
        self._check_destinations()
        txn = Path(tempfile.mkdtemp(prefix=f"{TXN_PREFIX}{os.getpid()}-", dir=self.root))
        try:
            entries = []
            for i, (rel, data) in enumerate(self.files.items()):
                with open(txn / str(i), "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                entries.append([str(i), rel])
            with _signals_held():
                atomic_write_text(txn / COMMIT_FILE, json.dumps({"files": entries}))
                _move_into_place(txn, self.root, entries)
        except BaseException:
            if not (txn / COMMIT_FILE).is_file():
                shutil.rmtree(txn, ignore_errors=True)
            raise
        shutil.rmtree(txn, ignore_errors=True)
