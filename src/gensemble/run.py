"""Runs: the resolved config, the ensemble it builds, and its folder on disk (train, resume, load)."""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from gensemble import threads
from gensemble.budget import check_memory
from gensemble.checkpoint import (
    atomic_write_text,
    checked_rng,
    clean_stale_temporaries,
    flatten_state,
    load_checkpoint,
    load_optimizer,
    save_checkpoint,
    unflatten_state,
)
from gensemble.config import apply_overrides, dump_yaml, from_dict, load_yaml, to_dict
from gensemble.data import DataConfig, Dataset, load_dataset
from gensemble.errors import CheckpointError, ConfigError, shown
from gensemble.member import Member, MemberConfig, build_member
from gensemble.train import TrainConfig, resolve_device

# Keys of the one-member shorthand: a config with `model:` at the top level is one member.
RESUMABLE_KEYS = ("steps", "device", "log_every", "image_every", "threads")
MAX_MEMBERS = 64
MEMBER_KEYS = ("model", "loss", "gp_weight", "n_critic", "optim", "seed", "bootstrap")


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs. `scheme` is {"name": <registered scheme>, **its parameters}."""

    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    members: tuple[MemberConfig, ...] = ()
    scheme: dict[str, Any] = field(default_factory=lambda: {"name": "independent"})

    def validate(self, path: str = "") -> None:
        if not self.members:
            raise ConfigError(
                "the config has no members; add a 'model:' section or a non-empty 'members:' list"
            )
        names = [m.name for m in self.members]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ConfigError(f"member name {sorted(dupes)[0]!r} is used twice; member names must be unique")
        if len(self.members) > MAX_MEMBERS:
            raise ConfigError(
                f"the config has {len(self.members)} members; at most {MAX_MEMBERS} are supported "
                "(each costs a model's memory and training time)"
            )


def parse_config(raw: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Raw YAML mapping (+ `--set` overrides) -> a fully resolved, validated RunConfig."""
    raw = apply_overrides(raw, overrides)
    single = {k: raw.pop(k) for k in MEMBER_KEYS if k in raw}
    if single:
        if "members" in raw:
            raise ConfigError(
                f"config has both 'members:' and top-level '{next(iter(single))}:'; use one form"
            )
        raw["members"] = [single]
    if "members" in raw and not isinstance(raw["members"], list):
        raise ConfigError("config key 'members' must be a list of member mappings")
    if raw.get("members") == []:
        raise ConfigError("config key 'members' is empty; an ensemble needs at least one member")
    members = [from_dict(MemberConfig, m, f"members[{i}]") for i, m in enumerate(raw.get("members", []))]
    raw["members"] = [to_dict(m.resolved(i)) for i, m in enumerate(members)]
    scheme = raw.get("scheme", {"name": "independent"})
    raw["scheme"] = {"name": scheme} if isinstance(scheme, str) else scheme
    cfg = from_dict(RunConfig, raw)
    from gensemble.ensemble import resolve_scheme

    cfg = replace(cfg, scheme=resolve_scheme(cfg))
    check_distinct_members(cfg)  # after the scheme's own checks, whose messages are more specific
    return cfg


def check_distinct_members(cfg: RunConfig) -> None:
    """Refuse members that would train identical weights (same model, loss, optimiser and seed)."""
    seen: dict[str, str] = {}
    for m in cfg.members:
        key = json.dumps({k: v for k, v in to_dict(m).items() if k != "name"}, sort_keys=True, default=str)
        if key in seen:
            raise ConfigError(
                f"members {seen[key]!r} and {m.name!r} are identical (same model, loss, optimiser and seed) "
                "and would train the same weights; give each member its own seed"
            )
        seen[key] = str(m.name)


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    return parse_config(load_yaml(path), overrides)


# What an auxiliary network is for. `discriminators()` returns the "discriminator" ones: networks
# that map images to real-vs-fake logits of shape (N,), which scoring and fusion may use.
AuxRole = Literal["discriminator", "classifier", "ema", "parameter"]


@dataclass
class Ensemble:
    """A run's trainable state: members, auxiliary networks (extra critics, classifier heads) and
    scheme state (mixture weights, data weights). Everything here is checkpointed.

    Auxiliary networks are named "<owner>.<net>" ("gman.D0", "mgan.C", "m0.G_ema") and carry a role
    (`aux_roles`). `idle` names members' own networks that the scheme never trains (their D under
    the multi-discriminator and mixture schemes); they are saved, but not offered as discriminators.
    """

    cfg: RunConfig
    members: list[Member]
    shape: tuple[int, ...]
    device: torch.device = torch.device("cpu")
    aux: dict[str, nn.Module] = field(default_factory=dict)
    aux_optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None
    aux_roles: dict[str, AuxRole] = field(default_factory=dict)
    idle: set[str] = field(default_factory=set)
    saved_threads: int | None = None  # the thread count its latest checkpoint was trained with

    @property
    def step(self) -> int:
        """Total updates over all members: checkpoints are named by it, so it only grows."""
        return sum(m.step for m in self.members)

    def member(self, name: str) -> Member:
        for m in self.members:
            if m.name == name:
                return m
        raise ConfigError(f"unknown member {name!r}; members: {', '.join(m.name for m in self.members)}")

    def generators(self) -> dict[str, Any]:
        """Every generative model by member name (GANs and VAE decoders alike)."""
        return {m.name: m.model for m in self.members}

    def discriminators(self) -> dict[str, nn.Module]:
        """Every trained discriminator: members' own ("m0.D") and the scheme's ("gman.D0", "mgan.D")."""
        out = {
            f"{m.name}.D": m.model.D
            for m in self.members
            if m.family == "gan" and f"{m.name}.D" not in self.idle
        }
        out.update({k: v for k, v in self.aux.items() if self.aux_roles.get(k) == "discriminator"})
        return out

    def add_aux(
        self, name: str, module: nn.Module, role: AuxRole, optimizer: torch.optim.Optimizer | None = None
    ) -> nn.Module:
        """Register an auxiliary network (checkpointed with the run) under a stable name and role."""
        if name in self.aux or name in self.networks():
            raise ValueError(f"auxiliary network {name!r} is added twice")
        self.aux[name] = module.to(self.device)
        self.aux_roles[name] = role
        if optimizer is not None:
            self.aux_optimizers[name] = optimizer
        return module

    def networks(self) -> dict[str, nn.Module]:
        nets = {f"{m.name}.{k}": v for m in self.members for k, v in m.model.networks().items()}
        return {**nets, **self.aux}

    # --- checkpoints ---------------------------------------------------------------------------
    def save(self) -> Path:
        assert self.run_dir is not None
        weights: dict[str, torch.Tensor] = {}
        for m in self.members:
            weights.update(m.weights())
        for name, module in self.aux.items():
            weights.update({f"{name}.{k}": v for k, v in module.state_dict().items()})
        tensors: dict[str, torch.Tensor] = {"global.rng": torch.get_rng_state()}
        state = {
            "members": {m.name: m.training_state(tensors) for m in self.members},
            "aux_optimizers": {
                k: flatten_state(o.state_dict(), f"aux.opt.{k}", tensors)
                for k, o in self.aux_optimizers.items()
            },
            "scheme_state": flatten_state(self.state, "scheme", tensors),
            "step": self.step,
            "threads": torch.get_num_threads(),  # a resume reuses it: results depend on it (gensemble.threads)
        }
        return save_checkpoint(self.run_dir, self.step, weights, tensors, state)

    def restore(self, weights_only: bool = False) -> None:
        """Load the latest checkpoint. `weights_only` (sampling, scoring) skips optimiser and RNG state.

        Every way a checkpoint can disagree with the run (a tensor of the wrong shape or dtype, a
        missing optimiser group, an entry of the wrong type) becomes one CheckpointError here, before
        training starts, so a resume that cannot continue exactly changes nothing on disk.
        """
        assert self.run_dir is not None
        weights, tensors, state = load_checkpoint(self.run_dir)
        self.saved_threads = state.get("threads")
        for m in self.members:
            m.load_weights(weights)
        for name, module in self.aux.items():
            prefix = f"{name}."
            try:
                module.load_state_dict(
                    {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
                )
            except RuntimeError:
                raise CheckpointError(
                    f"checkpoint weights for {name!r} do not match the run's config"
                ) from None
        try:
            self.state = unflatten_state(state.get("scheme_state", {}), tensors)
            for m in self.members:
                m.load_training_state(state["members"][m.name], tensors, weights_only=weights_only)
            if weights_only:
                return
            for k, o in self.aux_optimizers.items():
                load_optimizer(o, unflatten_state(state["aux_optimizers"][k], tensors))
            torch.set_rng_state(checked_rng(tensors["global.rng"], torch.get_rng_state()))
        except CheckpointError:
            raise
        except KeyError as exc:
            raise CheckpointError(
                f"checkpoint in {self.run_dir} lacks {shown(exc.args[0] if exc.args else exc)}; it is incomplete or from another run"
            ) from None
        except (TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
            raise CheckpointError(
                f"checkpoint in {self.run_dir} does not fit this run ({shown(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 80)}); "
                "restore it from a backup or retrain"
            ) from None


def build_ensemble(cfg: RunConfig, shape: tuple[int, ...], device: torch.device | str = "cpu") -> Ensemble:
    """Members from their own seeds, then whatever auxiliary networks the scheme adds."""
    from gensemble.ensemble import scheme_for

    device = torch.device(device)
    for m in cfg.members:
        check_member_shape(m, shape, cfg.data.name)
    check_memory(cfg.members, shape, cfg.train.batch_size, device)
    members = [build_member(m, shape, device) for m in cfg.members]
    ens = Ensemble(cfg, members, shape, device)
    if cfg.train.ema_decay > 0:
        for m in members:
            ens.add_aux(
                f"{m.name}.G_ema", copy.deepcopy(m.model.generator_net()).requires_grad_(False), "ema"
            )
    scheme_for(cfg).build(ens)
    return ens


def check_member_shape(member: MemberConfig, shape: tuple[int, ...], dataset: str) -> None:
    """A member that states its image size or channels (model.image_size / model.channels) must match the data."""
    model = member.model_config()
    size, channels = getattr(model, "image_size", None), getattr(model, "channels", None)
    if len(shape) != 3:
        if size is not None or channels is not None:
            raise ConfigError(
                f"member {member.name!r} expects {size or '?'} px images but the data ({dataset}) are points "
                f"of shape {shape}; use an image dataset or drop model.image_size / model.channels"
            )
        return
    if size is not None and size != shape[-1]:
        raise ConfigError(
            f"member {member.name!r} expects {size} px images but the data ({dataset}) are {shape[-1]} px; "
            f"set data.image_size: {size} or the member's model.image_size: {shape[-1]}"
        )
    if channels is not None and channels != shape[0]:
        raise ConfigError(
            f"member {member.name!r} expects {channels}-channel images but the data ({dataset}) have "
            f"{shape[0]}; set data.channels: {channels} or the member's model.channels: {shape[0]}"
        )


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
        old, new = load_yaml(cfg_path), yaml_roundtrip(cfg)
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
        atomic_write_text(out / "config.yaml", dump_yaml(cfg))
    except OSError as exc:
        raise CheckpointError(
            f"cannot write the run folder {shown(str(out))} ({exc.strerror}); choose another --out"
        ) from None


def yaml_roundtrip(cfg: RunConfig) -> Any:
    import yaml

    return yaml.safe_load(dump_yaml(cfg))


def load_run(run_dir: str | Path, device: str = "cpu") -> Ensemble:
    """Rebuild a run's ensemble from config.yaml and restore its latest checkpoint."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise CheckpointError(
            f"{str(run_dir)!r} is not a run folder (no config.yaml); train one with 'gensemble train'"
        )
    cfg = load_config(run_dir / "config.yaml")
    data = load_dataset(cfg.data, "test")
    ens = build_ensemble(cfg, data.shape, resolve_device(device))
    ens.run_dir = run_dir
    ens.restore(weights_only=True)
    for m in ens.members:
        m.model.eval()
    return ens


def load_train_data(cfg: RunConfig, device: torch.device) -> Dataset:
    data = load_dataset(cfg.data, "train")
    data.x = data.x.to(device)
    return data


def truncate_metrics(run_dir: Path, steps: dict[str, int]) -> None:
    """On resume, drop metric lines logged after the checkpoint, so the log matches the weights."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
        if rec.get("step", 0) <= steps.get(rec.get("member"), 10**12):
            keep.append(line)
    atomic_write_text(path, "".join(line + "\n" for line in keep))


def train_run(
    config: str | Path,
    out: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    resume: bool = False,
    dry_run: bool = False,
    device: str | None = None,
) -> Path | str:
    """Train (or resume) the run a config describes. With dry_run, return the resolved YAML instead."""
    from gensemble.ensemble import scheme_for
    from gensemble.hooks import RunHooks

    if device is not None:
        overrides = (*overrides, f"train.device={device}")
    cfg = load_config(config, overrides)
    if dry_run:
        return dump_yaml(cfg)
    out = Path(out) if out is not None else Path("runs") / Path(config).stem
    if cfg.train.threads is not None and not threads.explicit():
        threads.set_threads(cfg.train.threads)
    dev = resolve_device(cfg.train.device)
    check_run_dir(out, cfg, resume)
    data = load_train_data(cfg, dev)
    ens = build_ensemble(cfg, data.shape, dev)  # before touching the folder: bad configs change nothing
    ens.run_dir = out
    if resume and ((out / "latest.json").exists() or any((out / "checkpoints").glob("step-*"))):
        # Restore fully (and fail, if it must) before writing anything: a resume that cannot
        # continue exactly leaves every file of the run as it was.
        ens.restore()
    elif resume:
        warnings.warn(f"{out} has no checkpoint yet; training it from step 0", stacklevel=2)
    threads.start_run(ens.saved_threads)
    prepare_run_dir(out, cfg, resume)
    clean_stale_temporaries(out)
    if resume:
        truncate_metrics(out, {m.name: m.step for m in ens.members})
    hooks = RunHooks(ens, out)
    try:
        scheme_for(cfg).train(ens, data, hooks)
        ens.save()
    finally:
        hooks.close()
    return out
