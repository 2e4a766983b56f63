"""The resolved config of a run: its data, training settings, members and scheme, parsed strictly."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from gensemble.config import apply_overrides, from_dict, load_yaml, to_dict
from gensemble.ensemble import resolve_scheme
from gensemble.ensemble.config import MAX_MEMBERS, RunConfig  # noqa: F401  (re-exported)
from gensemble.errors import ConfigError
from gensemble.training.member import MemberConfig

RESUMABLE_KEYS = ("steps", "device", "log_every", "image_every", "threads")
# Keys of the one-member shorthand: a config with `model:` at the top level is one member. Read off
# MemberConfig, so a new member setting is accepted there too (its name stays positional: m0).
MEMBER_KEYS = tuple(f.name for f in fields(MemberConfig) if f.name != "name")


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
    scheme = raw.pop("scheme", {"name": "independent"})
    cfg = from_dict(RunConfig, raw)
    cfg = replace(cfg, scheme=resolve_scheme(cfg, {"name": scheme} if isinstance(scheme, str) else scheme))
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


def load_config(
    path: str | Path, overrides: list[str] | tuple[str, ...] = (), root: str | Path | None = None
) -> RunConfig:
    """The RunConfig of a YAML file; with `root`, a run folder's config.yaml read through safepath."""
    return parse_config(load_yaml(path, root), overrides)
