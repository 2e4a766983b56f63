"""The command line's entry point. `gensemble list KIND` answers from the catalog that the last full
listing cached for this exact source tree (catalog_cache.py), without loading torch; every other
subcommand, and a listing with no fresh cache, loads the commands (gensemble.cli.commands)."""

from __future__ import annotations

import sys
from typing import Any

from gensemble.catalog_cache import cached_listing


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    words = [a for a in argv if a != "--quiet"]
    if len(words) == 2 and words[0] == "list":
        rows = cached_listing(words[1])
        if rows is not None:
            for name, doc in rows:
                print(f"{name:<22} {doc}")
            return 0
    from gensemble.cli.commands import main as run_command

    return run_command(argv)


def __getattr__(name: str) -> Any:
    # The commands' helpers (build_parser, one_line, ...) stay reachable as gensemble.cli.NAME.
    import importlib

    if name in ("base", "commands", "tools"):
        return importlib.import_module(f"gensemble.cli.{name}")
    return getattr(importlib.import_module("gensemble.cli.commands"), name)
