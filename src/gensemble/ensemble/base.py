"""What every scheme shares: the Scheme base class and its registry, the unit of training work an
executor runs (MemberTask), and helpers for auxiliary networks. Scheme modules import from here,
never from the package, so registering them creates no cycle."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import nn

from gensemble.ensemble.state import SchemeState
from gensemble.errors import ConfigError
from gensemble.registry import Registry
from gensemble.training.batched import batching_pays
from gensemble.training.loop import resolve_device, run_rounds
from gensemble.training.member import build_member

if TYPE_CHECKING:
    from torch import Tensor

    from gensemble.data import Dataset
    from gensemble.ensemble.config import RunConfig
    from gensemble.ensemble.state import Ensemble
    from gensemble.training.loop import StepHook
    from gensemble.training.member import Member, MemberConfig


@dataclass
class MemberTask:
    """Bring one member to `target_step` (generator updates), on optional per-example data weights."""

    member: Member  # the live member; remote executors ship its exported state instead
    target_step: int
    data_weights: Tensor | None = None

    @property
    def done(self) -> bool:
        return self.member.step >= self.target_step


Stats = dict[str, float]


Stacking = Literal["auto", "always", "never"]


class Executor:
    """Runs member tasks and lockstep rounds. Subclasses override `run`; `run_lockstep` runs here."""

    name = "executor"
    stacking: Stacking = "auto"  # when identical networks train as one stacked model
    is_main = True  # whether this process writes the run (under DDP only rank 0 does)

    # --- the run's lifecycle, as `gensemble.run.train_run` drives it ------------------------------
    def start(self, cfg: Any) -> torch.device:
        """Set up what this backend needs for a run of `cfg`; return the device to train on."""
        return resolve_device(cfg.train.device)

    def on_main(self, fn: Callable[[], Any]) -> Any:
        """Run fn where the run is written (here: in this process)."""
        return fn()

    def finish(self, completed: bool) -> None:
        """Tear down what `start` set up; `completed` says whether training ended normally."""

    def stacks(self, nets: Sequence[nn.Module]) -> bool:
        """Whether these (identical) networks should train stacked under this executor."""

        if self.stacking == "auto":
            return batching_pays(nets)
        return self.stacking == "always"

    def run(self, ens: Ensemble, tasks: Sequence[MemberTask], data: Dataset, hooks: StepHook) -> None:
        raise NotImplementedError

    def run_lockstep(
        self,
        ens: Ensemble,
        members: Sequence[Member],
        target: int,
        round_fn: Callable[[], list[Stats]],
        hooks: StepHook | None,
        write_back: Callable[[], None] | None = None,
        desc: str | None = None,
    ) -> None:
        """Call `round_fn` (one step of every member) until the members reach `target`: the training
        loop every member runs (`training.loop.run_rounds`)."""
        run_rounds(members, target, round_fn, hooks, ens.cfg.train.log_every, write_back, desc)


@dataclass(frozen=True)
class NoParams:
    pass


class Scheme:
    """Base class. Subclasses set `config` (a frozen dataclass) and implement `train`."""

    config: ClassVar[type] = NoParams
    families: ClassVar[tuple[str, ...]] = ("gan", "vae")  # member families the scheme can train
    bagging: ClassVar[bool] = False  # whether members' `bootstrap: true` means anything to the scheme
    # Whether members train through executor tasks (each member alone between scheme events), which
    # data parallelism can split; the others couple their members at every step.
    runs_as_tasks: ClassVar[bool] = False
    state_type: ClassVar[type[SchemeState]] = SchemeState  # what `build` puts in ens.state
    # Whether members train against their own D (a member's `augment` and `r1` act on it); GMAN and
    # MGAN train shared critics of their own instead.
    own_critics: ClassVar[bool] = True

    def __init__(self, params: Any) -> None:
        self.params = params

    def check(self, cfg: RunConfig) -> None:
        """Raise a one-line ConfigError naming the first member this scheme cannot use."""
        scheme = cfg.scheme.name
        for m in cfg.members:
            if m.family not in self.families:
                raise ConfigError(
                    f"scheme {scheme!r} cannot use member {m.name!r}: it is a {m.family.upper()}, "
                    f"and {scheme} trains only {' and '.join(f.upper() for f in self.families)} members"
                )
            if (m.augment or m.r1) and not self.own_critics:
                raise ConfigError(
                    f"scheme {scheme!r} trains critics of its own, not member {m.name!r}'s D, so its augment and "
                    "r1 would do nothing; drop them, or use the independent scheme"
                )
            if m.bootstrap and not self.bagging:
                raise ConfigError(
                    f"scheme {scheme!r} cannot use member {m.name!r} with bootstrap: true; bagging belongs to "
                    "the 'independent' scheme"
                )

    def build(self, ens: Ensemble) -> None:
        """Add auxiliary networks, optimisers and scheme state. Must be deterministic from the config."""

    def train(self, ens: Ensemble, data: Dataset, hooks: StepHook, executor: Executor) -> None:
        """Train through `executor` (passed in by the run, so a scheme never picks a backend)."""
        raise NotImplementedError


SCHEMES: Registry[type[Scheme]] = Registry("scheme")


def require_same(cfg: RunConfig, keys: tuple[str, ...]) -> None:
    """Coupled schemes share one critic, so its loss and schedule must be the members' common ones."""
    first = cfg.members[0]
    for m in cfg.members[1:]:
        for key in keys:
            if getattr(m, key) != getattr(first, key):
                raise ConfigError(
                    f"scheme {cfg.scheme.name!r} cannot use member {m.name!r}: its {key} "
                    f"({getattr(m, key)!r}) differs from member {first.name!r}'s ({getattr(first, key)!r}); "
                    "the members share their discriminators, so they must agree"
                )


def aux_seed(spec_seed: int, name: str) -> int:
    """A stable seed per auxiliary network name, so that adding one never shifts another's init."""
    return (spec_seed * 1_000_003 + zlib.crc32(name.encode())) % 2**62


def build_aux_discriminator(
    ens: Ensemble, spec: MemberConfig, name: str, seed: int | None = None
) -> tuple[nn.Module, torch.optim.Optimizer]:
    """A fresh discriminator (and its optimiser) of the GAN family `spec` describes, seeded by its name."""
    seed = aux_seed(spec.seed, name) if seed is None else seed
    donor = build_member(replace(spec, seed=seed, name=name, bootstrap=False), ens.shape, ens.device)
    return donor.model.D, donor.optimizers["D"]
