"""The tournament as an artefact: `gensemble score` writes RUN/tournament.json; fusions, evaluation
and the report read it instead of scoring the run again. A saved table is used only for the
checkpoint (total step), seed and settings it was computed with."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from gensemble.artefacts import dumps, read_artefact
from gensemble.checkpoint import atomic_write_text

TOURNAMENT_FILE = "tournament.json"


def write_tournament(run_dir: str | Path, table_json: dict[str, Any], step: int, seed: int) -> Path:
    path = Path(run_dir) / TOURNAMENT_FILE
    atomic_write_text(path, dumps({**table_json, "step": step, "seed": seed}))
    return path


def read_tournament(run_dir: str | Path, members: Collection[str] | None = None) -> dict[str, Any] | None:
    """The saved tournament (checked: shapes, finite scores, names of `members`), or None when there
    is none. A damaged file is an ArtefactError naming `gensemble score RUN`, which rewrites it."""
    return read_artefact("tournament", Path(run_dir) / TOURNAMENT_FILE, members)


def matching_tournament(
    run_dir: str | Path | None,
    step: int,
    seed: int,
    scoring: str,
    calibration: str,
    n_samples: int,
    judges: dict[str, Any],
    members: Collection[str] | None = None,
) -> dict[str, Any] | None:
    """The saved tournament if it was computed for exactly this checkpoint, these settings and judges."""
    if run_dir is None:
        return None
    saved = read_tournament(run_dir, members)
    if saved is None:
        return None
    wanted = {
        "step": step,
        "seed": seed,
        "scoring": scoring,
        "calibration": calibration,
        "n_samples": n_samples,
        "judges": judges,
    }
    return saved if all(saved.get(k) == v for k, v in wanted.items()) else None
