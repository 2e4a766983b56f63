"""RunConfig: the ensemble's own config, built only from lower configs (data, training, members) and
the scheme's section. Parsing it from YAML, with overrides and the scheme's checks, is
`gensemble.run.config.parse_config`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gensemble.data import DataConfig
from gensemble.errors import ConfigError
from gensemble.training.loop import TrainConfig
from gensemble.training.member import MemberConfig

MAX_MEMBERS = 64


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
