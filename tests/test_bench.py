"""The quality benchmark (gensemble.bench): its pure summaries and goals, and the smoke run CI makes."""

import json

import pytest

from gensemble.bench import PRESETS, evaluate_goals, mean_std, summarise, toy_plan
from gensemble.cli import main
from gensemble.errors import ConfigError


def toy_record(method: str, seed: int, modes: int, hq: float, members: int = 5) -> dict:
    return {
        "section": "toy", "dataset": "grid25", "method": method, "seed": seed, "members": members,
        "gen_updates": 1000, "train_s": 10.0, "extra_s": 1.0, "modes_covered": modes, "high_quality": hq,
    }  # fmt: skip


def test_mean_std_is_the_sample_std_and_zero_for_one_value():
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(2**0.5))
    assert mean_std([4.0]) == (4.0, 0.0)


def test_summarise_averages_over_seeds_and_keeps_failures():
    recs = [toy_record("single GAN", s, 20 + s, 0.9, members=1) for s in range(3)]
    recs += [toy_record("mixture + rejection", 0, 25, 0.95)]
    recs += [{**toy_record("mixture + rejection", 1, 0, 0.0), "error": "boom"}]
    rows = {r["method"]: r for r in summarise(recs, "toy", ("modes_covered", "high_quality"))}
    assert rows["single GAN"]["modes_covered"] == 21.0 and rows["single GAN"]["seeds"] == 3
    assert rows["single GAN"]["wall_s"] == 11.0
    assert rows["mixture + rejection"]["seeds"] == 1 and rows["mixture + rejection"]["errors"] == ["boom"]


def test_grid25_goal_needs_all_modes_and_ninety_percent_quality():
    summary = {"stacked": [], "fashion": []}
    recs = [toy_record("single GAN", 0, 25, 0.99, members=1), toy_record("a: mixture", 0, 25, 0.85)]
    summary["toy"] = summarise(recs, "toy", ("modes_covered", "high_quality"))
    (goal,) = evaluate_goals(summary)
    assert goal["best"] == "a: mixture" and not goal["met"]  # the single model never counts as the ensemble
    recs.append(toy_record("a + rejection", 0, 25, 0.93))
    summary["toy"] = summarise(recs, "toy", ("modes_covered", "high_quality"))
    (goal,) = evaluate_goals(summary)
    assert goal["best"] == "a + rejection" and goal["met"]


def test_equal_compute_plan_gives_every_scheme_the_same_generator_updates():
    s = PRESETS["full"]
    totals = {
        scheme: m * steps for scheme in ("single", *s.toy_schemes) for _, m, steps in [toy_plan(scheme, s)]
    }
    assert set(totals.values()) == {s.members * s.toy_steps}
    assert toy_plan("swap", s)[1] % 2 == 0


def test_unknown_preset_is_a_clear_error(tmp_path):
    from gensemble.bench import bench_quality

    with pytest.raises(ConfigError, match="known: full, quick, smoke"):
        bench_quality("huge", tmp_path)


def test_smoke_run_writes_labelled_results(tmp_path, capsys):
    """What CI runs: the whole pipeline at toy size; quick outputs never overwrite the real ones."""
    assert (
        main(["bench", "quality", "--smoke", "--out", str(tmp_path), "--work", str(tmp_path / "work")]) == 0
    )
    result = json.loads((tmp_path / "results" / "quality-smoke.json").read_text())
    assert result["quick"] is True and result["label"] == "smoke"
    assert {r["section"] for r in result["records"]} == {"toy", "stacked", "fashion"}
    assert len(result["goals"]) == 3 and all(isinstance(g["met"], bool) for g in result["goals"])
    text = (tmp_path / "RESULTS-smoke.md").read_text()
    assert "QUICK (smoke) RUN" in text and "## Goals" in text
    assert not (tmp_path / "RESULTS.md").exists() and not (tmp_path / "results" / "quality.json").exists()
    assert all((tmp_path / p).exists() for p in result["plots"].values())
