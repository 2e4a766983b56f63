"""What `gensemble evaluate` leaves in the run folder besides evaluation.json, for the report to show
without sampling again: one sample grid per row (RUN/samples/, listed in index.json), and the
fusions' acceptance rates in TensorBoard beside the training scalars."""

from __future__ import annotations

import io
import re
from collections.abc import Collection
from pathlib import Path

from PIL import Image
from torch import Tensor

from gensemble.artefacts import ArtefactError, dumps, read_artefact
from gensemble.errors import shown
from gensemble.imageio import make_grid
from gensemble.plots import scatter_png
from gensemble.runfolder import Outputs
from gensemble.safepath import UnsafePathError, read_bytes

SAMPLES_DIR = "samples"
GRID_N = 64  # samples per grid: the first 64 of the n each row was scored on


def grid_file(row: str) -> str:
    """A portable file name for a row ("fusion:mh" -> "fusion-mh.png")."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", row) + ".png"


def stage_grids(out: Outputs, grids: dict[str, Tensor], modes: Tensor | None = None) -> None:
    """One PNG per row (an image grid, or a scatter over the true modes for 2-D points), and an
    index, added to a command's outputs (written with the rest, all or nothing)."""
    folder = out.root / SAMPLES_DIR
    index = {}
    for row, x in grids.items():
        name = grid_file(row)
        out.add(folder / name, sample_png(x[:GRID_N], modes, row))
        index[row] = name
    out.add(folder / "index.json", dumps(index))


def stage_exemplars(out: Outputs, name: str, x: Tensor, per: int) -> None:
    """samples/NAME: the reference's exemplars of each class (cluster), one class a line."""
    out.add(out.root / SAMPLES_DIR / name, sample_png(x, nrow=per))


def read_sample_file(run_dir: str | Path, name: str) -> bytes | None:
    """samples/NAME's bytes (a name already checked to be a plain PNG name), never through a link
    out of the run; None when it is gone."""
    try:
        return read_bytes(run_dir, f"{SAMPLES_DIR}/{name}")
    except UnsafePathError as exc:
        raise ArtefactError(str(exc)) from None


def read_grids(run_dir: str | Path, members: Collection[str] | None = None) -> dict[str, bytes]:
    """Row -> PNG bytes of the grids the latest evaluation saved (empty when there are none).
    samples/index.json is checked (artefacts.check_grid_index); a damaged one is an ArtefactError."""
    folder = Path(run_dir) / SAMPLES_DIR
    index = read_artefact("grids", folder / "index.json", members) or {}
    grids = {}
    for row, name in index.items():
        png = read_sample_file(run_dir, name)
        if png is None:
            raise ArtefactError(
                f"{shown(str(folder / name))} is missing; run 'gensemble evaluate {run_dir}' to rewrite the grids"
            )
        grids[row] = png
    return grids


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


def sample_png(x: Tensor, modes: Tensor | None = None, title: str = "", nrow: int | None = None) -> bytes:
    """A PNG of samples: an image grid (`nrow` images a line), or a scatter over the true modes for
    2-D points."""
    if x.dim() == 2:
        return scatter_png(x.numpy(), None if modes is None else modes.numpy(), title=title)
    buf = io.BytesIO()
    Image.fromarray(make_grid(x, nrow)).save(buf, format="PNG")
    return buf.getvalue()
