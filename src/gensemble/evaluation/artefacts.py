"""What `gensemble evaluate` leaves in the run folder besides evaluation.json, for the report to show
without sampling again: one sample grid per row (RUN/samples/, listed in index.json), and the
fusions' acceptance rates in TensorBoard beside the training scalars."""

from __future__ import annotations

import json
import re
from pathlib import Path

from torch import Tensor

from gensemble.checkpoint import atomic_write_bytes, atomic_write_text
from gensemble.sampling import sample_png

SAMPLES_DIR = "samples"
GRID_N = 64  # samples per grid: the first 64 of the n each row was scored on


def grid_file(row: str) -> str:
    """A portable file name for a row ("fusion:mh" -> "fusion-mh.png")."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", row) + ".png"


def save_grids(run_dir: str | Path, grids: dict[str, Tensor], modes: Tensor | None = None) -> Path:
    """One PNG per row (an image grid, or a scatter over the true modes for 2-D points), and an index."""
    folder = Path(run_dir) / SAMPLES_DIR
    index = {}
    for row, x in grids.items():
        name = grid_file(row)
        atomic_write_bytes(folder / name, sample_png(x[:GRID_N], modes, row))
        index[row] = name
    atomic_write_text(folder / "index.json", json.dumps(index, indent=1) + "\n")
    return folder


def read_grids(run_dir: str | Path) -> dict[str, bytes]:
    """Row -> PNG bytes of the grids the latest evaluation saved (empty when there are none)."""
    folder = Path(run_dir) / SAMPLES_DIR
    try:
        index = json.loads((folder / "index.json").read_text())
    except (OSError, ValueError, RecursionError, UnicodeDecodeError):
        return {}
    out = {}
    for row, name in index.items() if isinstance(index, dict) else ():
        path = folder / str(name)
        if isinstance(name, str) and path.parent == folder and path.is_file():
            out[str(row)] = path.read_bytes()
    return out


def log_acceptance_rates(run_dir: str | Path, rates: dict[str, float], step: int) -> None:
    """Acceptance rates of the rejecting fusions go to TensorBoard beside the training scalars."""
    if not rates:
        return
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return
    with SummaryWriter(str(Path(run_dir) / "tb")) as tb:
        for name, rate in rates.items():
            tb.add_scalar(f"fusion/{name}/acceptance_rate", rate, step)
