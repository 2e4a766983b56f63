"""The tournament as an artefact: `gensemble score` writes RUN/tournament.json; fusions, evaluation
and the report read it instead of scoring the run again. A saved table is used only for the
checkpoint (total step), seed and settings it was computed with."""

from __future__ import annotations

import copy
from collections.abc import Collection
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import save
from torch import nn

from gensemble.artefacts import ArtefactError, dumps, read_artefact
from gensemble.checkpoint import atomic_write_text, read_tensors
from gensemble.errors import GensembleError, shown
from gensemble.runfolder import Outputs
from gensemble.safepath import UnsafePathError

TOURNAMENT_FILE = "tournament.json"
# The fitted judges (fine-tuned copies of the discriminators), so that `evaluate` and every fusion
# reuse the ones `score` fitted instead of fitting them again (13 s of the demo each time).
JUDGES_WEIGHTS, JUDGES_META = "judges.safetensors", "judges.json"


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


def save_judges(run_dir: str | Path, nets: dict[str, nn.Module], record: dict[str, Any]) -> None:
    """RUN/judges.safetensors (every judge's weights, "<name>.<param>") and RUN/judges.json (how they
    were made: `record`), written together or not at all."""
    run_dir = Path(run_dir)
    tensors = {
        f"{name}.{k}": v.detach().cpu().contiguous()
        for name, net in nets.items()
        for k, v in net.state_dict().items()
    }
    out = Outputs(run_dir)
    out.add(run_dir / JUDGES_WEIGHTS, save(tensors))
    out.add(run_dir / JUDGES_META, dumps({**record, "names": list(nets)}))
    out.commit()


def load_judges(
    run_dir: str | Path, discs: dict[str, nn.Module], record: dict[str, Any]
) -> dict[str, nn.Module] | None:
    """The saved judges, rebuilt as copies of `discs` with the saved weights, if they were made as
    `record` says (same judge settings, checkpoint, seed and generators); else None."""
    run_dir = Path(run_dir)
    meta = read_artefact("judges", run_dir / JUDGES_META)
    if meta is None or {k: meta.get(k) for k in record} != record or sorted(meta["names"]) != sorted(discs):
        return None
    try:
        tensors = read_tensors(run_dir, JUDGES_WEIGHTS)
    except UnsafePathError as exc:
        raise ArtefactError(f"{exc}; then run 'gensemble score {run_dir}' to rewrite it") from None
    except FileNotFoundError:
        return None  # judges.json without its weights: the judges are fitted again
    except (OSError, SafetensorError, ValueError) as exc:
        raise _damaged(run_dir, exc) from None
    try:
        out = {}
        for name, d in discs.items():
            net = copy.deepcopy(d)
            prefix = f"{name}."
            net.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
            out[name] = net.eval().requires_grad_(False)
    except (OSError, SafetensorError, RuntimeError, ValueError, GensembleError) as exc:
        raise _damaged(run_dir, exc) from None
    return out


def _damaged(run_dir: Path, exc: BaseException) -> ArtefactError:
    why = shown(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 60)
    return ArtefactError(
        f"{shown(str(run_dir / JUDGES_WEIGHTS))} is damaged ({why}); run 'gensemble score {run_dir}' to rewrite it"
    )
