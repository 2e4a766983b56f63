"""What every subcommand module shares: the command registry, common argument helps, JSON output."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str) -> Callable:
    def deco(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn

    return deco


RUN_HELP = "run folder (written by 'gensemble train')"
DEVICE_HELP = "cpu, cuda, cuda:N (a GPU by index) or auto (CUDA when present)"
STEP_HELP = (
    "use the kept checkpoint at this total step instead of the latest; a checkpoint is named by the sum "
    "of every member's generator updates (4 members at 3000 steps each: step-00012000)"
)


def device_arg(value: str) -> str:
    """cpu, auto, cuda or cuda:N; checked here so a typo is a usage error, not a crash."""
    if re.fullmatch(r"cpu|auto|cuda(:\d+)?", value):
        return value
    raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or auto, got {value!r}")


# More subcommands (editing, export, configs) live in gensemble.cli.tools and add themselves here.
EXTRA_PARSERS: list[Callable[[argparse._SubParsersAction], None]] = []


def print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2))


def catalog_snapshot(parser: argparse.ArgumentParser) -> dict[str, list[tuple[str, str]]]:
    """Every listing, and every help page under "help" as (subcommand or "", text): what the light
    entry point (gensemble.cli) prints without loading the package."""
    pages = [("", parser.format_help())]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            pages += [(name, sub.format_help()) for name, sub in action.choices.items()]
    from gensemble.catalog import CATALOG, list_components

    return {kind: list_components(kind) for kind in CATALOG} | {"help": pages}
