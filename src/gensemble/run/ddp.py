"""`gensemble train --ddp`: a run trained with every member data-parallel over the processes torchrun
started (see gensemble.execution.ddp for how one member trains on many ranks)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch.distributed as dist

from gensemble.checkpoint import clean_stale_temporaries
from gensemble.ensemble import build_ensemble, scheme_for
from gensemble.execution import make_executor
from gensemble.execution.ddp import DistEnv, check_ddp_config, on_main_rank, rank_device, start_process_group
from gensemble.progress import set_quiet
from gensemble.run import check_run_dir, load_config, load_train_data, prepare_run_dir, truncate_metrics
from gensemble.run.hooks import RunHooks
from gensemble.runfolder import run_lock


def train_ddp(
    config: str | Path,
    out: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    resume: bool = False,
    device: str | None = None,
) -> Path:
    """Train (or resume) a run with every member data-parallel over the processes torchrun started."""
    env = DistEnv.from_environ()
    if device is not None:
        overrides = (*overrides, f"train.device={device}")
    cfg = load_config(config, overrides)
    check_ddp_config(cfg, env.world)
    out = Path(out) if out is not None else Path("runs") / Path(config).stem
    dev = rank_device(cfg.train.device, env)
    if not env.is_main:
        set_quiet(True)
    start_process_group(env, dev)
    guard = contextlib.ExitStack()
    try:
        if env.is_main:  # rank 0 alone writes the run, so it alone holds the folder's writer lock
            guard.enter_context(run_lock(out, "train"))
        check_run_dir(out, cfg, resume)
        data = load_train_data(cfg, dev)
        ens = build_ensemble(cfg, data.shape, dev)
        ens.run_dir = out
        if resume and ((out / "latest.json").exists() or any((out / "checkpoints").glob("step-*"))):
            # Every rank reads the same checkpoint (the run folder must be shared), and fully, before
            # anything is written: a resume that cannot continue exactly leaves the run as it was.
            ens.restore()
        on_main_rank(env, lambda: (prepare_run_dir(out, cfg, resume), clean_stale_temporaries(out)))
        if resume and env.is_main:
            truncate_metrics(out, {m.name: m.step for m in ens.members})
        hooks = RunHooks(ens, out) if env.is_main else None
        try:
            scheme_for(cfg).train(ens, data, hooks, make_executor("ddp"))
            if env.is_main:
                ens.save()
        finally:
            if hooks is not None:
                hooks.close()
        dist.barrier()
    finally:
        guard.close()
        dist.destroy_process_group()
    return out
