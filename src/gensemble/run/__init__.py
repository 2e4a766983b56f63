"""Runs on disk: train (or resume) a config into a folder, and load a folder back.

The config lives in `gensemble.run.config`, the in-memory ensemble in `gensemble.ensemble.state`;
both are re-exported here, where most callers look for them.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from gensemble import threads
from gensemble.artefacts import strict_loads
from gensemble.checkpoint import atomic_write_text, clean_stale_temporaries
from gensemble.config import dump_yaml, load_yaml, to_dict
from gensemble.data import (
    HELDOUT_FILE,
    Dataset,
    check_heldout,
    heldout_advice,
    heldout_listing,
    heldout_sizes,
    load_dataset,
)
from gensemble.ensemble import AuxRole, Ensemble, build_ensemble, check_member_shape, scheme_for
from gensemble.ensemble.state import ema_key
from gensemble.errors import CheckpointError, ConfigError, GensembleError, shown
from gensemble.execution import Executor, make_executor
from gensemble.health import curve_problems, read_curves, warning_lines
from gensemble.progress import RUN_CLOCK
from gensemble.run.budget import describe_seconds, estimate_seconds, startup_seconds
from gensemble.run.config import RESUMABLE_KEYS, RunConfig, load_config, parse_config
from gensemble.run.hooks import RunHooks
from gensemble.runfolder import holder, run_lock
from gensemble.safepath import read_text
from gensemble.training.loop import resolve_device

__all__ = [
    "AuxRole",
    "Ensemble",
    "RunConfig",
    "build_ensemble",
    "check_member_shape",
    "load_config",
    "load_run",
    "parse_config",
    "train_run",
]


def check_run_dir(out: Path, cfg: RunConfig, resume: bool) -> None:
    """Refuse to mix runs: a folder that holds a different run is never overwritten. Writes nothing."""
    cfg_path = out / "config.yaml"
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"output {shown(str(out))} is a file, not a folder; choose another --out")
    if cfg_path.exists():
        if not resume:
            raise CheckpointError(
                f"output folder {shown(str(out))} already holds a run; pass --resume to continue it or choose another --out"
            )
        old, new = load_yaml(cfg_path, out), yaml_roundtrip(cfg)
        # Resuming may extend training or move device; anything else makes it a different run.
        for section in (old, new):
            for key in RESUMABLE_KEYS:
                section.get("train", {}).pop(key, None)
        if old != new:
            raise CheckpointError(
                f"output folder {shown(str(out))} holds a different run (its config.yaml differs); choose another --out"
            )
        return
    if resume:
        raise CheckpointError(
            f"nothing to resume in {shown(str(out))} (no config.yaml); drop --resume to start a run"
        )
    if out.exists() and any(p for p in out.iterdir() if not p.name.startswith(".")):
        raise CheckpointError(
            f"output folder {shown(str(out))} is not empty and holds no gensemble run; choose another --out"
        )


def prepare_run_dir(out: Path, cfg: RunConfig, resume: bool) -> None:
    """Check the folder (see `check_run_dir`), then write the resolved config into it."""
    check_run_dir(out, cfg, resume)
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", dump_yaml(cfg), out)
    except OSError as exc:
        raise CheckpointError(
            f"cannot write the run folder {shown(str(out))} ({exc.strerror}); choose another --out"
        ) from None


def yaml_roundtrip(cfg: RunConfig) -> Any:
    import yaml

    return yaml.safe_load(dump_yaml(cfg))


def load_run(
    run_dir: str | Path, device: str = "cpu", step: int | None = None, ema: bool = False
) -> Ensemble:
    """Rebuild a run's ensemble from config.yaml and restore its latest checkpoint (or the one at
    total step `step`). Warns about members that trained less than the config asks: a stopped run
    would otherwise mix barely trained members into every sample, score and evaluation.

    With `ema`, members of a run that kept an EMA of its generators (train.ema_halflife_kimg or train.ema_decay > 0) generate
    with the EMA weights, as StudioGAN can evaluate with G_ema. It is off by default: in the
    benchmark's pilots (docs/RESULTS.md) the EMA was worse than the weights as trained at every
    budget tried, and the discriminators were trained against the latter."""
    return load_run_and_heldout(run_dir, device, step, ema)[0]


def load_run_and_heldout(
    run_dir: str | Path, device: str = "cpu", step: int | None = None, ema: bool = False
) -> tuple[Ensemble, Dataset]:
    """`load_run`, and the held-out ("test") split it reads for the data's shape, so a command that
    needs the split too (evaluate) loads it once."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise CheckpointError(
            f"{str(run_dir)!r} is not a run folder (no config.yaml); train one with 'gensemble train'"
        )
    cfg = load_config(run_dir / "config.yaml", root=run_dir)
    data = load_dataset(cfg.data, "test")
    ens = build_ensemble(cfg, data.shape, resolve_device(device), for_training=False)
    ens.run_dir = run_dir
    busy = holder(run_dir)
    ens.restore(weights_only=True, step=step)
    if busy is not None:
        warnings.warn(
            f"{run_dir} is being written by {busy}; using its checkpoint at total step {ens.step} as it stands now",
            stacklevel=2,
        )
    for m in ens.members:
        averaged = ens.aux.get(ema_key(m.name))
        if ema and averaged is not None:
            m.model.generator_net().load_state_dict(averaged.state_dict())
        m.model.eval()
    short = [f"{m.name} ({m.step}/{cfg.train.steps})" for m in ens.members if m.step < cfg.train.steps]
    if short:
        warnings.warn(
            f"{len(short)} of {len(ens.members)} members trained less than the config's {cfg.train.steps} steps: "
            f"{', '.join(short[:6])}; finish with 'gensemble train CONFIG --out {run_dir} --resume', or sample one member",
            stacklevel=2,
        )
    return ens, data


# Runs of at least this many member steps say how long they will take before they start.
LONG_RUN_STEPS = 20_000


def announce_estimate(cfg: RunConfig, data: Dataset, dev: torch.device, left: float = 1.0) -> None:
    """Say how long the training will take; `left` is the fraction of its steps still to go."""
    seconds = estimate_seconds(cfg, data, dev, left=left)
    print(
        f"[train] estimated time here: about {describe_seconds(seconds)} for the steps left",
        file=sys.stderr,
        flush=True,
    )
    if seconds > 86_400:
        warnings.warn(
            f"this run will take about {describe_seconds(seconds)} here; lower train.steps or stop it with Ctrl-C "
            "(checkpoints let you resume)",
            stacklevel=2,
        )


def dry_run_yaml(cfg: RunConfig) -> str:
    """The resolved config as YAML, with the image size and channels a folder's images turned out
    to have where the config leaves them to the data, then comments: the estimated time here and
    the held-out sizes (best effort: no estimate when the data cannot be read)."""
    try:
        dev = resolve_device(cfg.train.device)
        started = time.perf_counter()
        data = load_train_data(cfg, dev)
        startup = startup_seconds(time.perf_counter() - started)
        seconds = estimate_seconds(cfg, data, dev)
    except GensembleError as exc:
        return dump_yaml(cfg) + f"# no time estimate: {exc}\n"
    total = describe_seconds(startup + seconds)
    total += "" if total.endswith(" s") else f" ({startup + seconds:.0f} s)"
    return (
        detected_yaml(cfg, data.shape) + f"# estimated time here: about {total} for "
        f"{len(cfg.members)} member(s) × {cfg.train.steps} steps: start-up {startup:.0f} s as this dry run "
        f"took, then training timed on a few steps (checkpoint writes not included)\n"
        + heldout_comment(cfg, len(data))
    )


def detected_yaml(cfg: RunConfig, shape: tuple[int, ...]) -> str:
    """The config as YAML with every image_size / channels left to the data (null) set to what the
    data has: the same run, said plainly (a folder's 3×32×32 rather than null)."""
    raw = yaml_roundtrip(cfg)  # a copy: the parsed config is not touched
    if len(shape) != 3:  # 2-D points: no image size to state
        return dump_yaml(raw)
    found = {"image_size": int(shape[-1]), "channels": int(shape[0])}
    for section in [raw["data"], *(m.get("model") or {} for m in raw.get("members", []))]:
        for key, value in found.items():
            if key in section and section[key] is None:
                section[key] = value
    note = f"# image_size and channels as found in the data ({shape[0]}×{shape[1]}×{shape[2]})\n"
    return dump_yaml(raw) + note


def heldout_comment(cfg: RunConfig, n_train: int) -> str:
    """YAML comments: how many held-out images each use gets, and the fix where some get too few."""
    try:
        n_test = len(load_dataset(cfg.data, "test"))
    except GensembleError:
        return ""
    sizes = ", ".join(f"{k} {v}" for k, v in heldout_sizes(n_test).items()).replace("choice", "auto's choice")
    advice = heldout_advice(cfg.data, n_train, n_test)
    return f"# held out: {n_test} images: {sizes}\n" + (f"# {advice}\n" if advice else "")


def as_run_config(
    config: str | Path | dict[str, Any] | RunConfig, overrides: list[str] | tuple[str, ...] = ()
) -> RunConfig:
    """A config from a YAML path, a mapping, or a RunConfig (overrides apply to all three)."""
    if isinstance(config, RunConfig):
        return parse_config(to_dict(config), overrides) if overrides else config
    if isinstance(config, dict):
        return parse_config(config, overrides)
    if isinstance(config, (str, Path)):
        return load_config(config, overrides)
    raise ConfigError(f"a config is a YAML path, a dict or a RunConfig, not {type(config).__name__}")


def load_train_data(cfg: RunConfig, device: torch.device) -> Dataset:
    data = load_dataset(cfg.data, "train")
    data.x = data.x.to(device)
    return data


def truncate_metrics(run_dir: Path, steps: dict[str, int]) -> None:
    """On resume, drop metric lines logged after the checkpoint, so the log matches the weights."""
    path = run_dir / "metrics.jsonl"
    text = read_text(run_dir, "metrics.jsonl")  # a link, FIFO or device there is refused
    if text is None:
        return
    keep = []
    for line in text.splitlines():
        try:
            rec = strict_loads(line)
        except (ValueError, RecursionError):
            continue  # a line cut short by a crash
        step = rec.get("step", 0) if isinstance(rec, dict) else None
        if not isinstance(step, (int, float)) or isinstance(step, bool):
            continue  # not a record this log holds
        if step <= steps.get(rec.get("member"), 10**12):
            keep.append(line)
    atomic_write_text(path, "".join(line + "\n" for line in keep), run_dir)


def train_run(
    config: str | Path | dict[str, Any] | RunConfig,
    out: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    resume: bool = False,
    dry_run: bool = False,
    device: str | None = None,
    backend: str | Executor = "local",
    address: str | None = None,
) -> Path | str:
    """Train (or resume) the run a config describes: a YAML path, a dict as the YAML would hold, or a
    RunConfig. With dry_run, return the resolved YAML instead. `backend` is the executor the scheme
    trains through, or its registered name (local, batched, loop, isolated, ray); `address` is a Ray
    cluster's."""
    if device is not None:
        overrides = (*overrides, f"train.device={device}")
    cfg = as_run_config(config, overrides)
    if dry_run:
        return dry_run_yaml(cfg)
    executor = backend if isinstance(backend, Executor) else make_executor(backend, address)
    if out is None and not isinstance(config, (str, Path)):
        raise ConfigError("train_run needs out= (a run folder) when the config is not a file")
    out = Path(out) if out is not None else Path("runs") / Path(config).stem
    if cfg.train.threads is not None and not threads.explicit():
        threads.set_threads(cfg.train.threads)
    dev = executor.start(cfg)  # under DDP: every rank joins the process group here
    completed = False
    try:
        # One writer per run folder: this process, or under DDP rank 0 (the others never write).
        with run_lock(out, "train") if executor.is_main else contextlib.nullcontext():
            out = train_locked(cfg, out, resume, executor, dev)
        completed = True
        return out
    finally:
        executor.finish(completed)


def train_locked(cfg: RunConfig, out: Path, resume: bool, executor: Executor, dev: torch.device) -> Path:
    """`train_run` once the folder's lock is held: check, restore, and only then write and train.
    Under DDP every rank runs this; only the executor's main process writes."""
    check_run_dir(out, cfg, resume)
    data = load_train_data(cfg, dev)
    check_heldout(cfg.data, len(data))  # a run nobody could sample or evaluate is refused now
    advice = heldout_advice(cfg.data, len(data), len(load_dataset(cfg.data, "test")))
    if advice and executor.is_main and not resume:
        warnings.warn(advice, stacklevel=3)
    ens = build_ensemble(cfg, data.shape, dev)  # before touching the folder: bad configs change nothing
    ens.run_dir = out
    if resume and ((out / "latest.json").exists() or any((out / "checkpoints").glob("step-*"))):
        # Restore fully (and fail, if it must) before writing anything: a resume that cannot
        # continue exactly leaves every file of the run as it was. (Under DDP every rank reads the
        # same checkpoint: the run folder must be shared.)
        ens.restore()
    elif resume and executor.is_main:
        warnings.warn(f"{out} has no checkpoint yet; training it from step 0", stacklevel=2)
    left = sum(max(0, cfg.train.steps - m.step) for m in ens.members)  # a resume has fewer to go
    if executor.is_main and left >= LONG_RUN_STEPS:
        announce_estimate(cfg, data, dev, left / (cfg.train.steps * len(cfg.members)))
    threads.start_run(ens.saved_threads)
    executor.on_main(lambda: write_run_files(out, cfg, resume, ens))
    hooks = RunHooks(ens, out) if executor.is_main else None
    RUN_CLOCK.begin(
        {m.name: max(0, cfg.train.steps - m.step) for m in ens.members},
        {
            m.name: json.dumps({**to_dict(m.cfg), "name": None, "seed": None}, sort_keys=True, default=str)
            for m in ens.members
        },
    )
    try:
        scheme_for(cfg).train(ens, data, hooks, executor)
        if executor.is_main:
            ens.save()
    finally:
        RUN_CLOCK.end()
        if hooks is not None:
            hooks.close()
    if executor.is_main:  # a member that failed says so now, not after someone looks at its samples
        for line in warning_lines(curve_problems(read_curves(out))):
            warnings.warn(line, stacklevel=2)
    return out


def write_run_files(out: Path, cfg: RunConfig, resume: bool, ens: Ensemble) -> None:
    """What a run writes before its first step: config.yaml and the folders, the held-out listing,
    no stale temporaries, and (on a resume) metrics cut back to the checkpoint."""
    prepare_run_dir(out, cfg, resume)
    listing = heldout_listing(cfg.data)
    if listing is not None:
        atomic_write_text(out / HELDOUT_FILE, listing, out)
    clean_stale_temporaries(out)
    if resume:
        truncate_metrics(out, {m.name: m.step for m in ens.members})
