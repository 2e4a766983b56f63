"""Reading the JSON artefacts a run folder holds, checked the way checkpoints are.

`score` writes tournament.json, `evaluate` evaluation.json, evaluations/*.json and
samples/index.json, `complete --heldout` completion/completion.json, the demo timings.json. Each
reader here parses strictly (NaN, Infinity and numbers that overflow to them are refused, as are
files over a size cap), then checks types, shapes, finiteness and that names agree with the run.
A bad file is one `ArtefactError` naming the file and the command that rewrites it, never a crash
later in a report or a fusion. Writers use `dumps`, which turns non-finite numbers into null so
that what we write we can read back.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from gensemble.errors import GensembleError, shown
from gensemble.safepath import UnsafePathError, read_bytes
from gensemble.strictjson import strict_loads  # noqa: F401  (re-exported: readers parse with it)

MAX_BYTES = 32 * 2**20  # no artefact we write comes near this; a larger file is not ours
MAX_NAMES = 1024  # members, rows or images named in one artefact
MAX_NAME_LEN = 200
GRID_NAME = re.compile(r"[A-Za-z0-9_.-]{1,240}\.png")


class ArtefactError(GensembleError):
    """A run artefact (not a checkpoint) is unreadable, damaged or belongs to another run."""


def finite(value: Any) -> Any:
    """`value` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def dumps(obj: Any, indent: int | None = 1) -> str:
    """Strict JSON text of `obj` (non-finite numbers as null), newline-terminated."""
    return json.dumps(finite(obj), indent=indent, allow_nan=False) + "\n"


class Checker:
    """Checks one parsed artefact; every failure names the file, the place and the command to rerun."""

    def __init__(self, path: Path, redo: str) -> None:
        self.path, self.redo = path, redo

    def fail(self, what: str) -> ArtefactError:
        return ArtefactError(f"{shown(str(self.path))} is damaged ({what}); {self.redo} to rewrite it")

    def obj(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"{where} is {shown(value, 30)}, not an object")
        if len(value) > MAX_NAMES * 4:
            raise self.fail(f"{where} has {len(value)} entries")
        return value

    def seq(self, value: Any, where: str, length: int | None = None) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(f"{where} is {shown(value, 30)}, not a list")
        if length is not None and len(value) != length:
            raise self.fail(f"{where} has {len(value)} entries, not {length}")
        if len(value) > MAX_NAMES * 4:
            raise self.fail(f"{where} has {len(value)} entries")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or len(value) > 10_000:
            raise self.fail(f"{where} is {shown(value, 30)}, not a short text")
        return value

    def count(self, value: Any, where: str, least: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not least <= value < 2**62:
            raise self.fail(f"{where} is {shown(value, 30)}, not a count of at least {least}")
        return value

    def number(self, value: Any, where: str, lo: float = -math.inf, hi: float = math.inf) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(f"{where} is {shown(value, 30)}, not a number")
        if not (math.isfinite(value) and lo <= value <= hi):
            raise self.fail(f"{where} is {shown(value, 30)}, outside [{lo}, {hi}]")
        return float(value)

    def names(self, value: Any, where: str, known: Collection[str] | None = None) -> list[str]:
        """A list of distinct short names; with `known`, each must be one of them."""
        items = self.seq(value, where)
        if not items or len(items) > MAX_NAMES:
            raise self.fail(f"{where} names {len(items)} entries, not 1 to {MAX_NAMES}")
        for name in items:
            self.name(name, where, known)
        if len(set(items)) != len(items):
            raise self.fail(f"{where} repeats a name")
        return items

    def name(self, value: Any, where: str, known: Collection[str] | None = None) -> str:
        if not isinstance(value, str) or not value or len(value) > MAX_NAME_LEN:
            raise self.fail(f"{where} holds {shown(value, 30)}, not a name")
        if known is not None and value not in known:
            raise self.fail(f"{where} names {shown(value, 30)}, which is not a member of this run")
        return value

    def matrix(self, value: Any, where: str, rows: int, cols: int, lo: float, hi: float) -> None:
        for i, row in enumerate(self.seq(value, where, rows)):
            for j, v in enumerate(self.seq(row, f"{where} row {i}", cols)):
                self.number(v, f"{where}[{i}][{j}]", lo, hi)


def load_json(path: Path, redo: str, root: Path | None = None) -> Any:
    """Strictly parsed JSON of `path` inside the folder `root` (default: the run it belongs to),
    read without following a link (safepath); None when the file does not exist."""
    root = run_of(path) if root is None else root
    try:
        raw = read_bytes(root, path, limit=MAX_BYTES)
    except UnsafePathError as exc:
        raise ArtefactError(f"{exc} ({redo})") from None
    except OSError as exc:
        raise ArtefactError(f"{shown(str(path))} cannot be read ({exc.strerror}); {redo}") from None
    if raw is None:
        return None
    try:
        return strict_loads(raw)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        why = shown(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 70)
        raise ArtefactError(f"{shown(str(path))} is not valid JSON ({why}); {redo} to rewrite it") from None


# --- the artefacts ---------------------------------------------------------------------------------
TOURNAMENT_KEYS = (
    "generators",
    "discriminators",
    "matrix",
    "auc",
    "generator_scores",
    "discriminator_scores",
)


def check_tournament(saved: Any, path: Path, members: Collection[str] | None = None) -> dict[str, Any]:
    """tournament.json: M generators × N discriminators, every score finite, probabilities in [0, 1]."""
    c = Checker(path, redo("tournament", path))
    saved = c.obj(saved, "the file")
    for key in TOURNAMENT_KEYS:
        if key not in saved:
            raise c.fail(f"'{key}' is missing")
    gens = c.names(saved["generators"], "'generators'", members)
    discs = c.names(saved["discriminators"], "'discriminators'")  # "m0.D", "boost.D", shared critics
    c.matrix(saved["matrix"], "'matrix'", len(gens), len(discs), 0.0, 1.0)
    c.matrix(saved["auc"], "'auc'", len(gens), len(discs), 0.0, 1.0)
    for key, size in (("generator_scores", len(gens)), ("discriminator_scores", len(discs))):
        for i, v in enumerate(c.seq(saved[key], f"'{key}'", size)):
            c.number(v, f"'{key}'[{i}]")
    for key in ("fool_rate",):
        if key in saved:
            c.matrix(saved[key], f"'{key}'", len(gens), len(discs), 0.0, 1.0)
    if "real_accept" in saved:
        for i, v in enumerate(c.seq(saved["real_accept"], "'real_accept'", len(discs))):
            c.number(v, f"'real_accept'[{i}]", 0.0, 1.0)
    for key in ("step", "seed", "n_samples"):
        if key in saved:
            c.count(saved[key], f"'{key}'")
    for key in ("scoring", "calibration"):
        if key in saved:
            c.text(saved[key], f"'{key}'")
    return saved


# Fields of an evaluation row that are text by design, not metrics.
TEXT_FIELDS = ("note", "features", "reference")
FUSION_PREFIX = "fusion:"


REAL_PREFIX = "real:"  # the floor row (real images in a generator's place)


def row_known(row: str, members: Collection[str] | None) -> bool:
    return members is None or row in members or row.startswith((REAL_PREFIX, FUSION_PREFIX))


def check_evaluation(raw: Any, path: Path, members: Collection[str] | None = None) -> dict[str, Any]:
    """evaluation.json (or evaluations/*.json): rows of finite metrics (or null), and how they were measured.

    Old files were a bare {row: {metric: value}}; they are accepted as rows alone."""
    c = Checker(path, redo("evaluation", path))
    raw = c.obj(raw, "the file")
    rows = c.obj(raw.get("rows", raw), "'rows'")
    if not rows or len(rows) > MAX_NAMES:
        raise c.fail(f"'rows' holds {len(rows)} rows")
    for name, row in rows.items():
        c.name(name, "'rows'")
        if not row_known(name, members):
            raise c.fail(f"row {shown(name, 30)} is neither a member of this run, the floor nor a fusion")
        for key, value in c.obj(row, f"row {shown(name, 30)}").items():
            if key in TEXT_FIELDS and isinstance(value, str):
                continue
            if value is not None:
                c.number(value, f"{shown(name, 30)} {shown(key, 30)}")
    if "rows" in raw:
        for key in ("features", "reference"):
            if key in raw:
                c.text(raw[key], f"'{key}'")
        if "n" in raw:
            c.count(raw["n"], "'n'", 1)
        if "seed" in raw:
            c.count(raw["seed"], "'seed'")
        for i, note in enumerate(c.seq(raw.get("notes", []), "'notes'")):
            c.text(note, f"'notes'[{i}]")
        for row, choice in c.obj(raw.get("choices", {}), "'choices'").items():
            choice = c.obj(choice, f"'choices' {shown(row, 30)}")
            if "chosen" in choice:
                c.text(choice["chosen"], f"'choices' {shown(row, 30)} 'chosen'")
            if "why" in choice:
                c.text(choice["why"], f"'choices' {shown(row, 30)} 'why'")
        for row, shares in c.obj(raw.get("member_shares", {}), "'member_shares'").items():
            for member, v in c.obj(shares, f"'member_shares' {shown(row, 30)}").items():
                c.number(v, f"'member_shares' {shown(row, 30)} {shown(member, 30)}", 0.0, 1.0)
        if "per_class" in raw:
            check_per_class(c, raw["per_class"], members)
        for member, why in c.obj(raw.get("failed_members", {}), "'failed_members'").items():
            c.name(member, "'failed_members'")
            c.text(why, f"'failed_members' {shown(member, 30)}")
        check_grading(c, raw, members)
    return raw


def check_grading(c: Checker, raw: dict[str, Any], members: Collection[str] | None) -> None:
    """'steered_by' (row -> spaces), 'self_graded' (rows) and 'also_graded' (space -> rows of metrics
    and its own 'self_graded'): what steered each row, and the same samples on further spaces."""
    for row, spaces in c.obj(raw.get("steered_by", {}), "'steered_by'").items():
        if not row_known(row, members):
            raise c.fail(f"'steered_by' row {shown(row, 30)} is neither a member, the floor nor a fusion")
        for i, space in enumerate(c.seq(spaces, f"'steered_by' {shown(row, 30)}")):
            c.text(space, f"'steered_by' {shown(row, 30)}[{i}]")
    for i, row in enumerate(c.seq(raw.get("self_graded", []), "'self_graded'")):
        c.text(row, f"'self_graded'[{i}]")
    for space, entry in c.obj(raw.get("also_graded", {}), "'also_graded'").items():
        c.text(space, "'also_graded' space")
        entry = c.obj(entry, f"'also_graded' {shown(space, 30)}")
        for row, values in c.obj(entry.get("rows", {}), f"'also_graded' {shown(space, 30)} 'rows'").items():
            if not row_known(row, members):
                raise c.fail(
                    f"'also_graded' row {shown(row, 30)} is neither a member, the floor nor a fusion"
                )
            for key, value in c.obj(values, f"'also_graded' {shown(row, 30)}").items():
                if value is not None:
                    c.number(value, f"'also_graded' {shown(row, 30)} {shown(key, 30)}")
        for i, row in enumerate(
            c.seq(entry.get("self_graded", []), f"'also_graded' {shown(space, 30)} 'self_graded'")
        ):
            c.text(row, f"'also_graded' 'self_graded'[{i}]")


def check_per_class(c: Checker, raw: Any, members: Collection[str] | None) -> None:
    """'per_class': class names, the reference's share of each and every row's, the worst per row."""
    table = c.obj(raw, "'per_class'")
    c.text(table.get("by"), "'per_class' 'by'")
    classes = c.seq(table.get("classes"), "'per_class' 'classes'")
    if not classes or len(classes) > MAX_NAMES:
        raise c.fail(f"'per_class' lists {len(classes)} classes")
    for i, name in enumerate(classes):
        c.text(name, f"'per_class' class {i}")

    def shares(values: Any, what: str) -> None:
        values = c.seq(values, what)
        if len(values) != len(classes):
            raise c.fail(f"{what} has {len(values)} shares for {len(classes)} classes")
        for v in values:
            c.number(v, what, 0.0, 1.0)

    shares(table.get("reference"), "'per_class' 'reference'")
    for row, values in c.obj(table.get("rows"), "'per_class' 'rows'").items():
        if not row_known(row, members):
            raise c.fail(
                f"'per_class' row {shown(row, 30)} is neither a member of this run, the floor nor a fusion"
            )
        shares(values, f"'per_class' {shown(row, 30)}")
    for row, w in c.obj(table.get("worst", {}), "'per_class' 'worst'").items():
        w = c.obj(w, f"'per_class' 'worst' {shown(row, 30)}")
        if w.get("class") not in classes:
            raise c.fail(f"'per_class' 'worst' {shown(row, 30)} names no listed class")
        c.number(w.get("ratio"), f"'per_class' 'worst' {shown(row, 30)} 'ratio'", 0.0)
    name = table.get("exemplars")
    if name is not None and (not isinstance(name, str) or not GRID_NAME.fullmatch(name)):
        raise c.fail(f"'per_class' 'exemplars' names {shown(name, 30)}, not an image file in samples/")


def check_grid_index(index: Any, path: Path, members: Collection[str] | None = None) -> dict[str, str]:
    """samples/index.json: row -> a PNG file name inside samples/, which must exist."""
    c = Checker(path, redo("grids", path))
    index = c.obj(index, "the file")
    if len(index) > MAX_NAMES:
        raise c.fail(f"it lists {len(index)} grids")
    for row, name in index.items():
        c.name(row, "a row")
        if not row_known(row, members):
            raise c.fail(f"row {shown(row, 30)} is neither a member of this run, the floor nor a fusion")
        if not isinstance(name, str) or not GRID_NAME.fullmatch(name):
            raise c.fail(f"row {shown(row, 30)} names {shown(name, 30)}, not a grid file in samples/")
        if not (path.parent / name).is_file() or (path.parent / name).is_symlink():
            raise c.fail(f"grid {shown(name, 40)} of row {shown(row, 30)} is missing")
    return index


def check_completion(summary: Any, path: Path, members: Collection[str] | None = None) -> dict[str, Any]:
    """completion/completion.json: the members, n images, each image's chosen member, mean hole errors."""
    c = Checker(path, redo("completion", path))
    summary = c.obj(summary, "the file")
    # The completion's candidates are the members, plus "ensemble" (the mixture's own proposal).
    names = c.names(summary.get("members"), "'members'", None if members is None else [*members, "ensemble"])
    n = c.count(summary.get("n"), "'n'", 1)
    c.text(summary.get("hole", ""), "'hole'")
    for i, col in enumerate(c.seq(summary.get("columns", []), "'columns'")):
        c.text(col, f"'columns'[{i}]")
    for i, chosen in enumerate(c.seq(summary.get("chosen", []), "'chosen'", n)):
        c.name(chosen, f"'chosen'[{i}]", names)
    mse = c.obj(summary.get("hole_mse"), "'hole_mse'")
    for key, v in mse.items():
        c.name(key, "'hole_mse'")  # members, and "ensemble", "choice", "oracle"
        c.number(v, f"'hole_mse' {shown(key, 30)}", 0.0)
    return summary


def check_timings(timings: Any, path: Path) -> dict[str, float]:
    """timings.json: stage -> seconds (finite, not negative)."""
    c = Checker(path, redo("timings", path))
    timings = c.obj(timings, "the file")
    if len(timings) > MAX_NAMES:
        raise c.fail(f"it times {len(timings)} stages")
    return {c.name(k, "a stage"): c.number(v, f"stage {shown(k, 30)}", 0.0) for k, v in timings.items()}


def check_judges(meta: Any, path: Path) -> dict[str, Any]:
    """judges.json: how the saved judges were made, for which checkpoint and generators."""
    c = Checker(path, redo("judges", path))
    meta = c.obj(meta, "the file")
    c.obj(meta.get("judges"), "'judges'")
    c.count(meta.get("step"), "'step'")
    c.count(meta.get("seed"), "'seed'")
    c.names(meta.get("generators"), "'generators'")
    c.names(meta.get("names"), "'names'")
    return meta


def run_of(path: Path) -> Path:
    """The run folder an artefact belongs to (its folder, or its folder's parent for files in a subfolder)."""
    return path.parent.parent if path.parent.name in ("evaluations", "samples", "completion") else path.parent


REWRITES = {  # artefact kind -> the command that rewrites it
    "tournament": "run 'gensemble score {run}'",
    "evaluation": "run 'gensemble evaluate {run}'",
    "grids": "run 'gensemble evaluate {run}'",
    "completion": "run 'gensemble complete {run} --heldout N'",
    "timings": "run 'gensemble demo --out {run}'",
    "judges": "run 'gensemble score {run}'",
}
CHECKS = {
    "tournament": check_tournament,
    "evaluation": check_evaluation,
    "grids": check_grid_index,
    "completion": check_completion,
    "timings": check_timings,
    "judges": check_judges,
}


def redo(kind: str, path: Path) -> str:
    run = str(run_of(path))
    # A path the user will paste whole: plain when printable, escaped (and bounded) otherwise.
    return REWRITES[kind].format(run=run if run.isprintable() and len(run) < 240 else shown(run))


def read_artefact(kind: str, path: str | Path, *args: Any) -> Any:
    """The checked artefact of `kind` at `path` (see CHECKS), or None when there is no such file."""
    path = Path(path)
    raw = load_json(path, redo(kind, path))
    return None if raw is None else CHECKS[kind](raw, path, *args)
