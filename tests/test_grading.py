"""Graded where it was not steered: every fusion records the feature spaces that shaped its samples
(`steered_by`), a row graded on one of them is marked self-graded, and a self-graded row never
carries the report's first sentence. Also the class-matched FID and the independent space."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gensemble.evaluation.evaluate import evaluate_run
from gensemble.evaluation.result import EvalResult
from gensemble.fusion import FUSIONS, parse_fusion_params
from gensemble.fusion.base import steered_by
from gensemble.metrics.fid import histogram_matched
from gensemble.report import gather_report, render_report
from gensemble.report.headline import headline, headline_evaluation
from gensemble.run import train_run

from helpers import PAIR  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
CLF = "classifier:fashion-mnist"


def test_every_fusion_names_what_steered_it():
    spaces = {n: steered_by(n, parse_fusion_params(n, {}), "fashion-mnist") for n in FUSIONS.names()}
    assert spaces["uniform"] == () and spaces["average"] == ()
    assert spaces["best"] == (CLF,)  # held-out FID on the classifier's features
    # With a domain classifier the default judge is the feature judge, so auto steers by it alone;
    # a choice also compared on the pixel statistics steers by them too.
    assert spaces["auto"] == (CLF,) and spaces["weighted"] == (CLF,)
    with_pixels = parse_fusion_params("auto", {"choice_spaces": ["judges", "pixels"]})
    assert steered_by("auto", with_pixels, "fashion-mnist") == (CLF, "pixels")
    assert "pixels" not in steered_by("auto", with_pixels, "grid25")  # 2-D points: no pixels
    mh_pixels = parse_fusion_params("mh", {"choice_spaces": ["judges", "pixels"]})  # mh's chain length
    assert "pixels" in steered_by("mh", mh_pixels, "fashion-mnist")
    on_inception = parse_fusion_params("auto", {"choice_spaces": ["judges", "inception"]})
    assert "inception" in steered_by("auto", on_inception, "fashion-mnist")
    assert CLF in spaces["mh"]  # MH's default judge is the feature judge
    fine = parse_fusion_params("auto", {"judges": "finetuned"})
    assert steered_by("auto", fine, "fashion-mnist") == (CLF, "discriminators")
    # Elsewhere the default judges are the fine-tuned discriminators.
    assert steered_by("weighted", parse_fusion_params("weighted", {}), "grid25") == ("discriminators",)
    # Selection by the tournament steers even the uniform mixture.
    assert steered_by("uniform", parse_fusion_params("uniform", {"top_k": 2}), "fashion-mnist") != ()
    # Toys steer by the mode-kernel features; an unlabelled folder by raw pixels.
    assert "modes" in steered_by("auto", parse_fusion_params("auto", {}), "grid25")
    assert "pixels" in steered_by("best", parse_fusion_params("best", {}), "folder:/data")
    # The combined critic reads both the discriminators and the feature judge.
    only_combined = parse_fusion_params("rejection", {"critics": ["combined"], "gamma_percentile": 90})
    assert steered_by("rejection", only_combined, "fashion-mnist") == (CLF, "discriminators")


def result(features: str, rows: dict, steered: dict, graded: dict | None = None) -> EvalResult:
    return EvalResult(rows, features, 1000, 0, ("fid",), "ref", graded=graded or {}, steered_by=steered)


ROWS = {
    "real:train-vs-test": {"fid": 1.0},
    "m0": {"fid": 20.0},
    "m1": {"fid": 22.0},
    "fusion:uniform": {"fid": 19.0},
    "fusion:auto": {"fid": 10.0},
}
STEERED = {"m0": (), "m1": (), "fusion:uniform": (), "fusion:auto": (CLF, "discriminators")}


def test_a_row_steered_by_the_grading_space_is_marked_self_graded():
    r = result(CLF, ROWS, STEERED)
    assert r.self_graded() == ["fusion:auto"]
    assert r.self_graded("effnet-lite0") == []
    assert r.self_graded("pixels") == ["fusion:auto"]  # the discriminators see the pixels
    saved = r.to_file_json()
    assert saved["self_graded"] == ["fusion:auto"] and saved["steered_by"]["fusion:auto"] == [
        CLF,
        "discriminators",
    ]
    line = next(ln for ln in r.format().splitlines() if ln.startswith("fusion:auto"))
    assert line.endswith("†")


def evaluation(features: str, rows: dict, self_graded: list, n: int = 1000, also: dict | None = None) -> dict:
    return {"rows": rows, "features": features, "n": n, "self_graded": self_graded, "also_graded": also or {}}


def test_a_self_graded_row_never_headlines():
    steered = evaluation(CLF, ROWS, ["fusion:auto"], n=5000)
    text = headline(steered)
    assert "fusion:auto" not in text.split(";")[-1] or "fusion:uniform" in text
    assert "fusion:uniform" in text  # the best fusion graded independently here
    # An independent evaluation of the same rows is preferred, even at a smaller n.
    fair_rows = {**ROWS, "fusion:auto": {"fid": 18.0}}
    fair = evaluation(
        "effnet-lite0", fair_rows, [], also={CLF: {"rows": ROWS, "self_graded": ["fusion:auto"]}}
    )
    chosen = headline_evaluation([steered, fair])
    assert chosen is fair
    text = headline(chosen)
    assert text.startswith("The fused ensemble beat its best member (effnet-lite0 features")
    assert "fusion:auto reaches fid 18 against 20 for m0" in text
    # The steered figure stands beside it, labelled.
    assert f"On {CLF} features, which steered fusion:auto (self-graded, not the headline): fid 10" in text


def test_only_self_graded_fusions_give_no_verdict_but_say_why():
    rows = {k: v for k, v in ROWS.items() if k != "fusion:uniform"}
    text = headline(evaluation(CLF, rows, ["fusion:auto"]))
    assert text.startswith("No independent verdict") and "effnet-lite0" in text


def test_raw_pixels_never_carry_the_headline():
    pixels = evaluation("pixels", ROWS, [], n=5000)
    other = evaluation("effnet-lite0", ROWS, [], n=500)
    assert headline_evaluation([pixels, other]) is other


def test_histogram_matching_resamples_to_the_target_mix():
    labels = np.array([0] * 900 + [1] * 100)
    idx = histogram_matched(labels, np.array([0.5, 0.5]), n=4000, seed=0)
    shares = np.bincount(labels[idx], minlength=2) / len(idx)
    assert abs(shares[0] - 0.5) < 0.03
    # A class the row never drew cannot be resampled into existence: the rest is renormalised.
    idx = histogram_matched(np.zeros(50, dtype=int), np.array([0.5, 0.5]), seed=0)
    assert (labels[:50][idx] == 0).all() and len(idx) == 50


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("grading")
    (root / "c.yaml").write_text(PAIR)
    return Path(train_run(root / "c.yaml", root / "R"))


def test_evaluation_json_carries_steering_and_the_report_never_headlines_a_self_graded_row(toy_run):
    # On grid25 auto is steered by the mode-kernel features; graded on them, it grades itself.
    r = evaluate_run(toy_run, n=200, features="modes", fusions=("uniform", "auto"))
    saved = json.loads((toy_run / "evaluation.json").read_text())
    assert "modes" in saved["steered_by"]["fusion:auto"] and saved["steered_by"]["fusion:uniform"] == []
    assert saved["self_graded"] == ["fusion:auto"] == r.self_graded()
    data = gather_report(toy_run)
    assert data.verdict is not None and "fusion:auto reaches" not in data.verdict
    assert "†" in render_report(data)


def test_evaluate_grades_on_further_spaces_with_the_same_samples(toy_run):
    r = evaluate_run(toy_run, n=200, features="points,modes", fusions=("auto",), write=False)
    assert r.features == "points" and set(r.graded) == {"modes"}
    assert set(r.graded["modes"]) == set(r.rows)
    assert r.self_graded() == [] and r.self_graded("modes") == ["fusion:auto"]


def test_effnet_lite0_is_a_registered_space_with_provenance():
    from gensemble.metrics import get_extractor

    ext = get_extractor("effnet-lite0", "cpu")
    out = ext.extract(torch.rand(3, 1, 28, 28) * 2 - 1)
    assert out.features.shape == (3, 1280) and out.probs is None
    assert ext.input_size == 64 and len(ext.weights_sha256) == 64
    assert get_extractor("effnet-lite0:96", "cpu").input_size == 96


def test_a_fusion_over_90_percent_one_member_is_reported_as_that_member_refined():
    ev = evaluation("effnet-lite0", ROWS, [])
    ev["raw"] = {"member_shares": {"fusion:auto": {"m0": 0.93, "m1": 0.07}}}
    text = headline(ev)
    assert text.endswith("fusion:auto draws 93% of its samples from m0: that member, refined.")
    ev["raw"]["member_shares"]["fusion:auto"] = {"m0": 0.6, "m1": 0.4}
    assert "refined" not in headline(ev)


def test_a_failed_member_is_never_the_best_member_in_the_headline():
    ev = evaluation("effnet-lite0", {**ROWS, "m9": {"fid": 5.0}}, [])
    assert "did not beat" in headline(ev)  # m9 (fid 5) would be the best member
    ev["failed_members"] = {"m9": "its discriminator won outright"}
    text = headline(ev)
    assert "beat its best member" in text and "against 20 for m0" in text and "failed: m9" in text
