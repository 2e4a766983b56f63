"""Training state in a checkpoint: nested optimiser and scheme state as a JSON skeleton plus named
tensors (`flatten_state`, `unflatten_state`), and the checks that run before such state is loaded
into live objects (`checked_rng`, `load_optimizer`), so that a damaged checkpoint is one
CheckpointError at restore, not a crash at the first training step. The files themselves (atomic
folders, latest.json, safetensors) are checkpoint.py's.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from gensemble.errors import CheckpointError, shown

TENSOR_TAG = "__tensor__"


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
            raise CheckpointError(
                f"checkpoint is missing tensor {key!r}; it is truncated or from another version"
            )
        return tensors[key]
    if isinstance(skeleton, dict) and "__tuple__" in skeleton:
        return tuple(unflatten_state(v, tensors) for v in skeleton["__tuple__"])
    if isinstance(skeleton, dict) and "__dict__" in skeleton:
        return {k: unflatten_state(v, tensors) for k, v in skeleton["__dict__"]}
    if isinstance(skeleton, list):
        return [unflatten_state(v, tensors) for v in skeleton]
    return skeleton


def checked_rng(saved: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """An RNG state from a checkpoint, refused unless it has the live state's size and dtype."""
    if not isinstance(saved, torch.Tensor) or saved.dtype != current.dtype or saved.shape != current.shape:
        raise CheckpointError(
            "checkpoint RNG state has the wrong size or type; it is damaged or from another version"
        )
    return saved


def load_optimizer(opt: torch.optim.Optimizer, state: Any) -> None:
    """optimizer.load_state_dict, then check every moment against its parameter's shape.

    PyTorch checks group sizes but not tensor shapes: a wrong-shaped Adam moment loads silently
    and fails at the first step, after the resume has already written to the run folder.
    """
    if not isinstance(state, dict) or not isinstance(state.get("param_groups"), list):
        raise CheckpointError(
            "checkpoint optimiser state is malformed; it is damaged or from another version"
        )
    before = opt.state_dict()
    opt.load_state_dict(state)
    problem = _group_problem(before["param_groups"], opt.param_groups)
    if problem:
        opt.load_state_dict(before)
        raise CheckpointError(
            f"checkpoint optimiser {problem}; the checkpoint is damaged or from another config"
        )
    expected = _state_keys(opt)
    for group in opt.param_groups:
        for p in group["params"]:
            entry = opt.state.get(p, {})
            problem = None
            if entry and set(entry) != expected:
                problem = f"has entries {sorted(map(str, entry))}, not {sorted(expected)}"
            for key, value in entry.items():
                if not isinstance(value, torch.Tensor) or (value.dim() > 0 and value.shape != p.shape):
                    shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                    problem = f"moment {key!r} is {shape} for a parameter of shape {tuple(p.shape)}"
            if problem:
                opt.load_state_dict(before)
                raise CheckpointError(
                    f"checkpoint optimiser state {problem}; the checkpoint is damaged or from another config"
                )
            for key, value in entry.items():
                # Moments take their parameter's memory layout (channels-last convolutions), as they
                # have when the optimiser makes them: kernels over mixed layouts round differently,
                # and a resumed run would drift from the uninterrupted one.
                if value.dim() > 0 and value.stride() != p.stride():
                    entry[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def _group_problem(live: list[dict[str, Any]], loaded: list[dict[str, Any]]) -> str | None:
    """What is wrong with loaded hyper-parameters (lr, betas, ...) against the live groups', or None.

    Found by benchmarks/bad_inputs.py: a state.json whose group lost 'betas' loaded, then Adam's
    first step raised KeyError."""

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    for i, (want, got) in enumerate(zip(live, loaded)):
        for key, ref in want.items():
            if key == "params":
                continue
            if key not in got:
                return f"group {i} lacks {key!r}"
            v = got[key]
            if number(ref) and not number(v):
                return f"group {i} {key!r} is {shown(v)}, not a number"
            if isinstance(ref, (tuple, list)) and not (
                isinstance(v, (tuple, list)) and len(v) == len(ref) and all(map(number, v))
            ):
                return f"group {i} {key!r} is {shown(v)}, not {len(ref)} numbers"
            if isinstance(ref, bool) and not isinstance(v, bool):
                return f"group {i} {key!r} is {shown(v)}, not true or false"
    return None


def _state_keys(opt: torch.optim.Optimizer) -> set[str]:
    """The per-parameter state entries `opt`'s class keeps (Adam: step, exp_avg, exp_avg_sq), found by
    stepping a throwaway copy once on a one-element parameter."""
    probe = torch.nn.Parameter(torch.zeros(1))
    defaults = {k: v for k, v in opt.param_groups[0].items() if k != "params"} if opt.param_groups else {}
    twin = type(opt)([probe], **{k: v for k, v in defaults.items() if k in opt.defaults})
    probe.grad = torch.zeros(1)
    twin.step()
    return set(twin.state[probe])


def state_mismatch(expected: dict[str, Any], found: dict[str, Any]) -> str:
    """How a checkpoint's tensors differ from a network's (for a one-line error, in place of
    torch's multi-line "Error(s) in loading state_dict for Sequential")."""
    missing = [k for k in expected if k not in found]
    extra = [k for k in found if k not in expected]
    for k, v in expected.items():
        if k in found and tuple(found[k].shape) != tuple(v.shape):
            shape = lambda t: "×".join(map(str, t.shape)) or "scalar"  # noqa: E731
            return f"{k!s:.60} is {shape(found[k])} in the checkpoint but {shape(v)} in the config"
    if missing:
        return f"the checkpoint lacks {len(missing)} tensor(s), e.g. {missing[0]!s:.60}"
    if extra:
        return f"the checkpoint has {len(extra)} tensor(s) the config does not, e.g. {extra[0]!s:.60}"
    return "the tensors differ"
