"""The README quotes its times from docs/results/readme_times.json, which scripts/time_readme.sh
writes by running both README commands on fresh clones with an empty cache."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def min_s(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s} s" if m else f"{s} s"


def test_every_time_the_readme_states_comes_from_readme_times_json():
    times = json.loads((ROOT / "docs" / "results" / "readme_times.json").read_text())
    readme = (ROOT / "README.md").read_text()
    demo, test = times["demo"], times["test"]
    expected = {
        "make demo, wall": min_s(demo["wall_s"]),
        "demo training": f"training took {round(demo['train_s'])} s",
        "demo after training": f"everything after it {round(demo['after_training_s'])} s",
        "make test, wall": min_s(test["wall_s"]),
        "pytest's part": f"pytest's part {round(test['pytest_s'])} s",
    }
    for what, text in expected.items():
        assert text in readme, f"README does not state {what} as measured: {text!r}"
    assert demo["after_over_train"] == round(demo["after_training_s"] / demo["train_s"], 3)
