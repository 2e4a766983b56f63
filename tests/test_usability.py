"""A newcomer's walls, one test each: threads, progress in logs, any image folder, the report's
honesty, fusion shares, partly trained runs, export, the top-level API, shipped configs and help."""

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gensemble
import gensemble.progress as progress
import gensemble.threads as threads
from gensemble.errors import ConfigError
from gensemble.evaluation.evaluate import RECALL_FLOOR, crownable
from gensemble.run import load_run, parse_config, train_run

from helpers import TINY_TOY, run_cli, write_config


def one_line_error(code, err, needle):
    lines = [line for line in err.splitlines() if line.startswith("gensemble: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert needle in lines[0], lines[0]


# --- 1. threads -------------------------------------------------------------------------------


@pytest.mark.parametrize(("one", "two", "best"), [(0.1, 0.3, 1), (0.1, 0.095, 1), (0.1, 0.05, 2)])
def test_thread_tuner_keeps_the_clearly_faster_count(monkeypatch, one, two, best):
    clock = {"t": 0.0}
    chosen = []
    monkeypatch.setattr(threads.time, "perf_counter", lambda: clock["t"])
    monkeypatch.setattr(threads.torch, "set_num_threads", lambda n: chosen.append(n))
    tuner = threads.ThreadTuner((1, 2), probe_steps=4, rounds=3)
    cost = {1: one, 2: two}
    for _ in range(60):
        clock["t"] += cost[chosen[-1] if chosen else 1]
        tuner.tick()
    # Two threads must be clearly (10%) faster to win: beside a busy neighbour they lose far more.
    assert tuner.best == best and chosen[-1] == best
    assert chosen[:7] == [2, 1, 2, 1, 2, 1, best]
    assert tuner.rates[1] == pytest.approx(1 / one)


def test_thread_tuner_measures_again_when_the_pace_moves(monkeypatch, capsys):
    """Two threads win on a quiet machine; a neighbour arrives and makes them 4× slower: within a
    window of steps the tuner says so, measures again, and keeps one thread. A resumed run starts
    watching from its saved count without probing first."""
    clock = {"t": 0.0}
    chosen = []
    monkeypatch.setattr(threads.time, "perf_counter", lambda: clock["t"])
    monkeypatch.setattr(threads.torch, "set_num_threads", lambda n: chosen.append(n))
    tuner = threads.ThreadTuner((1, 2), probe_steps=4, rounds=3)
    tuner.window = 10
    cost = {1: 1.0, 2: 0.5}

    def steps(k):
        for _ in range(k):
            clock["t"] += cost[chosen[-1] if chosen else 2]
            tuner.tick()

    steps(40)
    assert tuner.best == 2 and tuner.probes == 1
    steps(30)  # a quiet pace: nothing moves
    assert tuner.best == 2 and tuner.probes == 1
    cost[2] = 2.0  # a busy neighbour: two threads now fight it
    steps(60)
    assert tuner.probes == 2 and tuner.best == 1 and chosen[-1] == 1
    assert "the step time moved from 500 to 2000 ms: measuring again" in capsys.readouterr().err
    resumed = threads.ThreadTuner((1, 2), chosen=2)
    assert resumed.best == 2 and chosen[-1] == 2 and resumed.probes == 1


def test_threads_option_config_and_resume(tmp_path, capsys, monkeypatch):
    before = torch.get_num_threads()
    try:
        code, _, err = run_cli(capsys, "--threads", "zero", "list", "models")
        one_line_error(code, err, "--threads takes")
        cfg = write_config(tmp_path / "c.yaml")
        code, _, err = run_cli(capsys, "train", str(cfg), "--out", str(tmp_path / "R"), "--threads=2")
        assert code == 0, err
        assert (
            json.loads(next((tmp_path / "R" / "checkpoints").iterdir()).joinpath("state.json").read_text())[
                "threads"
            ]
            == 2
        )
        # auto: a resumed run reuses the count its checkpoint saved, not a new probe.
        monkeypatch.delenv("GENSEMBLE_THREADS", raising=False)
        threads._EXPLICIT = False
        threads.set_threads("auto")
        threads.start_run(saved=2)
        assert torch.get_num_threads() == 2
        # ...and only watches its pace (no probe first), where there is more than one core to choose.
        assert threads.tuner() is None or threads.tuner().best == 2
        threads.start_run(saved=None)
        assert isinstance(threads.tuner(), threads.ThreadTuner) or threads.available_cores() == 1
        assert parse_config({**TINY_TOY, "train": {"threads": 1}}).train.threads == 1
        with pytest.raises(ConfigError, match="threads"):
            parse_config({**TINY_TOY, "train": {"threads": 0}})
    finally:
        threads.set_threads(1)
        threads._EXPLICIT = False
        torch.set_num_threads(before)


# --- 2. progress off a terminal ----------------------------------------------------------------


def test_progress_prints_lines_with_eta_off_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.0)
    progress.set_quiet(False)
    bar = progress.progress(10, "train m0", unit="step")
    for _ in range(3):
        bar.update(1)
        bar.set_postfix({"loss_d": "0.700"})
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4 and "ETA" in lines[0] and "loss_d=0.700" in lines[1] and "3/10 step" in lines[-1]


def test_progress_bar_on_a_terminal_leaves_a_summary_line(capsys):
    bar = progress._Bar(total=3, desc="train x", unit="step", file=io.StringIO(), leave=False)
    bar.update(3)
    bar.close()
    assert "[train x] 3/3 step in" in capsys.readouterr().err


# --- 3. evaluating any folder ------------------------------------------------------------------


def make_folder(root: Path, n: int, seed: int) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = np.zeros((16, 16), np.uint8)
        x, y = rng.integers(2, 10, 2)
        img[y : y + 5, x : x + 5] = 200 + rng.integers(0, 55)
        Image.fromarray(img).save(root / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("folder")
    data = make_folder(root / "imgs", 100, 0)
    cfg = {
        "data": {"name": f"folder:{data}", "image_size": 16, "channels": 1},
        "scheme": "independent",
        "members": [
            {"name": f"g{s}", "model": {"name": "dcgan", "ngf": 8, "ndf": 8}, "seed": s} for s in range(2)
        ],
        "train": {"steps": 5, "batch_size": 16, "checkpoint_every": 5},
    }
    return Path(train_run(write_config(root / "c.yaml", cfg), root / "R"))


def test_a_100_image_folder_is_refused_clearly_or_evaluated_with_n_stated(folder_run, tmp_path, capsys):
    code, _, err = run_cli(capsys, "evaluate", str(folder_run))
    one_line_error(code, err, "only 5 real images to compare against")
    assert not (folder_run / "evaluation.json").exists()
    ref = make_folder(tmp_path / "ref", 60, 1)
    code, out, err = run_cli(
        capsys,
        "evaluate",
        str(folder_run),
        "--reference",
        str(ref),
        "--features",
        "pixels",
        "--fusion",
        "uniform",
    )
    assert code == 0, err
    assert "n = 60 per row" in out and str(ref) in out and "n = 60 < 500" in out
    saved = json.loads((folder_run / "evaluation.json").read_text())
    assert saved["n"] == 60 and saved["features"] == "pixels" and str(ref) in saved["reference"]
    assert np.isfinite(saved["rows"]["g0"]["fid"])


def test_the_dry_run_states_the_size_and_channels_it_found_in_a_folder(tmp_path):
    import yaml

    data = make_folder(tmp_path / "imgs", 40, 0)
    cfg = {
        "data": {"name": f"folder:{data}"},  # size and channels left to the images
        "members": [{"name": "g", "model": {"name": "dcgan", "ngf": 8, "ndf": 8}, "seed": 0}],
        "train": {"steps": 5, "batch_size": 8},
    }
    text = train_run(write_config(tmp_path / "c.yaml", cfg), dry_run=True)
    shown = yaml.safe_load(text)
    assert (shown["data"]["image_size"], shown["data"]["channels"]) == (16, 1)
    assert (shown["members"][0]["model"]["image_size"], shown["members"][0]["model"]["channels"]) == (16, 1)
    assert "as found in the data (1×16×16)" in text and "# estimated time here: about" in text
    assert parse_config(shown).data.image_size == 16  # what it prints is a config that trains the same run


def test_score_says_how_few_real_images_it_calibrated_on(folder_run, capsys):
    code, out, err = run_cli(capsys, "score", str(folder_run), "--json", "-n", "20")
    assert code == 0 and "only 10 held-out real images" in err
    assert json.loads(out)["n_real"] == 10


# --- 4. the report -----------------------------------------------------------------------------


def test_precision_of_a_collapsed_generator_is_not_crowned():
    collapsed = {"precision": 0.99, "recall": 0.01}
    assert not crownable("precision", collapsed) and crownable("fid", collapsed)
    assert crownable("precision", {"precision": 0.8, "recall": RECALL_FLOOR})
    from gensemble.report import evaluation_table

    html = evaluation_table({"blob": collapsed, "good": {"precision": 0.7, "recall": 0.6}})
    assert '<td class="best">0.7</td>' in html and '<td class="best">0.99</td>' not in html


@pytest.mark.integration  # evaluate and report end to end: CI runs it in its second pass
def test_report_keeps_every_evaluation_and_marks_small_n(folder_run, tmp_path, capsys):
    ref = make_folder(tmp_path / "ref", 60, 2)
    for n in ("50", "60"):
        code, _, err = run_cli(
            capsys,
            "evaluate",
            str(folder_run),
            "--reference",
            str(ref),
            "--features",
            "pixels",
            "-n",
            n,
            "--metrics",
            "fid",
        )
        assert code == 0, err
    code, _, err = run_cli(
        capsys, "report", str(folder_run), "-o", str(tmp_path / "r.html"), "--fusion", "uniform"
    )
    html = (tmp_path / "r.html").read_text()
    assert code == 0 and html.count("class='evaluation-meta'") >= 2
    assert "n = 50 per row" in html and "n = 60 per row" in html and "features: pixels" in html
    assert "small n" in html and str(ref) in html


# --- 5. fusions say how they pick --------------------------------------------------------------


def test_fusion_sampling_reports_acceptance_and_member_shares(folder_run, tmp_path, capsys):
    code, out, err = run_cli(
        capsys, "sample", str(folder_run), "-n", "16", "-o", str(tmp_path / "s.png"), "--fusion", "rejection"
    )
    assert code == 0, err
    assert "acceptance" in out and "g0" in out and "g1" in out
    s = gensemble.Samples(torch.zeros(10, 2), torch.tensor([0] * 10), ["a", "b"], acceptance_rate=0.5)
    assert s.shares() == {"a": 1.0, "b": 0.0} and "diversity is lost" in s.summary()


# --- 6. partly trained runs, and --step ---------------------------------------------------------


def test_undertrained_members_are_named_and_step_picks_a_checkpoint(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml")  # 6 steps, checkpoints at 3 and 6
    run = train_run(cfg, tmp_path / "R")
    config = tmp_path / "R" / "config.yaml"
    config.write_text(config.read_text().replace("steps: 6", "steps: 60"))
    with pytest.warns(UserWarning, match="trained less than the config's 60 steps: m0 \\(6/60\\)"):
        load_run(run)
    old, new = load_run(run, step=3), load_run(run, step=6)
    assert old.members[0].step == 3 and new.members[0].step == 6
    assert not torch.equal(
        next(old.members[0].model.G.parameters()), next(new.members[0].model.G.parameters())
    )
    code, _, err = run_cli(
        capsys, "sample", str(run), "-n", "4", "-o", str(tmp_path / "s.png"), "--step", "4"
    )
    one_line_error(code, err, "no checkpoint at total step 4 (the sum of every member's steps); kept: 3, 6")


# --- 7. export ---------------------------------------------------------------------------------


@pytest.mark.integration  # a real process: CI runs it in its second pass
def test_export_writes_torchscript_that_needs_only_torch(tmp_path, capsys):
    run = train_run(write_config(tmp_path / "c.yaml"), tmp_path / "R")
    code, _, err = run_cli(capsys, "export", str(run), "--member", "m0", "-o", str(tmp_path / "G.pt"))
    assert code == 0, err
    meta = json.loads((tmp_path / "G.json").read_text())
    assert meta["z_dim"] == 2 and meta["output_shape"] == [2]
    script = (
        "import json, torch\n"
        f"g = torch.jit.load({str(tmp_path / 'G.pt')!r})\n"
        "z = torch.zeros(3, 2)\n"
        "print(json.dumps(g(z).tolist()))\n"
    )
    # A fresh interpreter that never imports gensemble.
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    model = load_run(run).members[0].model
    assert torch.allclose(torch.tensor(json.loads(out)), model.decode(torch.zeros(3, 2)).detach(), atol=1e-6)


# --- 8. the Python API -------------------------------------------------------------------------


def test_top_level_api_takes_paths_dicts_and_typed_configs(tmp_path):
    from gensemble import complete, evaluate_run, load_run, report_run, sample, score_run, train_run  # noqa: F401

    run = train_run(dict(TINY_TOY), out=tmp_path / "A")
    typed = parse_config(dict(TINY_TOY))
    run_b = train_run(typed, out=tmp_path / "B")
    assert sample(run, 8).x.shape == (8, 2) and sample(run_b, 8).x.shape == (8, 2)
    with pytest.raises(ConfigError, match="YAML path, a dict or a RunConfig"):
        train_run(42, out=tmp_path / "C")
    with pytest.raises(ConfigError, match="needs out="):
        train_run(dict(TINY_TOY))
    with pytest.raises(AttributeError):
        gensemble.not_a_function  # noqa: B018


# --- 9. the quick start from any folder, and help for every argument ------------------------------


def test_example_configs_are_shipped_and_copied_from_any_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "configs", "list")
    assert code == 0 and "grid25-gan" in out and "demo" in out
    code, out, _ = run_cli(capsys, "configs", "copy", "grid25-gan")
    assert code == 0 and (tmp_path / "grid25-gan.yaml").is_file()
    code, _, err = run_cli(capsys, "configs", "copy", "grid25-gan")
    one_line_error(code, err, "already exists")
    code, _, err = run_cli(capsys, "configs", "copy", "nope")
    one_line_error(code, err, "no example config 'nope'")


def test_every_argument_has_help_and_devices_are_checked(capsys):
    from gensemble.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{name} {action.dest}"
        for name, sub in subparsers.choices.items()
        for action in sub._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert missing == []
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["sample", "R", "-o", "x.png", "--device", "gpu"])
    assert exc.value.code == 2
    code, _, err = run_cli(capsys, "train", "x.yaml", "--set", "train.device=tpu")
    assert code == 2


def test_a_gpu_index_that_is_not_there_is_one_line(tmp_path, capsys):
    if torch.cuda.is_available() and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    cfg = write_config(tmp_path / "c.yaml")
    code, _, err = run_cli(capsys, "train", str(cfg), "--device", "cuda:7", "--out", str(tmp_path / "R"))
    one_line_error(code, err, "cuda:7")
    assert not (tmp_path / "R").exists()


@pytest.mark.integration
def test_the_readme_python_script_runs_as_written(tmp_path, monkeypatch, capsys):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    script = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(script.strip().splitlines()) <= 10
    monkeypatch.chdir(tmp_path)
    exec(compile(script, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "S(G)" in out or "generator" in out.lower()
    assert "members:" in out and "real:train-vs-test" in out


@pytest.mark.integration  # times real training: CI runs it in its second pass
def test_dry_run_estimates_the_training_time(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml")
    code, out, _ = run_cli(capsys, "train", str(cfg), "--dry-run", "--set", "train.steps=1000000")
    assert code == 0 and "# estimated time here: about" in out and "1000000 steps" in out
    assert not any(tmp_path.glob("R*"))


def test_the_estimate_chooses_threads_as_the_run_does_and_prices_its_probing(monkeypatch):
    """The dry run times the count the run's tuner will keep (alternating, by median) and adds the
    steps the tuner spends at the other count; a dry run started for the purpose adds its own age,
    an older process only its data's loading."""
    import time

    from gensemble.run import budget

    class Scheme:  # a step costs 1 ms on one thread, 4 ms on two (a busy neighbour's machine)
        done = 0

        def train(self, ens, data, hook, executor):
            time.sleep((ens.cfg.train.steps - self.done) * (0.001 if torch.get_num_threads() == 1 else 0.004))
            self.done = ens.cfg.train.steps

    monkeypatch.setattr(threads, "auto_choices", lambda: (1, 2))
    cfg = parse_config({**TINY_TOY, "train": {**TINY_TOY["train"], "steps": 1000}})
    ens = argparse.Namespace(cfg=cfg)
    before = torch.get_num_threads()
    try:
        done, per_step, tuning = budget.pick_threads(ens, cfg, None, Scheme(), None, 0)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    probed = threads.PROBE_ROUNDS * (threads.PROBE_STEPS + 1)
    assert done == 2 * threads.PROBE_ROUNDS * budget.CHUNK_STEPS
    assert per_step < 0.0025 and 0.5 * 0.003 * probed < tuning < 3 * 0.003 * probed
    assert budget.process_age() > 0  # this test's own process, read from /proc
    monkeypatch.setattr(budget, "process_age", lambda: 4.0)
    assert budget.startup_seconds(1.5) == 4.0
    monkeypatch.setattr(budget, "process_age", lambda: 3600.0)  # a notebook's process
    assert budget.startup_seconds(1.5) == 1.5


def test_a_resumed_run_estimates_only_the_steps_it_has_left(tmp_path, monkeypatch, capsys):
    import gensemble.run as run_module

    asked: list[float] = []
    monkeypatch.setattr(run_module, "LONG_RUN_STEPS", 1)
    monkeypatch.setattr(
        run_module, "estimate_seconds", lambda cfg, data, dev, left: asked.append(left) or 1.0
    )
    train_run(TINY_TOY, tmp_path / "R")
    assert asked == [1.0]
    train_run(TINY_TOY, tmp_path / "R", ["train.steps=12"], resume=True)
    assert asked == [1.0, 0.5]  # 6 of 12 steps left
    assert "for the steps left" in capsys.readouterr().err


def labelled_folder(root: Path, n: int) -> tuple[Path, Path]:
    """n 16×16 images of two classes a labeller can tell apart (a square top-left or bottom-right,
    sub/folder for half of them) and their labels CSV, with a header and file names as written."""
    rng = np.random.default_rng(5)
    rows = ["file,label"]
    for i in range(n):
        img = np.zeros((16, 16), np.uint8)
        corner = i % 2
        y, x = (1, 1) if corner == 0 else (9, 9)
        img[y : y + 6, x : x + 6] = 150 + rng.integers(0, 100)
        sub = root / ("sub" if i % 4 == 0 else ".")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(sub / f"{i:03d}.png")
        rows.append(
            f"{(sub / f'{i:03d}.png').relative_to(root).as_posix()},{'top-left' if corner == 0 else 'bottom-right'}"
        )
    csv = root.parent / "labels.csv"
    csv.write_text("\n".join(rows) + "\n")
    return root, csv


def test_labels_give_per_class_coverage_and_class_matched_fid(folder_run, tmp_path, capsys):
    ref, csv = labelled_folder(tmp_path / "ref", 60)
    args = ["evaluate", str(folder_run), "--reference", str(ref), "--features", "pixels", "-n", "50"]
    code, out, err = run_cli(capsys, *args, "--metrics", "fid", "--labels", str(csv))
    assert code == 0, err
    saved = json.loads((folder_run / "evaluation.json").read_text())
    table = saved["per_class"]
    assert table["classes"] == ["bottom-right", "top-left"] and "your labels" in table["by"]
    from gensemble.data.images import list_images

    named = dict(line.split(",") for line in csv.read_text().splitlines()[1:])
    first = [named[p.relative_to(ref).as_posix()] for p in list_images(ref)[:50]]  # the n scored
    assert table["reference"] == [first.count("bottom-right") / 50, first.count("top-left") / 50]
    accuracy = float(table["by"].split("% accurate")[0].rsplit(" ", 1)[1])
    assert accuracy >= 90, table["by"]  # the two corners are easy to tell apart on pixels
    assert all(abs(sum(s) - 1) < 1e-3 for s in table["rows"].values())
    assert np.isfinite(saved["rows"]["g0"]["fid_matched"])
    # Bad label files: one line each, exit 2, and evaluation.json as it was.
    before = (folder_run / "evaluation.json").read_bytes()
    lines = csv.read_text().splitlines()
    cases = {
        "no class for 1 of the 60": "\n".join(lines[:-1]),
        "matches no image": "\n".join([*lines, "nothere.png,top-left"]),
        "is not 'file,label'": "\n".join([*lines[:3], "001.png"]),
        "names one class only": "\n".join(line.rsplit(",", 1)[0] + ",x" for line in lines[1:]),
    }
    for why, text in cases.items():
        csv.write_text(text + "\n")
        code, _, err = run_cli(capsys, *args, "--labels", str(csv))
        assert code == 2 and why in err and "Traceback" not in err, (why, err)
    code, _, err = run_cli(capsys, "evaluate", str(folder_run), "--labels", str(csv))
    assert code == 2 and "pass --reference FOLDER with it" in err
    assert (folder_run / "evaluation.json").read_bytes() == before


class CornerNet(torch.nn.Module):
    """Logits (top-left, bottom-right) from the brightness of each corner of a 16×16 image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tl = x[:, :, :8, :8].mean(dim=(1, 2, 3))
        br = x[:, :, 8:, 8:].mean(dim=(1, 2, 3))
        return torch.stack([tl, br], dim=1) * 10.0


class FlatNet(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3))


def test_a_torchscript_classifier_classes_the_reference_and_every_sample(folder_run, tmp_path, capsys):
    ref, _ = labelled_folder(tmp_path / "ref", 60)
    clf = tmp_path / "corners.pt"
    torch.jit.save(torch.jit.script(CornerNet()), str(clf))
    args = ["evaluate", str(folder_run), "--reference", str(ref), "--features", "pixels", "-n", "50"]
    code, _, err = run_cli(capsys, *args, "--metrics", "fid", "--labels", str(clf))
    assert code == 0, err
    table = json.loads((folder_run / "evaluation.json").read_text())["per_class"]
    assert table["classes"] == ["class 0", "class 1"] and "your classifier" in table["by"]
    from gensemble.data.images import list_images

    first = list_images(ref)[:50]  # the n scored; even files are bright top-left (class 0)
    top_left = sum(int(p.stem) % 2 == 0 for p in first) / 50
    assert table["reference"] == [top_left, 1 - top_left]
    assert all(abs(sum(s) - 1) < 1e-3 for s in table["rows"].values())
    # Not TorchScript, or not a classifier: one line each, exit 2, evaluation.json as it was.
    before = (folder_run / "evaluation.json").read_bytes()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    flat = tmp_path / "flat.pt"
    torch.jit.save(torch.jit.script(FlatNet()), str(flat))
    for path, why in ((junk, "is not a TorchScript classifier"), (flat, "must return logits")):
        code, _, err = run_cli(capsys, *args, "--labels", str(path))
        assert code == 2 and why in err and "Traceback" not in err, (why, err)
    assert (folder_run / "evaluation.json").read_bytes() == before
