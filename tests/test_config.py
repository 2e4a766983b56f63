"""gensemble.config: strict parsing of frozen dataclasses, overrides and YAML."""

from dataclasses import dataclass

import pytest

from gensemble.config import apply_overrides, from_dict, to_dict
from gensemble.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    lr: float = 0.1
    betas: tuple[float, float] = (0.5, 0.9)


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    inner: Inner = Inner()


def test_from_dict_round_trips_and_refuses_unknown_keys():
    cfg = from_dict(Outer, {"name": "y", "inner": {"lr": "1e-3"}})
    assert cfg == Outer("y", Inner(1e-3)) and from_dict(Outer, to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="unknown config key 'inner.lrr'"):
        from_dict(Outer, {"inner": {"lrr": 1}})


def test_overrides_set_nested_values_from_strings():
    raw = apply_overrides({"inner": {"lr": 0.1}}, ["inner.lr=0.5", "name=z"])
    assert from_dict(Outer, raw) == Outer("z", Inner(0.5))
