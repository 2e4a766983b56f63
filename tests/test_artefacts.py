"""Run artefacts as trustworthy as checkpoints: every JSON a run holds is read through a validator,
a command's outputs land all or nothing, one writer holds a run at a time, SIGTERM is handled like
Ctrl-C, and a failed resume changes no byte."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gensemble import checkpoint as ckpt
from gensemble import runfolder
from gensemble.artefacts import ArtefactError, check_completion, check_timings, dumps, read_artefact
from gensemble.errors import GensembleError
from gensemble.evaluation.evaluate import evaluate_run
from gensemble.report import report_run
from gensemble.run import train_run
from gensemble.runfolder import COMMIT_FILE, TXN_PREFIX, Outputs, recover, run_lock
from gensemble.tournament import score_run

from helpers import PAIR, assert_one_line_error, files_of, run_cli, write_config


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> Path:
    """A 2-member toy run with its tournament, an evaluation (uniform, weighted) and grids saved."""
    root = tmp_path_factory.mktemp("artefacts")
    (root / "c.yaml").write_text(PAIR)
    run = Path(train_run(root / "c.yaml", root / "run"))
    score_run(run, n_samples=200)
    evaluate_run(run, n=200, fusions=("uniform", "weighted"))
    return run


@pytest.fixture
def run(scored, tmp_path) -> Path:
    shutil.copytree(scored, tmp_path / "run")
    return tmp_path / "run"


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


TOURNAMENT_DAMAGE = {
    "matrix-a-string": lambda t: t.update(matrix="abc"),
    "generators-a-number": lambda t: t.update(generators=5),
    "generators-null": lambda t: t.update(generators=None),
    "ragged-matrix": lambda t: t["matrix"][0].pop(),
    "ten-thousand-generators": lambda t: t.update(generators=[f"g{i}" for i in range(10_000)]),
    "three-by-five": lambda t: t.update(matrix=[[0.5] * 5] * 3),
    "all-nan": lambda t: t.update(matrix=[[float("nan")] * len(r) for r in t["matrix"]]),
    "a-stranger": lambda t: t.update(generators=["alpha", "mallory"]),
    "scores-too-short": lambda t: t.update(generator_scores=[0.5]),
}


@pytest.mark.parametrize("kind", sorted(TOURNAMENT_DAMAGE))
def test_a_damaged_tournament_is_one_error_in_every_command_that_reads_it(run, tmp_path, capsys, kind):
    edit_json(run / "tournament.json", TOURNAMENT_DAMAGE[kind])
    before = files_of(run)
    for argv in (
        ("report", str(run)),
        ("sample", str(run), "--fusion", "weighted", "-n", "8", "-o", str(tmp_path / "s.png")),
        ("evaluate", str(run), "--fusion", "weighted", "-n", "50"),
    ):
        code, _, err = run_cli(capsys, *argv)
        assert_one_line_error(code, err, "tournament.json", f"gensemble score {run}")
    assert files_of(run) == before  # nothing was rewritten on the way to the error


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_in_evaluation_json_are_refused_not_rendered(run, capsys, text):
    raw = (run / "evaluation.json").read_text()
    first = next(v for v in json.loads(raw)["rows"]["alpha"].values() if isinstance(v, float))
    (run / "evaluation.json").write_text(raw.replace(json.dumps(first), text, 1))
    code, _, err = run_cli(capsys, "report", str(run))
    assert_one_line_error(code, err, "evaluation.json", "gensemble evaluate")


EVALUATION_DAMAGE = {
    "rows-a-list": lambda e: e.update(rows=[1, 2]),
    "metric-a-string": lambda e: e["rows"]["alpha"].update(kl="low"),
    "unknown-row": lambda e: e["rows"].update(mallory={"fid": 1.0}),
    "n-a-string": lambda e: e.update(n="many"),
    "choice-not-text": lambda e: e.update(choices={"fusion:auto": {"chosen": 5}}),
    "share-above-one": lambda e: e.update(member_shares={"fusion:uniform": {"alpha": 3.0}}),
    "per-class-short": lambda e: e.update(
        per_class={"by": "x", "classes": ["a", "b"], "reference": [1.0], "rows": {}, "worst": {}}
    ),
    "per-class-exemplars-outside": lambda e: e.update(
        per_class={
            "by": "x",
            "classes": ["a", "b"],
            "reference": [0.5, 0.5],
            "rows": {},
            "exemplars": "../config.yaml",
        }
    ),
    "per-class-unknown-worst": lambda e: e.update(
        per_class={
            "by": "x",
            "classes": ["a", "b"],
            "reference": [0.5, 0.5],
            "rows": {"alpha": [0.9, 0.1]},
            "worst": {"alpha": {"class": "z", "ratio": 0.2}},
        }
    ),
}


@pytest.mark.parametrize("kind", sorted(EVALUATION_DAMAGE))
def test_a_damaged_evaluation_is_one_error(run, capsys, kind):
    edit_json(run / "evaluation.json", EVALUATION_DAMAGE[kind])
    code, _, err = run_cli(capsys, "report", str(run))
    assert_one_line_error(code, err, "evaluation.json", "gensemble evaluate")


@pytest.mark.parametrize(
    "index", [{"alpha": "../config.yaml"}, {"alpha": "gone.png"}, ["alpha.png"], {"mallory": "alpha.png"}]
)
def test_a_damaged_grid_index_is_one_error(run, capsys, index):
    (run / "samples" / "index.json").write_text(json.dumps(index))
    code, _, err = run_cli(capsys, "report", str(run))
    assert_one_line_error(code, err, "index.json", "gensemble evaluate")


def test_completion_and_timings_are_checked(tmp_path):
    path = tmp_path / "completion" / "completion.json"
    good = {
        "members": ["a", "b"],
        "n": 2,
        "hole": "box",
        "columns": ["image", "a", "b", "the choice"],
        "chosen": ["a", "b"],
        "hole_mse": {"a": 0.1, "b": 0.2, "choice": 0.1, "oracle": 0.05},
    }
    assert check_completion(good, path, ["a", "b"]) is good
    for bad in (
        {**good, "chosen": ["a"]},  # fewer choices than images
        {**good, "chosen": ["a", "z"]},  # a choice that is no candidate
        {**good, "hole_mse": {"a": -1.0}},
        {**good, "members": ["a", "mallory"]},
        {**good, "n": True},
    ):
        with pytest.raises(ArtefactError, match="gensemble complete"):
            check_completion(bad, path, ["a", "b"])
    timings = tmp_path / "timings.json"
    assert check_timings({"train": 1.5, "score": 2}, timings) == {"train": 1.5, "score": 2.0}
    for bad in ({"train": "slow"}, {"train": -1}, [1, 2]):
        with pytest.raises(ArtefactError, match="gensemble demo"):
            check_timings(bad, timings)


def test_what_we_write_we_can_read_back():
    """Writers turn NaN into null, since the strict reader refuses NaN (JSON has none)."""
    assert json.loads(dumps({"a": float("nan"), "b": [float("inf"), 1.0]})) == {"a": None, "b": [None, 1.0]}


# --- all or nothing ---------------------------------------------------------------------------------
def test_outputs_land_together_and_a_failure_before_the_commit_changes_nothing(tmp_path, monkeypatch):
    (tmp_path / "a.json").write_text("old a")
    out = Outputs(tmp_path)
    out.add(tmp_path / "a.json", "new a")
    out.add(tmp_path / "sub" / "b.png", b"new b")
    original = runfolder.atomic_write_text
    monkeypatch.setattr(runfolder, "atomic_write_text", lambda *a: (_ for _ in ()).throw(OSError(28, "full")))
    with pytest.raises(OSError):
        out.commit()
    assert (tmp_path / "a.json").read_text() == "old a" and not (tmp_path / "sub" / "b.png").exists()
    assert not list(tmp_path.glob(f"{TXN_PREFIX}*"))
    monkeypatch.setattr(runfolder, "atomic_write_text", original)
    out.commit()
    assert (tmp_path / "a.json").read_text() == "new a" and (
        tmp_path / "sub" / "b.png"
    ).read_bytes() == b"new b"
    assert not list(tmp_path.glob(f"{TXN_PREFIX}*"))


def test_a_set_killed_mid_move_is_finished_by_the_next_command(tmp_path, monkeypatch):
    for name in ("a", "b", "c"):
        (tmp_path / name).write_text(f"old {name}")
    out = Outputs(tmp_path)
    for name in ("a", "b", "c"):
        out.add(tmp_path / name, f"new {name}")
    moved = []

    def die_after_one(src, dest):  # SIGKILL after the first rename: no Python cleanup runs
        if moved:
            raise SystemExit("killed")
        moved.append(dest)
        os.rename(src, dest)

    monkeypatch.setattr(runfolder.os, "replace", die_after_one)
    with pytest.raises(SystemExit):
        out.commit()
    monkeypatch.undo()
    [txn] = tmp_path.glob(f"{TXN_PREFIX}*")
    assert (txn / COMMIT_FILE).is_file()
    # Pretend the dead process was another one: its PID is in the staging folder's name.
    txn.rename(tmp_path / f"{TXN_PREFIX}999999999-x")
    assert recover(tmp_path) == 1
    assert [(tmp_path / n).read_text() for n in "abc"] == ["new a", "new b", "new c"]
    assert not list(tmp_path.glob(f"{TXN_PREFIX}*"))


def test_an_uncommitted_set_is_dropped_and_stray_temporaries_removed(tmp_path):
    (tmp_path / "a").write_text("old")
    txn = tmp_path / f"{TXN_PREFIX}999999999-y"
    txn.mkdir()
    (txn / "0").write_text("half")
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / ".alpha.png.abc.tmp").write_bytes(b"half")
    assert recover(tmp_path) == 2
    assert (tmp_path / "a").read_text() == "old" and not txn.exists()
    assert not (tmp_path / "samples" / ".alpha.png.abc.tmp").exists()


def test_a_folder_in_the_way_is_found_before_anything_moves(tmp_path):
    (tmp_path / "G.pt").write_bytes(b"old")
    (tmp_path / "G.json").mkdir()
    out = Outputs(tmp_path)
    out.add(tmp_path / "G.pt", b"new")
    out.add(tmp_path / "G.json", "{}")
    with pytest.raises(GensembleError, match="a folder is in the way"):
        out.commit()
    assert (tmp_path / "G.pt").read_bytes() == b"old"


def test_export_leaves_no_half_output(scored, tmp_path, capsys):
    (tmp_path / "G.json").mkdir()  # G.json cannot be written
    code, _, err = run_cli(capsys, "export", str(scored), "--member", "alpha", "-o", str(tmp_path / "G.pt"))
    assert_one_line_error(code, err, "G.json")
    assert not (tmp_path / "G.pt").exists()


# --- one writer -------------------------------------------------------------------------------------
HOLD = (
    "import sys, time\n"
    "from gensemble.runfolder import run_lock\n"
    "with run_lock(sys.argv[1], 'train'):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(60)\n"
)


def gensemble(*argv: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "GENSEMBLE_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "gensemble", "--quiet", *argv], capture_output=True, text=True, env=env, **kw
    )


@pytest.mark.integration  # real processes and signals: CI runs it in its second pass
def test_a_second_writer_is_refused_with_the_holders_pid(run, tmp_path, capsys):
    """Two real processes: one holds the run (as `train` does), the other tries to write into it."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = files_of(run)
        done = gensemble("evaluate", str(run), "-n", "50", timeout=120)
        assert_one_line_error(done.returncode, done.stderr, f"PID {holder.pid}", "in use")
        cfg = tmp_path / "c.yaml"
        cfg.write_text(PAIR)
        for argv in (("score", str(run), "-n", "50"), ("train", str(cfg), "--out", str(run), "--resume")):
            code, _, err = run_cli(capsys, *argv)
            assert_one_line_error(code, err, f"PID {holder.pid}")
        # A reader is let through, and says which checkpoint it used while the run is being written.
        code, _, err = run_cli(capsys, "sample", str(run), "-n", "4", "-o", str(tmp_path / "s.png"))
        assert code == 0 and "is being written by" in err and "total step 60" in err
        assert files_of(run) == before
    finally:
        holder.kill()
        holder.wait()
    with run_lock(run, "score"):  # released with its holder
        pass


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with run_lock(tmp_path, "demo"), run_lock(tmp_path, "evaluate"):
        assert runfolder.holder(tmp_path) is None  # we hold it; readers in this process see no other
    with run_lock(tmp_path, "train"):
        pass


def test_a_failed_train_into_a_new_folder_leaves_no_folder(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml")
    code, _, err = run_cli(
        capsys, "train", str(cfg), "--out", str(tmp_path / "new"), "--set", "train.steps=0"
    )
    assert code == 2 and not (tmp_path / "new").exists()


# --- resume ------------------------------------------------------------------------------------------
def test_resume_past_a_symlinked_checkpoint_falls_back_and_touches_nothing_outside(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml")
    straight = Path(train_run(cfg, tmp_path / "A", ["train.steps=9"]))
    run = Path(train_run(cfg, tmp_path / "B", ["train.steps=6"]))
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    shutil.rmtree(run / "checkpoints" / "step-00000006")
    (run / "checkpoints" / "step-00000006").symlink_to(target)
    code, _, err = run_cli(capsys, "train", str(cfg), "--out", str(run), "--resume", "--set", "train.steps=9")
    assert code == 0, err
    assert "newest complete checkpoint, step-00000003" in err
    assert (target / "keep.txt").read_text() == "mine" and len(list(target.iterdir())) == 1
    a = load_file(str(ckpt.latest_checkpoint(straight) / "weights.safetensors"))
    b = load_file(str(ckpt.latest_checkpoint(run) / "weights.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # continued exactly from step 3


def _symlink_every_checkpoint(run: Path, tmp_path: Path) -> None:
    for folder in (run / "checkpoints").glob("step-*"):
        shutil.rmtree(folder)
        folder.symlink_to(tmp_path)


RESUME_FAILURES = {
    "another-config": (["--set", "seed=5"], "different run"),
    "non-ascii-digit": (["--set", "train.steps=٣"], "train.steps"),
    "no-readable-checkpoint": (["--set", "train.steps=9"], "checkpoint"),
    "steps-zero": (["--set", "train.steps=0"], "train.steps"),
}


@pytest.mark.parametrize("kind", sorted(RESUME_FAILURES))
def test_every_failed_resume_leaves_the_run_byte_identical(tmp_path, capsys, kind):
    cfg = write_config(tmp_path / "c.yaml")
    run = Path(train_run(cfg, tmp_path / "R", ["train.steps=6"]))
    if kind == "no-readable-checkpoint":
        _symlink_every_checkpoint(run, tmp_path)
    before = files_of(run)
    extra, needle = RESUME_FAILURES[kind]
    code, _, err = run_cli(capsys, "train", str(cfg), "--out", str(run), "--resume", *extra)
    assert_one_line_error(code, err, needle)
    assert files_of(run) == before


def test_a_busy_run_refuses_resume_byte_identically(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml")
    run = Path(train_run(cfg, tmp_path / "R", ["train.steps=6"]))
    before = files_of(run)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = run_cli(
            capsys, "train", str(cfg), "--out", str(run), "--resume", "--set", "train.steps=9"
        )
        assert_one_line_error(code, err, f"PID {holder.pid}")
    finally:
        holder.kill()
        holder.wait()
    assert files_of(run) == before


# --- signals -----------------------------------------------------------------------------------------
EVAL_SET = ("evaluation.json", "samples/index.json")


def evaluation_set(run: Path) -> dict[str, int]:
    """Inode of every file evaluate writes (a replaced file has a new inode, even with equal bytes)."""
    index = json.loads((run / "samples" / "index.json").read_text())
    files = [
        *EVAL_SET,
        *(f"samples/{n}" for n in index.values()),
        *(p.relative_to(run) for p in (run / "evaluations").glob("*.json")),
    ]
    return {str(f): (run / f).stat().st_ino for f in files}


@pytest.mark.integration  # real processes and signals: CI runs it in its second pass
def test_sigterm_during_evaluate_exits_143_with_one_line_and_keeps_the_old_set(run):
    before_bytes, before_set = files_of(run), evaluation_set(run)
    env = {**os.environ, "GENSEMBLE_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gensemble",
            "evaluate",
            str(run),
            "--fusion",
            "uniform",
            "weighted",
            "-n",
            "200",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    first = proc.stderr.readline()  # the first progress line: the handler is installed by now
    assert "[evaluate]" in first or "warning" in first, first
    proc.send_signal(signal.SIGTERM)
    err = first + proc.stderr.read()
    assert proc.wait(timeout=60) == 143, err
    lines = [line for line in err.splitlines() if line.startswith("gensemble:") and "warning" not in line]
    assert lines == [lines[0]] and "terminated (SIGTERM)" in lines[0] and "evaluation.json" in lines[0], err
    assert "Traceback" not in err and "checkpoint" not in lines[0]
    assert evaluation_set(run) == before_set and files_of(run) == before_bytes
    assert report_run(run, run.parent / "r.html").is_file()  # the kept set still renders
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(TXN_PREFIX)]


# --- the small ones -----------------------------------------------------------------------------------
def test_a_folder_too_small_to_hold_out_is_refused_at_train(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "one.png")
    model = {"name": "dcgan", "ngf": 4, "ndf": 4, "z_dim": 8}
    cfg = write_config(
        tmp_path / "c.yaml", data={"name": f"folder:{folder}", "image_size": 8, "channels": 1}, model=model
    )
    code, _, err = run_cli(capsys, "train", str(cfg), "--out", str(tmp_path / "R"))
    assert_one_line_error(code, err, "holds 1 example", "at least 35")
    assert not (tmp_path / "R").exists()


@pytest.mark.parametrize("digit", ["٣", "５", "³"])
def test_numbers_in_set_are_ascii_digits_only(tmp_path, capsys, digit):
    cfg = write_config(tmp_path / "c.yaml")
    code, _, err = run_cli(capsys, "train", str(cfg), "--dry-run", "--set", f"train.steps={digit}")
    assert_one_line_error(code, err, "train.steps")


def test_a_read_of_a_missing_artefact_is_none_and_of_a_folder_an_error(tmp_path):
    assert read_artefact("tournament", tmp_path / "tournament.json") is None
    (tmp_path / "tournament.json").mkdir()
    with pytest.raises(ArtefactError, match="not a regular file"):
        read_artefact("tournament", tmp_path / "tournament.json")


# --- saved judges ------------------------------------------------------------------------------------
def test_score_saves_its_judges_and_evaluate_reuses_them(run, monkeypatch, capsys):
    import gensemble.tournament as tournament

    assert (run / "judges.safetensors").is_file() and (run / "judges.json").is_file()
    fits = []
    real_fit = tournament.fit_judges
    # Only the tournament's judges (fine-tuned Ds) are saved; the feature judge rejection also tries
    # costs seconds and is fitted in each context.
    monkeypatch.setattr(
        tournament,
        "fit_judges",
        lambda *a, **k: a[3].kind == "finetuned" and fits.append(1) or real_fit(*a, **k),
    )
    evaluate_run(run, n=100, fusions=("rejection",))
    assert fits == []  # the judges `score` fitted, read back
    meta = json.loads((run / "judges.json").read_text())
    meta["step"] = 999  # another checkpoint's judges are not reused: fitted afresh and saved again
    (run / "judges.json").write_text(json.dumps(meta))
    evaluate_run(run, n=100, fusions=("rejection",))
    assert fits == [1] and json.loads((run / "judges.json").read_text())["step"] == 60
    (run / "judges.json").write_text('{"judges": 5}')
    code, _, err = run_cli(capsys, "evaluate", str(run), "-n", "100", "--fusion", "rejection")
    assert_one_line_error(code, err, "judges.json", f"gensemble score {run}")
