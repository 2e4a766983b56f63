"""Fuzzing the JSON artefacts of a run folder: tournament.json, evaluation.json, evaluations/*.json,
samples/index.json, completion/completion.json and timings.json, damaged in every way hypothesis
finds (wrong types, ragged or huge lists, NaN, Infinity, 1e400, cut-off text), then read by the
report and by the fusions' reader. The only outcomes allowed are a rendered report or one
GensembleError. benchmarks/bad_inputs.py runs the same strategy with many more examples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gensemble.errors import GensembleError
from gensemble.evaluation.evaluate import evaluate_run
from gensemble.report import gather_report, render_report
from gensemble.run import train_run
from gensemble.tournament import matching_tournament, score_run

from helpers import PAIR  # noqa: E402

# Property-based fuzzing, many cases each: CI runs the module in its second pass (pytest -m integration).
pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::UserWarning")]

ARTEFACTS = {
    "tournament": "tournament.json",
    "evaluation": "evaluation.json",
    "evaluations": None,  # evaluations/<key>.json, named at build time
    "grids": "samples/index.json",
    "completion": "completion/completion.json",
    "timings": "timings.json",
}


def build_artefact_run(root: Path) -> Path:
    """A toy run with every artefact: scored, evaluated, a completion record and stage timings.
    Checkpoints and the loss log are dropped: the readers under test never load them."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "c.yaml").write_text(PAIR)
    run = Path(train_run(root / "c.yaml", root / "full"))
    score_run(run, n_samples=200)
    evaluate_run(run, n=200, fusions=("uniform", "weighted"))
    (run / "completion").mkdir()
    Image.new("L", (8, 8)).save(run / "completion" / "panel.png")
    (run / "completion" / "completion.json").write_text(
        json.dumps(
            {
                "members": ["alpha", "beta"],
                "n": 2,
                "hole": "centre box",
                "columns": ["image with hole", "alpha", "beta", "the choice"],
                "chosen": ["alpha", "beta"],
                "hole_mse": {"alpha": 0.1, "beta": 0.2, "choice": 0.1, "oracle": 0.05},
            }
        )
    )
    (run / "timings.json").write_text(json.dumps({"train": 1.5, "score": 0.5, "evaluate": 2.0}))
    for extra in ("checkpoints", "latest.json", "metrics.jsonl", "tb"):
        path = run / extra
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    return run


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["alpha", "beta", "fusion:uniform", "../config.yaml", "alpha.png"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def artefact_damage(draw):
    """(artefact, how, where, value): a key's value, one list item, a row's metric or the whole file
    replaced by any JSON value; a number made non-finite; the text cut short; or a list made huge."""
    kind = draw(st.sampled_from(sorted(ARTEFACTS)))
    how = draw(st.sampled_from(["key", "item", "deep", "whole", "non-finite", "cut", "huge"]))
    return kind, how, draw(st.integers(0, 10**6)), draw(JSON_VALUES)


def _paths(obj, prefix=()):
    """Every (path, value) inside a JSON value."""
    yield prefix, obj
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        yield from _paths(v, (*prefix, k))


def _set(obj, path, value):
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = value


def damage_file(path: Path, how: str, where: int, value) -> None:
    text = path.read_text()
    data = json.loads(text)
    inner = [p for p, _ in _paths(data) if p]
    if how == "cut":
        path.write_text(text[: where % max(len(text), 1)])
        return
    if how == "whole" or not inner:
        data = value
    elif how == "non-finite":
        numbers = [
            p for p, v in _paths(data) if p and isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        target = numbers[where % len(numbers)] if numbers else inner[where % len(inner)]
        _set(data, target, [float("nan"), float("inf"), float("-inf"), 1e308 * 10][where % 4])
    elif how == "huge":
        lists = [p for p, v in _paths(data) if p and isinstance(v, list)]
        target = lists[where % len(lists)] if lists else inner[where % len(inner)]
        _set(data, target, [value] * 20_000)
    else:
        depth = {"key": 1, "item": 2, "deep": 99}[how]
        choices = [p for p in inner if len(p) <= depth] or inner
        _set(data, choices[where % len(choices)], value)
    # NaN, Infinity and 1e400 as a careless editor or another tool would write them.
    path.write_text(json.dumps(data, allow_nan=True).replace("1e309", "1e400"))


def check_artefact(clean: Path, run: Path, damage) -> str:
    """Damage one artefact of a copy of `clean`, then read it as the report and the fusions do:
    "ok" (read and rendered) or "error" (one GensembleError)."""
    shutil.copytree(clean, run)
    kind, how, where, value = damage
    name = ARTEFACTS[kind] or str(next((run / "evaluations").glob("*.json")).relative_to(run))
    damage_file(run / name, how, where, value)
    try:
        render_report(gather_report(run))
        if kind == "tournament":
            matching_tournament(run, 60, 0, "matrix", "platt", 200, {}, ["alpha", "beta"])
    except GensembleError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 600, str(exc)
        return "error"
    finally:
        shutil.rmtree(run, ignore_errors=True)
    return "ok"


@pytest.fixture(scope="module")
def artefact_run(tmp_path_factory) -> Path:
    return build_artefact_run(tmp_path_factory.mktemp("artefact-fuzz"))


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(artefact_damage())
def test_fuzz_artefacts(artefact_run, tmp_path_factory, damage):
    check_artefact(artefact_run, tmp_path_factory.mktemp("a") / "R", damage)


def test_the_clean_artefacts_are_read_and_rendered(artefact_run, tmp_path):
    """The fuzzer's starting point is valid: undamaged, every artefact is read and the report renders."""
    page = render_report(gather_report(artefact_run))
    assert "Tournament" in page and "fusion:weighted" in page and "id='completion'" in page


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(files=st.integers(1, 6), killed_after=st.integers(0, 7), committed=st.booleans())
def test_fuzz_a_kill_at_any_point_of_a_commit(tmp_path_factory, files, killed_after, committed):
    """SIGKILL at any moment of `Outputs.commit` (before the commit record, or after any number of
    renames): after `recover` (what the next command runs first) the files are all old or all new."""
    import os

    from gensemble import runfolder

    root = tmp_path_factory.mktemp("kill")
    names = [f"sub{i % 2}/f{i}" for i in range(files)]
    for n in names:
        (root / n).parent.mkdir(exist_ok=True)
        (root / n).write_text(f"old {n}")
    out = runfolder.Outputs(root)
    for n in names:
        out.add(root / n, f"new {n}")
    moved = []
    real_replace, real_write = os.replace, runfolder.atomic_write_text

    def replace(src, dst):
        if len(moved) >= killed_after:
            raise SystemExit("killed")
        moved.append(dst)
        real_replace(src, dst)

    def write_commit(path, text):
        if not committed:
            raise SystemExit("killed before the commit record")
        real_write(path, text)

    runfolder.os.replace, runfolder.atomic_write_text = replace, write_commit
    try:
        out.commit()
    except SystemExit:
        pass
    finally:
        runfolder.os.replace, runfolder.atomic_write_text = real_replace, real_write
    for txn in root.glob(f"{runfolder.TXN_PREFIX}*"):  # as if the killed process were another one
        txn.rename(root / f"{runfolder.TXN_PREFIX}999999999-{txn.name[-6:]}")
    runfolder.recover(root)
    contents = {(root / n).read_text() for n in names}
    assert contents in ({f"old {n}" for n in names}, {f"new {n}" for n in names}), contents
    assert not list(root.glob(f"{runfolder.TXN_PREFIX}*"))
