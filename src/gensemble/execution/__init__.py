"""Executors: how member work runs (base.py: local, loop, isolated; ray.py; ddp.py). A run builds one
with `make_executor` and passes it to its scheme, which never picks a backend itself."""

from __future__ import annotations

from gensemble.errors import ConfigError

# ray.py and ddp.py register the "ray" and "ddp" executors on import (ray itself loads only when used).
from gensemble.execution import ddp, ray  # noqa: F401
from gensemble.execution.base import (
    EXECUTORS,
    Executor,
    IsolatedExecutor,
    LocalExecutor,
    MemberState,
    RemoteExecutor,
    TaskResult,
    TaskSpec,
    apply_result,
    export_state,
    import_state,
    run_task_spec,
    task_spec,
)

__all__ = [
    "EXECUTORS",
    "Executor",
    "IsolatedExecutor",
    "LocalExecutor",
    "MemberState",
    "RemoteExecutor",
    "TaskResult",
    "TaskSpec",
    "apply_result",
    "export_state",
    "import_state",
    "make_executor",
    "run_task_spec",
    "task_spec",
]


def make_executor(name: str = "local", address: str | None = None) -> Executor:
    """The executor registered as `name` (the CLI's --backend); runs pass it to their scheme."""
    try:
        factory = EXECUTORS.get(name)
    except Exception as exc:
        raise ConfigError(f"--backend: {exc}") from None
    return factory(address=address)
