"""RunConfig: the ensemble's own config, built only from lower configs (data, training, members) and
the scheme's section. Parsing it from YAML, with overrides and the scheme's checks, is
`gensemble.run.config.parse_config`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gensemble.config import to_dict
from gensemble.data import DataConfig
from gensemble.errors import ConfigError
from gensemble.training.loop import TrainConfig
from gensemble.training.member import MemberConfig

MAX_MEMBERS = 64


@dataclass(frozen=True)
class SchemeSpec:
    """The run's scheme: its registered name and its parameters, parsed once (by parse_config) into
    the scheme's own frozen config. Written to config.yaml as {"name": NAME, **parameters}."""

    name: str = "independent"
    params: Any = None  # the scheme's config dataclass; None only before parse_config resolves it

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, **(to_dict(self.params) if self.params is not None else {})}


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; `scheme` is the parsed scheme (`SchemeSpec`)."""

    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    members: tuple[MemberConfig, ...] = ()
    scheme: SchemeSpec = field(default_factory=SchemeSpec)

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
