"""The HTML report: self-contained, escaped, and every image loads in a real (headless) browser."""

import base64
import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from gensemble.evaluation.evaluate import evaluate_run
from gensemble.report import ReportData, render_report, report_run
from gensemble.run import train_run
from gensemble.tournament import score_run

from helpers import run_cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
EVIL = "<script>alert('x')</script>"


@pytest.fixture(scope="module")
def toy_report(tmp_path_factory):
    """A 2-member grid25 ensemble, evaluated, with its report written."""
    root = tmp_path_factory.mktemp("report")
    cfg = root / "c.yaml"
    cfg.write_text(
        "data: {name: grid25}\n"
        "scheme: independent\n"
        "members:\n"
        "  - {name: alpha, model: {name: mlp-gan, g_hidden: 32, d_hidden: 32}, seed: 0}\n"
        "  - {name: beta, model: {name: mlp-gan, g_hidden: 32, d_hidden: 32}, seed: 1}\n"
        "train: {steps: 60, batch_size: 64, log_every: 10}\n"
    )
    run = train_run(cfg, root / "run")
    score_run(run, n_samples=200)
    evaluate_run(run, n=200, fusions=("uniform", "rejection"))
    return report_run(run, root / "report.html")


def test_report_is_self_contained_and_complete(toy_report):
    page = toy_report.read_text()
    srcs = re.findall(r'<img[^>]* src="([^"]+)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)  # nothing external
    for label in ("alpha", "beta", "fusion:uniform", "fusion:rejection"):
        assert f"<h3>{label}</h3>" in page
    assert 'class="heatmap"' in page and 'id="evaluation"' in page and 'class="curves"' in page
    assert "real:train-vs-test" in page and "modes_covered" in page
    assert "<pre id='config'>" in page and "grid25" in page


def test_every_string_from_configs_and_names_is_escaped():
    data = ReportData(
        title=EVIL,
        config_yaml=f"data: {{root: '{EVIL}'}}",
        samples={EVIL: PNG_1PX},
        evaluation={EVIL: {"fid": 1.0}, "m0": {"fid": 2.0}},
        notes=[EVIL],
    )
    page = render_report(data)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


def test_best_values_are_highlighted():
    data = ReportData(
        title="t",
        config_yaml="",
        evaluation={
            "real:train-vs-test": {"fid": 0.5, "coverage": 1.0},
            "m0": {"fid": 10.0, "coverage": 0.2},
            "fusion:mh": {"fid": 7.0, "coverage": 0.3},
        },
    )
    page = render_report(data)
    best = re.findall(r'<td class="best">([^<]+)</td>', page)
    assert best == ["7", "0.3"]  # the floor row is never "best"
    tie = render_report(
        ReportData(title="t", config_yaml="", evaluation={"a": {"modes_hit": 10}, "b": {"modes_hit": 10}})
    )
    assert 'class="best"' not in tie  # a column where every row ties has no best


def test_report_cli_writes_the_file(toy_report, tmp_path, capsys):
    out = tmp_path / "r.html"
    code, stdout, _ = run_cli(capsys, "report", str(toy_report.parent / "run"), "-o", str(out))
    assert code == 0 and out.is_file() and str(out) in stdout


@pytest.mark.skipif(
    shutil.which("chromedriver") is None
    or not Path("/usr/bin/chromium").exists()
    or importlib.util.find_spec("selenium") is None,
    reason="headless Chromium + chromedriver are installed by `make test` (Debian chromium, chromium-driver)",
)
@pytest.mark.integration  # a real browser: CI runs it in its second pass
def test_report_in_headless_chromium(toy_report, tmp_path):
    from screenshot_report import open_browser

    driver = open_browser()
    try:
        driver.get(toy_report.resolve().as_uri())
        loaded = driver.execute_script(
            "return Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)"
        )
        assert loaded and all(loaded), f"images that failed to load: {loaded}"
        assert driver.execute_script("return document.querySelectorAll('img.heatmap').length") == 1
        rows = driver.execute_script("return document.querySelectorAll('#evaluation tr').length")
        assert rows >= 1 + 3  # header, floor, two members (and fusions)
        assert driver.execute_script("return document.querySelectorAll('script').length") == 0
        driver.save_screenshot(str(tmp_path / "report.png"))
    finally:
        driver.quit()
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_report_renders_saved_results_without_loading_the_run(toy_report, tmp_path):
    """The report only reads artefacts: with the checkpoints gone it still shows every part."""
    run = tmp_path / "run"
    shutil.copytree(toy_report.parent / "run", run)
    shutil.rmtree(run / "checkpoints")
    (run / "latest.json").unlink()
    page = report_run(run, tmp_path / "r.html").read_text()
    assert 'class="heatmap"' in page and "<h3>fusion:rejection</h3>" in page and 'id="evaluation"' in page


def test_report_names_the_command_for_each_missing_part(tmp_path):
    run = tmp_path / "bare"
    run.mkdir()
    (run / "config.yaml").write_text("data: {name: grid25}\n")
    page = report_run(run, tmp_path / "r.html").read_text()
    assert f"gensemble score {run}" in page and f"gensemble evaluate {run} --fusion" in page
    assert "gensemble complete RUN --heldout 8" in page


def test_report_opens_with_whether_the_ensemble_beat_its_best_member():
    from gensemble.evaluation.result import verdict

    rows = {
        "real:train-vs-test": {"fid": 0.5},
        "a": {"fid": 20.0},
        "b": {"fid": 30.0},
        "fusion:uniform": {"fid": 17.0},
        "fusion:mh": {"fid": 25.0},
    }
    assert verdict(rows) == (
        "The fused ensemble beat its best member: fusion:uniform reaches fid 17 against 20 for a, 15.0% better."
    )
    rows["fusion:uniform"]["fid"] = 22.0
    assert verdict(rows).startswith(
        "The fused ensemble did not beat its best member: the best fusion, fusion:uniform"
    )
    # auto leads though uniform scored better here (choosing uniform would be a choice on this half)
    rows["fusion:auto"] = {"fid": 26.0}
    assert verdict(rows) == (
        "The fused ensemble did not beat its best member: the fusion chosen on held-out data, "
        "fusion:auto reaches fid 26 against 20 for a, 30.0% worse."
    )
    del rows["fusion:auto"]
    assert verdict({"a": {"fid": 1.0}}) is None
    page = render_report(ReportData(title="t", config_yaml="", evaluation=rows, verdict=verdict(rows)))
    assert page.index("id='verdict'") < page.index("<h2>Evaluation</h2>")


def test_the_headline_names_its_evaluation_and_says_within_noise_when_it_is():
    from gensemble.evaluation.result import NOISE_PCT, verdict

    rows = {"a": {"fid": 20.0}, "fusion:auto": {"fid": 17.0}}
    assert verdict(rows, features="classifier:fashion-mnist", n=2000) == (
        "The fused ensemble beat its best member (classifier:fashion-mnist features, n = 2000 per row): "
        "fusion:auto reaches fid 17 against 20 for a, 15.0% better."
    )
    small = verdict(rows, features="inception", n=150)
    assert small.startswith("Within noise: at n = 150 per row (under 500)") and "inception features" in small
    rows["fusion:auto"]["fid"] = 20.0 * (1 - NOISE_PCT / 200)  # a margin of half the noise
    close = verdict(rows, features="inception", n=2000)
    assert close.startswith("Within noise: the fused ensemble and its best member differ by 1.5%")


def test_the_headline_rests_on_the_largest_n_evaluation(tmp_path):
    """Two evaluations of one run: the headline follows the one with more samples per row, even
    when the smaller one ran last."""
    from gensemble.report import gather_report

    run = tmp_path / "run"
    (run / "evaluations").mkdir(parents=True)
    (run / "config.yaml").write_text(
        "data: {name: grid25}\nmembers:\n  - {name: a, model: {name: mlp-gan}}\n"
    )
    big = {"rows": {"a": {"fid": 20.0}, "fusion:auto": {"fid": 15.0}}, "features": "points", "n": 2500}
    small = {"rows": {"a": {"fid": 20.0}, "fusion:auto": {"fid": 25.0}}, "features": "points", "n": 100}
    (run / "evaluations" / "big.json").write_text(json.dumps(big))
    (run / "evaluations" / "small.json").write_text(json.dumps(small))
    (run / "evaluation.json").write_text(json.dumps(small))  # the latest
    data = gather_report(run)
    assert data.verdict.startswith(
        "The fused ensemble beat its best member (points features, n = 2500 per row)"
    )


def test_the_report_says_what_auto_chose(tmp_path):
    from gensemble.report import auto_choice

    assert auto_choice({"rows": {"a": {"fid": 1.0}}}) is None
    choice = {"chosen": "uniform + rejection (γ at p80)", "why": "lowest FID on 1250 held-out images"}
    assert (
        auto_choice({"rows": {}, "choices": {"fusion:auto": choice}})
        == "fusion:auto chose uniform + rejection (γ at p80): lowest FID on 1250 held-out images."
    )
