"""The example configs shipped inside the package, so the quick start works from any folder."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from gensemble.errors import ConfigError, shown


def examples_folder() -> Path:
    return Path(str(resources.files("gensemble") / "configs"))


def example_configs() -> list[tuple[str, str]]:
    """(name, first comment line or a summary) of every shipped example config."""
    out = []
    for path in sorted(examples_folder().glob("*.yaml")):
        first = next(
            (ln.lstrip("# ").strip() for ln in path.read_text().splitlines() if ln.startswith("#")), ""
        )
        out.append((path.stem, first))
    return out


def copy_example(name: str, dest: str | Path | None = None) -> Path:
    """Copy example config NAME (with or without .yaml) to `dest` (a file or folder; default ./NAME.yaml)."""
    stem = name[:-5] if name.endswith(".yaml") else name
    source = examples_folder() / f"{stem}.yaml"
    if not source.is_file():
        known = ", ".join(n for n, _ in example_configs())
        raise ConfigError(f"no example config {shown(name)}; known: {known}")
    target = Path(dest) if dest is not None else Path(f"{stem}.yaml")
    if target.is_dir():
        target = target / source.name
    if target.exists():
        raise ConfigError(f"{shown(str(target))} already exists; choose another destination")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target
