"""A run's trainable state in memory: its members, auxiliary networks and scheme state, and how it is
checkpointed. Built from a RunConfig by `build_ensemble`; run.py moves it to and from a folder."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from gensemble.checkpoint import checkpoint_at, load_checkpoint, save_checkpoint
from gensemble.errors import CheckpointError, ConfigError, shown
from gensemble.state_tree import checked_rng, flatten_state, load_optimizer, state_mismatch, unflatten_state
from gensemble.training.member import Member, MemberConfig

if TYPE_CHECKING:
    from gensemble.ensemble.config import RunConfig


def ema_key(member: str) -> str:
    """The name of a member's EMA generator among the ensemble's auxiliary networks."""
    return f"{member}.G_ema"


@dataclass
class SchemeState:
    """What a scheme keeps between steps, checkpointed with the run. Schemes that keep more subclass
    it (`Scheme.state_type`); a field's name is its key in the checkpoint's scheme_state."""

    mixture_weights: torch.Tensor | None = None  # how `sample` mixes the members (None: uniformly)

    def to_tree(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_tree(cls, tree: Any) -> SchemeState:
        """The state a checkpoint holds; a key this scheme does not keep means another run's checkpoint."""
        if not isinstance(tree, dict):
            raise CheckpointError(
                "checkpoint scheme_state is malformed; it is damaged or from another version"
            )
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(tree) - names)
        if unknown:
            raise CheckpointError(
                f"checkpoint scheme_state has {', '.join(map(repr, unknown))}, which this run's scheme does not "
                "keep; the checkpoint is from another run"
            )
        return cls(**tree)


# What an auxiliary network is for. `discriminators()` returns the "discriminator" ones: networks
# that map images to real-vs-fake logits of shape (N,), which scoring and fusion may use.
AuxRole = Literal["discriminator", "classifier", "ema", "parameter"]


@dataclass(frozen=True)
class AuxNet:
    """One auxiliary network of the ensemble, with its optimiser (None where nothing trains it)."""

    name: str
    net: nn.Module
    optimizer: torch.optim.Optimizer | None


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
    state: SchemeState = field(default_factory=SchemeState)
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

    def aux_net(self, name: str) -> AuxNet:
        """The auxiliary network `name` and its optimiser (schemes read theirs through typed views)."""
        if name not in self.aux:
            raise KeyError(f"this ensemble has no auxiliary network {name!r}; it has {sorted(self.aux)}")
        return AuxNet(name, self.aux[name], self.aux_optimizers.get(name))

    def replace_aux(self, name: str, module: nn.Module, optimizer: torch.optim.Optimizer | None) -> AuxNet:
        """Swap a registered auxiliary network for a fresh one of the same role (AdaGAN's ratio
        discriminator is rebuilt every round; the run keeps the latest)."""
        self.aux_net(name)  # must exist
        self.aux[name] = module.to(self.device)
        if optimizer is not None:
            self.aux_optimizers[name] = optimizer
        return self.aux_net(name)

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
            "scheme_state": flatten_state(self.state.to_tree(), "scheme", tensors),
            "step": self.step,
            "threads": torch.get_num_threads(),  # a resume reuses it: results depend on it (gensemble.threads)
        }
        return save_checkpoint(self.run_dir, self.step, weights, tensors, state)

    def restore(self, weights_only: bool = False, step: int | None = None) -> None:
        """Load the latest checkpoint. `weights_only` (sampling, scoring) skips optimiser and RNG state.

        Every way a checkpoint can disagree with the run (a tensor of the wrong shape or dtype, a
        missing optimiser group, an entry of the wrong type) becomes one CheckpointError here, before
        training starts, so a resume that cannot continue exactly changes nothing on disk.
        """
        assert self.run_dir is not None
        folder = None if step is None else checkpoint_at(self.run_dir, step)
        weights, tensors, state = load_checkpoint(self.run_dir, folder)
        self.saved_threads = state.get("threads")
        for m in self.members:
            m.load_weights(weights)
        for name, module in self.aux.items():
            prefix = f"{name}."
            sub = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
            try:
                module.load_state_dict(sub)
            except RuntimeError:
                raise CheckpointError(
                    f"checkpoint weights for {name!r} do not match the run's config: "
                    f"{state_mismatch(module.state_dict(), sub)}; resume with the config it was trained with"
                ) from None
        try:
            self.state = type(self.state).from_tree(unflatten_state(state.get("scheme_state", {}), tensors))
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
