"""Ensemble schemes: how several generators and discriminators are trained together.

A scheme is registered by name with a typed config of its own parameters. It checks that it
can use the members it is given, adds any auxiliary networks to the ensemble (extra critics,
classifier heads), and trains it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from gensemble.config import from_dict, to_dict
from gensemble.errors import ConfigError
from gensemble.registry import Registry

if TYPE_CHECKING:
    from gensemble.data import Dataset
    from gensemble.hooks import RunHooks
    from gensemble.run import Ensemble, RunConfig


@dataclass(frozen=True)
class NoParams:
    pass


class Scheme:
    """Base class. Subclasses set `config` (a frozen dataclass) and implement `train`."""

    config: ClassVar[type] = NoParams
    families: ClassVar[tuple[str, ...]] = ("gan", "vae")  # member families the scheme can train

    def __init__(self, params: Any) -> None:
        self.params = params

    def check(self, cfg: RunConfig) -> None:
        """Raise a one-line ConfigError naming the first member this scheme cannot use."""
        name = type(self).__name__
        for m in cfg.members:
            if m.family not in self.families:
                raise ConfigError(
                    f"scheme {cfg.scheme['name']!r} cannot use member {m.name!r}: it is a {m.family.upper()}, "
                    f"and {name} trains only {' and '.join(f.upper() for f in self.families)} members"
                )

    def build(self, ens: Ensemble) -> None:
        """Add auxiliary networks, optimisers and scheme state. Must be deterministic from the config."""

    def train(self, ens: Ensemble, data: Dataset, hooks: RunHooks) -> None:
        raise NotImplementedError


SCHEMES: Registry[type[Scheme]] = Registry("scheme")


def _load_all() -> None:
    from gensemble.ensemble import independent  # noqa: F401  (registration side effects)


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
