"""The command line's entry point. `gensemble list KIND` and `gensemble [CMD] --help` answer from the
catalog that the last full listing or help cached for this exact source tree (catalog_cache.py),
without loading torch; every other subcommand, and a listing or help with no fresh cache, loads the
commands (gensemble.cli.commands)."""

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
    page = help_page(words)
    if page is not None:
        print(page, end="")
        return 0
    from gensemble.cli.commands import main as run_command

    return run_command(argv)


def help_page(words: list[str]) -> str | None:
    """The cached help page `gensemble [CMD] --help` asks for, or None (not a plain help request,
    or no fresh cache: the full parser prints it and caches every page)."""
    if not words or words[-1] not in ("-h", "--help") or len(words) > 2:
        return None
    pages = dict(cached_listing("help") or [])
    return pages.get(words[0] if len(words) == 2 else "")


def __getattr__(name: str) -> Any:
    # The commands' helpers (build_parser, one_line, ...) stay reachable as gensemble.cli.NAME.
    import importlib

    if name in ("base", "commands", "tools"):
        return importlib.import_module(f"gensemble.cli.{name}")
    return getattr(importlib.import_module("gensemble.cli.commands"), name)
