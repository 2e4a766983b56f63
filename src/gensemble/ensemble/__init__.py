"""Ensemble schemes: how several generators and discriminators are trained together.

A scheme is registered by name with a typed config of its own parameters. It checks that it
can use the members it is given, adds any auxiliary networks to the ensemble (extra critics,
classifier heads), and trains it through an executor (`gensemble.execution`), never by itself looping
over members, so that a new backend needs no change here.

    independent.py   independent (bagging optional)          gman.py   multi-discriminator (GMAN)
    mgan.py          mixture (MGAN)                          adagan.py boosting (AdaGAN)
    gap.py           swap (GAP)                              ../training/batched.py, ../execution: how it runs
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch

from gensemble.config import from_dict

# The scheme modules register themselves on import; the registry lists names sorted.
from gensemble.ensemble import adagan, gap, gman, independent, mgan, partition  # noqa: F401
from gensemble.ensemble.base import (
    SCHEMES,
    MemberTask,
    NoParams,
    Scheme,
    aux_seed,
    build_aux_discriminator,
    require_same,
)
from gensemble.ensemble.config import SchemeSpec
from gensemble.ensemble.state import AuxRole, Ensemble, check_member_shape, ema_key
from gensemble.errors import ConfigError
from gensemble.training.member import build_member
from gensemble.training.memory import check_memory

if TYPE_CHECKING:
    from gensemble.ensemble.config import RunConfig

__all__ = [
    "SCHEMES",
    "AuxRole",
    "Ensemble",
    "MemberTask",
    "NoParams",
    "Scheme",
    "aux_seed",
    "build_aux_discriminator",
    "build_ensemble",
    "check_member_shape",
    "get_scheme",
    "require_same",
    "resolve_scheme",
    "scheme_for",
    "scheme_names",
]


def get_scheme(name: str) -> type[Scheme]:
    return SCHEMES.get(name)


def scheme_for(cfg: RunConfig) -> Scheme:
    """The run's scheme object, from its parsed spec (nothing is parsed here)."""
    return get_scheme(cfg.scheme.name)(cfg.scheme.params)


def resolve_scheme(cfg: RunConfig, raw: Any) -> SchemeSpec:
    """Parse the config's scheme section (the one place it is parsed) and check it against the
    members; the spec carries its defaults written out."""
    name = raw.get("name") if isinstance(raw, dict) else None
    if not isinstance(name, str):
        raise ConfigError("config key 'scheme.name' is required; see 'gensemble list schemes'")
    try:
        cls = get_scheme(name)
    except Exception as exc:  # unknown scheme name
        raise ConfigError(f"config key 'scheme.name': {exc}") from None
    spec = SchemeSpec(
        SCHEMES.canonical(name),
        from_dict(cls.config, {k: v for k, v in raw.items() if k != "name"}, "scheme"),
    )
    cls(spec.params).check(replace(cfg, scheme=spec))
    return spec


def scheme_names() -> list[tuple[str, str]]:
    return SCHEMES.describe()


def build_ensemble(
    cfg: RunConfig, shape: tuple[int, ...], device: torch.device | str = "cpu", for_training: bool = True
) -> Ensemble:
    """Members from their own seeds, then whatever auxiliary networks the scheme adds. With
    `for_training`, a run whose training batch would not fit in memory is refused first; inference
    (sampling, scoring, evaluation) needs no training batch and skips that check."""
    device = torch.device(device)
    for m in cfg.members:
        check_member_shape(m, shape, cfg.data.name)
    if for_training:
        check_memory(cfg.members, shape, cfg.train.batch_size, device)
    members = [build_member(m, shape, device) for m in cfg.members]
    ens = Ensemble(cfg, members, shape, device)
    if cfg.train.keeps_ema:
        for m in members:
            ens.add_aux(ema_key(m.name), copy.deepcopy(m.model.generator_net()).requires_grad_(False), "ema")
    scheme = scheme_for(cfg)
    ens.state = scheme.state_type()
    scheme.build(ens)
    return ens
