"""Ensemble schemes: how several generators and discriminators are trained together.

A scheme is registered by name with a typed config of its own parameters. It checks that it
can use the members it is given, adds any auxiliary networks to the ensemble (extra critics,
classifier heads), and trains it through an executor (`executors.py`), never by itself looping
over members, so that a new backend needs no change here.

    independent.py   independent (bagging optional)          gman.py   multi-discriminator (GMAN)
    mgan.py          mixture (MGAN)                          adagan.py boosting (AdaGAN)
    gap.py           swap (GAP)                              batched.py, executors.py: how it runs
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from gensemble.config import from_dict, to_dict
from gensemble.errors import ConfigError
from gensemble.registry import Registry

if TYPE_CHECKING:
    from gensemble.data import Dataset
    from gensemble.hooks import RunHooks
    from gensemble.member import MemberConfig
    from gensemble.run import Ensemble, RunConfig


@dataclass(frozen=True)
class NoParams:
    pass


class Scheme:
    """Base class. Subclasses set `config` (a frozen dataclass) and implement `train`."""

    config: ClassVar[type] = NoParams
    families: ClassVar[tuple[str, ...]] = ("gan", "vae")  # member families the scheme can train
    bagging: ClassVar[bool] = False  # whether members' `bootstrap: true` means anything to the scheme

    def __init__(self, params: Any) -> None:
        self.params = params

    def check(self, cfg: RunConfig) -> None:
        """Raise a one-line ConfigError naming the first member this scheme cannot use."""
        scheme = cfg.scheme["name"]
        for m in cfg.members:
            if m.family not in self.families:
                raise ConfigError(
                    f"scheme {scheme!r} cannot use member {m.name!r}: it is a {m.family.upper()}, "
                    f"and {scheme} trains only {' and '.join(f.upper() for f in self.families)} members"
                )
            if m.bootstrap and not self.bagging:
                raise ConfigError(
                    f"scheme {scheme!r} cannot use member {m.name!r} with bootstrap: true; bagging belongs to "
                    "the 'independent' scheme"
                )

    def build(self, ens: Ensemble) -> None:
        """Add auxiliary networks, optimisers and scheme state. Must be deterministic from the config."""

    def train(self, ens: Ensemble, data: Dataset, hooks: RunHooks) -> None:
        raise NotImplementedError


SCHEMES: Registry[type[Scheme]] = Registry("scheme")


def require_same(cfg: RunConfig, keys: tuple[str, ...]) -> None:
    """Coupled schemes share one critic, so its loss and schedule must be the members' common ones."""
    first = cfg.members[0]
    for m in cfg.members[1:]:
        for key in keys:
            if getattr(m, key) != getattr(first, key):
                raise ConfigError(
                    f"scheme {cfg.scheme['name']!r} cannot use member {m.name!r}: its {key} "
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
    from gensemble.member import build_member

    seed = aux_seed(spec.seed, name) if seed is None else seed
    donor = build_member(replace(spec, seed=seed, name=name, bootstrap=False), ens.shape, ens.device)
    return donor.model.D, donor.optimizers["D"]


def _load_all() -> None:
    # Registration side effects; the registry lists names sorted, so the order here does not matter.
    from gensemble.ensemble import adagan, gap, gman, independent, mgan  # noqa: F401


def get_scheme(name: str) -> type[Scheme]:
    _load_all()
    return SCHEMES.get(name)


def scheme_for(cfg: RunConfig) -> Scheme:
    cls = get_scheme(cfg.scheme["name"])
    params = {k: v for k, v in cfg.scheme.items() if k != "name"}
    return cls(from_dict(cls.config, params, "scheme"))


def resolve_scheme(cfg: RunConfig) -> dict[str, Any]:
    """Validate the scheme section against the members; return it with defaults written out."""
    name = cfg.scheme.get("name")
    if not isinstance(name, str):
        raise ConfigError("config key 'scheme.name' is required; see 'gensemble list schemes'")
    try:
        scheme = scheme_for(cfg)
    except ConfigError:
        raise
    except Exception as exc:  # unknown scheme name
        raise ConfigError(f"config key 'scheme.name': {exc}") from None
    scheme.check(cfg)
    return {"name": name, **to_dict(scheme.params)}


def scheme_names() -> list[tuple[str, str]]:
    _load_all()
    return SCHEMES.describe()
