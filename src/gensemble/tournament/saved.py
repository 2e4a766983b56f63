"""The tournament as an artefact: `gensemble score` writes RUN/tournament.json; fusions, evaluation
and the report read it instead of scoring the run again. A saved table is used only for the
checkpoint (total step), seed and settings it was computed with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gensemble.checkpoint import atomic_write_text

TOURNAMENT_FILE = "tournament.json"


def write_tournament(run_dir: str | Path, table_json: dict[str, Any], step: int, seed: int) -> Path:
    path = Path(run_dir) / TOURNAMENT_FILE
    atomic_write_text(path, json.dumps({**table_json, "step": step, "seed": seed}, indent=1) + "\n")
    return path


def read_tournament(run_dir: str | Path) -> dict[str, Any] | None:
    """The saved tournament, or None when there is none or it cannot be read (it is then recomputed)."""
    path = Path(run_dir) / TOURNAMENT_FILE
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError, UnicodeDecodeError):
        return None
    need = ("generators", "discriminators", "matrix", "auc", "generator_scores", "discriminator_scores")
    if not isinstance(saved, dict) or not all(k in saved for k in need):
        return None
    return saved


def matching_tournament(
    run_dir: str | Path | None,
    step: int,
    seed: int,
    scoring: str,
    calibration: str,
    n_samples: int,
    judges: dict[str, Any],
) -> dict[str, Any] | None:
    """The saved tournament if it was computed for exactly this checkpoint, these settings and judges."""
    if run_dir is None:
        return None
    saved = read_tournament(run_dir)
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
