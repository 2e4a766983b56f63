"""Atomic, code-free checkpoints: a folder of safetensors files plus JSON.

Layout of a run folder::

    RUN/config.yaml                      the resolved config
    RUN/checkpoints/step-00000200/       one checkpoint (written as .tmp-*, then renamed)
        weights.safetensors              network weights and buffers, "<member>.<net>.<param>"
        state.safetensors                optimiser moments and RNG states
        state.json                       steps, optimiser hyper-parameters, scheme state
    RUN/latest.json                      {"checkpoint": "checkpoints/step-00000200"}, replaced atomically

A crash at any point leaves `latest.json` naming a complete checkpoint. Loading uses
safetensors and json only, so it never executes code from the file.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from gensemble.errors import CheckpointError, shown
from gensemble.safepath import UnsafePathError, inside, read_bytes

TMP_PREFIX = ".tmp-"
MAX_STATE_BYTES = 64 * 2**20


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes, root: str | Path | None = None) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`. With `root`
    (the run or output folder `path` lies in), the folders on the way are made and checked through
    safepath: no link or file on the way, so the write never lands outside ROOT."""
    path = Path(path)
    if root is not None:
        path = inside(root, path, kind="new", create_parents=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; give them the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str, root: str | Path | None = None) -> None:
    atomic_write_bytes(path, text.encode(), root)


CHECKPOINT_NAME = re.compile(r"step-\d{8}")
CHECKPOINT_FILES = ("weights.safetensors", "state.safetensors", "state.json")


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    weights: dict[str, torch.Tensor],
    state_tensors: dict[str, torch.Tensor],
    state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write a complete checkpoint folder atomically, point latest.json at it, keep the newest `keep`."""
    run_dir = Path(run_dir)
    root = run_dir / "checkpoints"
    name = f"step-{step:08d}"
    tmp: Path | None = None
    inside(run_dir, "checkpoints", kind="dir")  # a linked checkpoints/ would take the weights elsewhere
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{name}-", dir=root))
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(tmp / "weights.safetensors")
        )
        save_file(state_tensors, str(tmp / "state.safetensors"))
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        final = root / name
        if final.is_symlink() or final.is_file():  # never follow a link out of the run
            final.unlink()
        elif final.exists():  # re-saving the same step (e.g. the end of a resumed run)
            shutil.rmtree(final)
        os.replace(tmp, final)
        tmp = None
        _fsync_dir(root)
        atomic_write_text(
            run_dir / "latest.json", json.dumps({"checkpoint": f"checkpoints/{name}", "step": step}), run_dir
        )
    except (OSError, SafetensorError) as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(
            f"could not write checkpoint {name} ({_why(exc)}); {_intact(run_dir)}"
        ) from None
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in sorted(p for p in root.glob("step-*") if p.name != name and CHECKPOINT_NAME.fullmatch(p.name))[
        : max(len(list(root.glob("step-*"))) - keep, 0)
    ]:
        if old.is_symlink():
            old.unlink(missing_ok=True)
        else:
            shutil.rmtree(old, ignore_errors=True)
    return final


MAX_TENSOR_BYTES = 16 * 2**30  # a safetensors file larger than this is not a model of ours


def read_tensors(root: str | Path, path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of the safetensors file ROOT/path, read through safepath (a link, FIFO or device
    there is refused, never opened by safetensors) and parsed from bytes: never unpickles."""
    from safetensors.torch import load

    raw = read_bytes(root, path, limit=MAX_TENSOR_BYTES)
    if raw is None:
        raise FileNotFoundError(str(path))
    return dict(sorted(load(raw).items()))  # sorted by name, as safetensors' load_file returns them


def _why(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in text:
        return "the disk is full"
    return shown(text, 80)


def _intact(run_dir: Path) -> str:
    """Which checkpoint a failed save left in place, for the error message."""
    try:
        return f"the previous checkpoint {latest_checkpoint(run_dir, fallback=False).name} is intact; free space and resume with --resume"
    except CheckpointError:
        return "no earlier checkpoint exists; free space and train again"


def clean_stale_temporaries(run_dir: str | Path) -> int:
    """Remove checkpoint folders and files a killed process left half-written; return how many.

    Only the one process training a run writes into it, so at the start of training every
    temporary is an orphan of a crash (a SIGKILL mid-save cannot run the cleanup in save_checkpoint).
    """
    run_dir, removed = Path(run_dir), 0
    linked = (run_dir / "checkpoints").is_symlink()  # never tidy a folder outside the run
    for tmp in [
        *([] if linked else (run_dir / "checkpoints").glob(f"{TMP_PREFIX}*")),
        *run_dir.glob(".*.tmp"),
    ]:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        removed += 1
    return removed


def is_complete(folder: Path) -> bool:
    """A real folder (not a symlink out of the run) holding every checkpoint file, each a regular file."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    return all((folder / f).is_file() and not (folder / f).is_symlink() for f in CHECKPOINT_FILES)


def latest_checkpoint(run_dir: str | Path, fallback: bool = True) -> Path:
    """The folder latest.json names, always inside RUN/checkpoints/.

    When latest.json is missing or damaged (a crash between renames, a careless edit) and
    `fallback`, the newest complete checkpoint folder is used instead, with a warning: the run's
    own checkpoints are never discarded because a pointer file was lost.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(
            f"run folder {shown(str(run_dir))} does not exist; train one with 'gensemble train CONFIG --out RUN'"
        )
    inside(run_dir, "checkpoints", kind="dir")  # a linked checkpoints/ is refused, never read
    pointer, problem = run_dir / "latest.json", None
    try:
        raw = read_bytes(run_dir, "latest.json", limit=1 << 16)
        if raw is None:
            raise FileNotFoundError
        rel = json.loads(raw)["checkpoint"]
        if not isinstance(rel, str):
            raise TypeError
        parts = Path(rel).parts
        # Only "checkpoints/step-NNNNNNNN": never an absolute path or one leading out of the run.
        if len(parts) != 2 or parts[0] != "checkpoints" or not CHECKPOINT_NAME.fullmatch(parts[1]):
            problem = f"{pointer} names {shown(rel)}, which is not a checkpoint of this run"
        elif not is_complete(run_dir / rel):
            problem = f"checkpoint {shown(rel)} named by latest.json is missing or incomplete"
        else:
            return run_dir / rel
    except FileNotFoundError:
        problem = f"no checkpoint in {shown(str(run_dir))} (latest.json is missing)"
    except (OSError, ValueError, KeyError, TypeError, RecursionError, UnicodeDecodeError, UnsafePathError):
        problem = f"{shown(str(pointer), 120)} is corrupt or not a regular file"
    found = sorted(
        p
        for p in (run_dir / "checkpoints").glob("step-*")
        if CHECKPOINT_NAME.fullmatch(p.name) and is_complete(p)
    )
    if fallback and found:
        warnings.warn(f"{problem}; using the newest complete checkpoint, {found[-1].name}", stacklevel=2)
        return found[-1]
    raise CheckpointError(f"{problem}; train first, or restore the run folder from a backup")


def checkpoint_at(run_dir: str | Path, step: int) -> Path:
    """The kept checkpoint at total step `step` (checkpoints are named by the sum of members' steps)."""
    folder = Path(run_dir) / "checkpoints" / f"step-{step:08d}"
    if step < 0 or not is_complete(folder):
        kept = sorted(
            int(p.name[5:])
            for p in (Path(run_dir) / "checkpoints").glob("step-*")
            if CHECKPOINT_NAME.fullmatch(p.name) and is_complete(p)
        )
        raise CheckpointError(
            f"run {shown(str(run_dir))} has no checkpoint at total step {step} (the sum of every member's "
            f"steps); kept: {', '.join(map(str, kept)) or 'none'}"
        )
    return folder


def load_checkpoint(
    run_dir: str | Path, folder: Path | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """(weights, state tensors, state JSON) of the latest checkpoint; never unpickles.

    Everything read is checked before it is returned: tensors must be finite, and state.json must
    have the structure a checkpoint writes, so a tampered file is an error here, not a crash later.
    """
    folder = latest_checkpoint(run_dir) if folder is None else folder
    out: list[Any] = []
    for fname in ("weights.safetensors", "state.safetensors"):
        path = folder / fname
        if not path.is_file():
            raise CheckpointError(
                f"checkpoint file {shown(str(path))} is missing; the checkpoint is incomplete"
            )
        try:
            out.append(read_tensors(folder, fname))
        except (SafetensorError, OSError, ValueError, RuntimeError, UnsafePathError) as exc:
            raise CheckpointError(
                f"checkpoint file {shown(str(path))} is truncated or corrupt ({_why(exc)}); restore it or retrain"
            ) from None
    bad = next((k for k, v in out[0].items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise CheckpointError(
            f"checkpoint {folder.name} holds non-finite weights ({bad} has NaN or inf): training diverged; "
            "retrain with a lower learning rate"
        )
    path = folder / "state.json"
    try:
        raw = read_bytes(folder, "state.json", limit=MAX_STATE_BYTES)
        if raw is None:
            raise FileNotFoundError
        state = json.loads(raw)
    except (OSError, ValueError, RecursionError, UnicodeDecodeError, UnsafePathError):
        raise CheckpointError(f"checkpoint file {shown(str(path))} is missing or corrupt; retrain") from None
    check_state(state, path)
    return out[0], out[1], state


def check_state(state: Any, path: Path) -> None:
    """state.json must be {"step": int ≥ 0, "members": {name: {"step": int ≥ 0, ...}}, ...}."""

    def fail(what: str) -> CheckpointError:
        return CheckpointError(
            f"checkpoint file {shown(str(path))} is damaged ({what}); restore it or retrain"
        )

    def count(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**62

    if not isinstance(state, dict):
        raise fail("it is not a JSON object")
    if not count(state.get("step")):
        raise fail(f"'step' is {shown(state.get('step'))}, not a count")
    members = state.get("members")
    if not isinstance(members, dict):
        raise fail("'members' is not an object")
    for name, entry in members.items():
        if not isinstance(entry, dict) or not count(entry.get("step")):
            raise fail(f"member {shown(name)} has no valid 'step'")
        if not isinstance(entry.get("optimizers", {}), dict):
            raise fail(f"member {shown(name)} has no valid 'optimizers'")
    if "threads" in state and not (count(state["threads"]) and 1 <= state["threads"] <= 1024):
        raise fail(f"'threads' is {shown(state['threads'])}, not a thread count")
    if sum(e["step"] for e in members.values()) != state["step"]:
        raise fail("'step' is not the sum of its members' steps")
