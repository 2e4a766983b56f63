"""`gensemble demo --fast` end to end, through the command line (about 3 minutes, so marked slow: CI
runs it as its own step, `pytest -m slow tests/test_demo.py`, after the default suite): every stage runs, each reads what the one before saved, and the
tournament is computed exactly once for the whole demo (score saves it; fusions and report reuse it)."""

import json

import pytest

import gensemble.tournament as tournament
from gensemble.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fast_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    calls = []
    judge = tournament.judge
    mp = pytest.MonkeyPatch()
    mp.setattr(tournament, "judge", lambda *a, **k: calls.append(1) or judge(*a, **k))
    try:
        code = main(["--quiet", "demo", "--fast", "--out", str(out)])
    finally:
        mp.undo()
    assert code == 0
    return out, (out / "summary.txt").read_text(), calls


def test_fast_demo_writes_every_artefact(fast_demo):
    out, summary, _ = fast_demo
    run = out / "run"
    for name in ("tournament.json", "evaluation.json", "samples/index.json", "completion/completion.json"):
        assert (run / name).is_file(), name
    page = (out / "report.html").read_text()
    assert 'class="heatmap"' in page and "<h3>fusion:rejection</h3>" in page and "id='completion'" in page
    assert "No tournament saved" not in page and "No sample grids saved" not in page
    assert "report:" in summary and "fusion:uniform" in summary


def test_fast_demo_computes_one_tournament(fast_demo):
    _, _, calls = fast_demo
    assert len(calls) == 1


def test_fast_demo_records_its_stage_times(fast_demo):
    out, _, _ = fast_demo
    timings = json.loads((out / "timings.json").read_text())
    assert {"train", "score", "evaluate", "complete", "report", "after_training"} <= set(timings)
    assert timings["report"] < timings["evaluate"]  # the report only renders what was saved
