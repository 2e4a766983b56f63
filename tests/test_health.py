"""A failed member is named by train, score, evaluate and the report (health.py), and the report
leaves it out of the headline's best member."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import yaml

from gensemble.evaluation.evaluate import evaluate_run
from gensemble.evaluation.result import verdict
from gensemble.health import colour_problems, curve_problems, judged_problems, warning_lines
from gensemble.report import gather_report
from gensemble.run import train_run
from gensemble.tournament import score_run


def log(d_real: float, d_fake: float, loss_g: float, steps: int = 20) -> list[dict[str, float]]:
    return [
        {"step": 10.0 * (i + 1), "d_real": d_real, "d_fake": d_fake, "loss_g": loss_g} for i in range(steps)
    ]


def test_a_saturated_discriminator_is_flagged_and_a_healthy_gan_is_not():
    found = curve_problems({"bad": log(0.996, 0.004, 6.0), "good": log(0.75, 0.2, 1.5)})
    assert set(found) == {"bad"}
    assert "d_real 0.996" in found["bad"] and "spectral_norm" in found["bad"]
    # saturated only early, then recovered: not failed
    assert curve_problems({"late": log(0.996, 0.004, 6.0, 10) + log(0.7, 0.25, 1.2, 10)}) == {}
    # too short a log to judge, and a VAE's log (no d_real) are left alone
    assert (
        curve_problems({"short": log(0.996, 0.004, 6.0, 4), "vae": [{"step": 1.0, "loss": 3.0}] * 20}) == {}
    )


def test_a_diverging_generator_loss_is_flagged():
    rising = [{"step": float(i), "d_real": 0.9, "d_fake": 0.1, "loss_g": 1.0 + 0.4 * i} for i in range(20)]
    assert "diverged" in curve_problems({"g": rising})["g"]


def test_every_judge_rejecting_a_member_flags_it():
    found = judged_problems({"a": 0.3, "b": 0.0004, "c": float("nan")})
    assert set(found) == {"b"} and "gensemble sample RUN --member b" in found["b"]


def test_samples_of_the_wrong_colour_are_flagged():
    rng = np.random.default_rng(0)
    ref = np.clip(rng.normal(-0.4, 0.7, size=(200, 3, 8, 8)), -1, 1)
    same = np.clip(rng.normal(-0.4, 0.7, size=(200, 3, 8, 8)), -1, 1)
    patch = np.zeros((200, 3, 8, 8))
    patch[:, 1] = 0.9  # a green checkerboard-like patch with no spread
    found = colour_problems({"same": same, "patch": patch}, ref)
    assert set(found) == {"patch"}
    assert warning_lines(found)[0].startswith("member 'patch' looks failed: its samples' colours")


def test_the_headline_leaves_a_failed_member_out_of_the_best_member():
    rows = {"a": {"fid": 10.0}, "b": {"fid": 20.0}, "fusion:auto": {"fid": 15.0}}
    assert verdict(rows).startswith("The fused ensemble did not beat its best member")
    assert "against 20 for b, 25.0% better" in verdict(rows, exclude={"a"})


FAILING = {
    "data": {"name": "digits", "image_size": 16},
    "scheme": "independent",
    "members": [
        {"name": "ok", "model": {"name": "dcgan", "ngf": 8, "ndf": 8}, "seed": 0},
        # G barely moves while D learns fast: D wins outright within a few dozen steps
        {
            "name": "bad",
            "model": {"name": "dcgan", "ngf": 8, "ndf": 8},
            "seed": 1,
            "optim": {"lr": 1e-7, "lr_d": 2e-3},
        },
    ],
    "train": {"steps": 40, "batch_size": 32, "checkpoint_every": 40, "log_every": 5},
}


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("failing")
    (root / "c.yaml").write_text(yaml.safe_dump(FAILING))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = train_run(root / "c.yaml", root / "R")
    return run, [str(w.message) for w in caught]


def flagged(messages: list[str], member: str) -> bool:
    return any(m.startswith(f"member '{member}' looks failed") for m in messages)


@pytest.mark.integration  # four commands end to end: CI runs it in its second pass
def test_train_score_evaluate_and_report_flag_a_failed_member(failing_run):
    run, trained = failing_run
    assert flagged(trained, "bad") and not flagged(trained, "ok")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        score_run(run, n_samples=64)
    assert flagged([str(w.message) for w in caught], "bad")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = evaluate_run(run, n=100, features="pixels", metrics=("fid",), fusions=("uniform",))
    assert flagged([str(w.message) for w in caught], "bad")
    assert "bad" in result.info["failed_members"]
    data = gather_report(run)
    assert "bad" in data.failed and "discriminator won outright" in data.failed["bad"]
