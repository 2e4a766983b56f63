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
import hmac
import json
import os
import re
import shutil
import signal
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from gensemble.checkpoint import _fsync_dir, atomic_write_text, clean_stale_temporaries
from gensemble.errors import GensembleError, shown
from gensemble.safepath import inside, name_parts, open_regular, read_bytes
from gensemble.txnsign import signature

LOCK_FILE = ".lock"
TXN_PREFIX = ".txn-"
COMMIT_FILE = "COMMIT.json"
TXN_NAME = re.compile(r"\.txn-(\d{1,10})-[A-Za-z0-9_]{1,32}")
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
        return "another process"
    words = [a.decode(errors="replace") for a in argv if a]
    # the program's own name (bin/gensemble, or python -m gensemble), not any path that holds the word
    if not any(Path(w).name == "gensemble" for w in words[:3]):
        # Another program holds the lock (an editor, a backup tool, a script): say which.
        return f"another program ({shown(Path(words[0]).name if words else '?', 40)})"
    sub = next((w for w in words[1:] if w in COMMAND_WORDS), None)
    return f"'gensemble {sub}'" if sub else "a gensemble process"


COMMAND_WORDS = ("train", "score", "evaluate", "complete", "report", "demo", "export")


# The subfolders gensemble writes into; each must be a real folder inside the run, never a link.
RUN_SUBFOLDERS = ("checkpoints", "evaluations", "completion", "samples", "snapshots", "tb")


# Files opened in place (appended or locked), not replaced by a rename: each must be a regular file.
APPENDED_FILES = (LOCK_FILE, "metrics.jsonl")


def check_subfolders(run_dir: str | Path) -> None:
    """Refuse a run whose subfolders (or lock file) are links or special files: a writer would
    otherwise follow them out of the run."""
    for name in RUN_SUBFOLDERS:
        inside(run_dir, name, kind="dir")
    for name in APPENDED_FILES:
        inside(run_dir, name, kind="file")


def holds_lock(run_dir: str | Path) -> bool:
    """Whether this process holds RUN's writer lock (and so may write artefacts into it)."""
    return _key(Path(run_dir)) in _held


def describe_holder(run_dir: Path) -> str:
    pid = _lock_holder_pid(run_dir / LOCK_FILE)
    return f"{_command_of(pid)} (PID {pid})" if pid is not None else "another process"


def holder(run_dir: str | Path) -> str | None:
    """Who holds RUN's writer lock ("'gensemble train' (PID 123)"), or None when nobody (or we) do."""
    run_dir = Path(run_dir)
    if _key(run_dir) in _held:
        return None
    try:
        fd = open_regular(run_dir, LOCK_FILE, os.O_RDONLY)
    except (OSError, GensembleError):
        return None  # no lock file, or one that is not ours to open (reported by the writers)
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
        check_subfolders(run_dir)
        # O_NOFOLLOW|O_NONBLOCK, regular files only: a FIFO never hangs us, a link is never followed.
        fd = open_regular(run_dir, LOCK_FILE, os.O_RDONLY | os.O_CREAT)
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
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def _checked_entries(txn: Path, root: Path, record: Any) -> list[list[str]]:
    """The (staged, destination) pairs of a commit record, each checked; ValueError otherwise.

    Staged names are the plain numbered files of this .txn folder; destinations are relative
    names inside ROOT with no link on the way; the record is signed with this user's key."""
    if not isinstance(record, dict) or not isinstance(record.get("files"), list):
        raise ValueError("it is not a commit record")
    entries = record["files"]
    sig = record.get("signature")
    if not isinstance(sig, str) or not sig or not hmac.compare_digest(sig, signature(entries)):
        raise ValueError("its signature is not this user's: gensemble did not write it here")
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(e, str) for e in entry)):
            raise ValueError("an entry is not a pair of names")
        staged, dest = entry
        if not staged.isdigit() or len(staged) > 9:
            raise ValueError(f"staged name {shown(staged)} is not one of its own files")
        name_parts(dest)
        inside(root, dest, kind="new")
    return entries


def recover(root: str | Path, temporaries: bool = True) -> int:
    """Finish committed output sets, drop uncommitted ones and (in a run folder, `temporaries`)
    stray atomic-write temporaries; return how many. A user's own output folder gets only the
    first two: a ".name.x.tmp" file there might be theirs.

    Only a record this user's gensemble signed is acted on (see `_checked_entries`); any other is
    left alone with a warning. Nothing outside ROOT is read, written or deleted."""
    root, done = Path(root), 0
    for txn in sorted(root.glob(f"{TXN_PREFIX}*")):
        match = TXN_NAME.fullmatch(txn.name)
        if match is None or txn.is_symlink() or not txn.is_dir() or _alive(int(match[1])):
            continue
        try:
            raw = read_bytes(root, f"{txn.name}/{COMMIT_FILE}", limit=1 << 20)
            if raw is not None:
                _move_into_place(txn, root, _checked_entries(txn, root, json.loads(raw)))
        except (OSError, ValueError, KeyError, TypeError, RecursionError, GensembleError) as exc:
            warnings.warn(
                f"left alone the outputs an interrupted command left in {shown(str(txn), 100)}: "
                f"{' '.join(str(exc).split())[:200] or type(exc).__name__}",
                stacklevel=2,
            )
            continue
        shutil.rmtree(txn, ignore_errors=True)  # rmtree never follows links inside it
        done += 1
    for sub in ARTEFACT_DIRS if temporaries else ():
        if sub and (root / sub).is_symlink():
            continue
        folder = root / sub
        if not folder.is_dir():
            continue
        for tmp in folder.glob(".*.tmp"):
            if tmp.is_file() and not tmp.is_symlink():
                tmp.unlink(missing_ok=True)
                done += 1
            elif tmp.is_symlink():
                tmp.unlink(missing_ok=True)  # removing a link touches nothing it points at
                done += 1
    return done


def _move_into_place(txn: Path, root: Path, entries: list[list[str]]) -> None:
    for staged, rel in entries:
        src = txn / staged
        if src.is_symlink() or not src.is_file():
            continue  # moved before the kill (a link is never moved)
        dest = inside(root, rel, kind="new", create_parents=True)
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
        """What would make a rename fail half-way, or land outside the root (a link or a file on
        the way, a folder in a file's place), is found before anything moves. Space is taken while
        staging, and a rename needs none."""
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
            inside(self.root, rel, kind="new")  # no link on the way out of the root

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.files: dict[str, bytes] = {}

    def add(self, path: str | Path, data: bytes | str) -> None:
        rel = os.path.relpath(Path(path), self.root)
        name_parts(rel)  # ValueError for a name outside the root: a bug, not bad input
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
            record = {"files": entries, "signature": signature(entries)}
            with _signals_held():
                atomic_write_text(txn / COMMIT_FILE, json.dumps(record))
                _move_into_place(txn, self.root, entries)
        except BaseException:
            if not (txn / COMMIT_FILE).is_file():
                shutil.rmtree(txn, ignore_errors=True)
            raise
        shutil.rmtree(txn, ignore_errors=True)
