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

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gensemble.errors import CheckpointError

TENSOR_TAG = "__tensor__"


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


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
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


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def flatten_state(tree: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Move every tensor of a nested dict/list into `tensors` under a dotted key; return the JSON skeleton."""
    if isinstance(tree, torch.Tensor):
        tensors[prefix] = tree.detach().cpu().contiguous()
        return {TENSOR_TAG: prefix}
    if isinstance(tree, dict):
        return {"__dict__": [[k, flatten_state(v, f"{prefix}.{k}", tensors)] for k, v in tree.items()]}
    if isinstance(tree, tuple):  # optimisers keep betas as tuples; JSON would make them lists
        return {"__tuple__": [flatten_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(tree)]}
    if isinstance(tree, list):
        return [flatten_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(tree)]
    return tree


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `flatten_state`. Dict keys keep their type (optimiser states use int keys)."""
    if isinstance(skeleton, dict) and TENSOR_TAG in skeleton:
        key = skeleton[TENSOR_TAG]
        if key not in tensors:
            raise CheckpointError(f"checkpoint is missing tensor {key!r}; it is truncated or from another version")
        return tensors[key]
    if isinstance(skeleton, dict) and "__tuple__" in skeleton:
        return tuple(unflatten_state(v, tensors) for v in skeleton["__tuple__"])
    if isinstance(skeleton, dict) and "__dict__" in skeleton:
        return {k: unflatten_state(v, tensors) for k, v in skeleton["__dict__"]}
    if isinstance(skeleton, list):
        return [unflatten_state(v, tensors) for v in skeleton]
    return skeleton


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    weights: dict[str, torch.Tensor],
    state_tensors: dict[str, torch.Tensor],
    state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write a complete checkpoint folder atomically, point latest.json at it, prune old ones."""
    run_dir = Path(run_dir)
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root))
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(tmp / "weights.safetensors"))
        save_file(state_tensors, str(tmp / "state.safetensors"))
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        final = root / name
        if final.exists():  # re-saving the same step (e.g. the end of a resumed run)
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(run_dir / "latest.json", json.dumps({"checkpoint": f"checkpoints/{name}", "step": step}))
    for old in sorted(p for p in root.glob("step-*") if p.name != name)[:-keep or None]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: str | Path) -> Path:
    """The folder that latest.json names, or a one-line CheckpointError saying what is wrong."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {str(run_dir)!r} does not exist; train one with 'gensemble train CONFIG --out RUN'")
    pointer = run_dir / "latest.json"
    if not pointer.is_file():
        raise CheckpointError(f"no checkpoint in {str(run_dir)!r} (latest.json is missing); train first or pick another run")
    try:
        rel = json.loads(pointer.read_text())["checkpoint"]
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"{pointer} is corrupt; delete it to fall back on checkpoints/, or retrain") from None
    folder = run_dir / rel
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint {str(folder)!r} named by latest.json is missing; the run folder is incomplete")
    return folder


def load_checkpoint(run_dir: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """(weights, state tensors, state JSON) of the latest checkpoint; never unpickles."""
    folder = latest_checkpoint(run_dir)
    out: list[Any] = []
    for fname in ("weights.safetensors", "state.safetensors"):
        path = folder / fname
        if not path.is_file():
            raise CheckpointError(f"checkpoint file {str(path)!r} is missing; the checkpoint is incomplete")
        try:
            out.append(load_file(str(path)))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"checkpoint file {str(path)!r} is truncated or corrupt ({str(exc).splitlines()[0][:80]}); "
                "restore it or retrain"
            ) from None
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        raise CheckpointError(f"checkpoint file {str(folder / 'state.json')!r} is missing or corrupt; retrain") from None
    return out[0], out[1], state
