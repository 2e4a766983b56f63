"""Hostile run folders: forged commit records, links at every component of every artefact, special
files, huge numbers and oversized files, opened by every command that opens a run or writes into
an output folder. Whatever the folder holds, no byte outside it may change, no byte from outside
may appear in any output, and every command ends in success or one line (exit 0 or 2), never a
traceback or a hang. benchmarks/bad_inputs.py runs the same strategy over thousands of folders."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import stat
import threading
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gensemble.cli import main as cli_main
from gensemble.evaluation.evaluate import evaluate_run
from gensemble.run import train_run
from gensemble.tournament import score_run

from helpers import PAIR, assert_one_line_error, run_cli  # noqa: E402

# Real commands on sandboxed run folders: CI runs the module in its second pass (pytest -m integration)
pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::UserWarning")]

SECRET = b"GENSEMBLE-OUTSIDE-SECRET-5f1c9e2a\n" * 4
VICTIM = b"# the user's own file: must never change\n"
# Every entry a run folder may hold that some command reads or writes.
ENTRIES = (
    "config.yaml",
    "tournament.json",
    "evaluation.json",
    "evaluations",
    "samples",
    "samples/index.json",
    "completion",
    "completion/panel.png",
    "completion/completion.json",
    "checkpoints",
    "latest.json",
    "metrics.jsonl",
    "timings.json",
    ".lock",
    "tb",
    "snapshots",
    "judges.safetensors",
    "heldout.txt",
)
JSON_FILES = (
    "tournament.json",
    "evaluation.json",
    "completion/completion.json",
    "timings.json",
    "latest.json",
)
# Commands and their arguments: {run}, {out} and {cfg} are filled in per folder.
COMMANDS = {
    "report": ["report", "{run}"],
    "report-o": ["report", "{run}", "-o", "{out}/elsewhere.html"],
    "evaluate": ["evaluate", "{run}", "-n", "60"],
    "evaluate-weighted": ["evaluate", "{run}", "-n", "60", "--fusion", "weighted"],
    "evaluate-rejection": ["evaluate", "{run}", "-n", "60", "--fusion", "rejection"],
    "score": ["score", "{run}", "-n", "60"],
    "sample": ["sample", "{run}", "-n", "16", "-o", "{out}/s.png"],
    "sample-weighted": ["sample", "{run}", "-n", "16", "--fusion", "weighted", "-o", "{out}/w.png"],
    "export": ["export", "{run}", "--member", "alpha", "-o", "{out}/export/G.pt"],
    "train-resume": ["train", "{cfg}", "--out", "{run}", "--resume"],
    # On a tiny image run (completion needs images): into the run, and into an output folder.
    "complete-heldout": ["complete", "{run}", "--heldout", "2"],
    "complete-image": [
        "complete",
        "{run}",
        "--image",
        "{root}/image.png",
        "--box",
        "4,4,8,8",
        "-o",
        "{out}/c.png",
    ],
}
IMAGE_COMMANDS = ("complete-heldout", "complete-image")
TINY_IMAGE_RUN = {
    "data": {"name": "digits", "image_size": 16},
    "scheme": "independent",
    "members": [
        {"name": "g1", "model": {"name": "dcgan", "ngf": 8, "ndf": 8}, "seed": 0},
        {"name": "v", "model": {"name": "vae", "width": 8, "z_dim": 8}, "seed": 2},
    ],
    "train": {"steps": 20, "batch_size": 32, "checkpoint_every": 20, "log_every": 10},
}


def build_image_run(root: Path) -> Path:
    """A tiny image run whose held-out completion (and its cost model, at the settings the commands
    use, so that only a damaged cache is refitted) is already saved, and an image to complete."""
    from gensemble.editing.files import complete_heldout

    root.mkdir(parents=True, exist_ok=True)
    (root / "c.yaml").write_text(yaml.safe_dump(TINY_IMAGE_RUN))
    run = Path(train_run(root / "c.yaml", root / "R"))
    complete_heldout(run, 2)
    shutil.copy(root / "c.yaml", root / "resume.yaml")
    Image.fromarray(np.full((16, 16), 200, np.uint8)).save(root / "image.png")
    return run


def build_clean_run(root: Path) -> Path:
    """A scored and evaluated toy run with a completion record and timings: every artefact."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "c.yaml").write_text(PAIR)
    run = Path(train_run(root / "c.yaml", root / "R"))
    score_run(run, n_samples=100)
    evaluate_run(run, n=100, fusions=("uniform", "rejection"))  # judges.safetensors saved too
    (run / "completion").mkdir()
    (run / "completion" / "panel.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    (run / "completion" / "completion.json").write_text(
        json.dumps(
            {
                "members": ["alpha", "beta"],
                "n": 2,
                "hole": "centre box",
                "columns": ["original", "masked input", "alpha", "beta", "the choice"],
                "chosen": ["alpha", "beta"],
                "hole_mse": {"alpha": 0.1, "beta": 0.2, "choice": 0.1, "oracle": 0.05},
            }
        )
    )
    (run / "timings.json").write_text(json.dumps({"train": 1.5, "score": 0.5, "evaluate": 2.0}))
    cfg = yaml.safe_load(PAIR)
    cfg["train"]["steps"] = 32  # a resume that trains two more steps
    (root / "resume.yaml").write_text(yaml.safe_dump(cfg))
    return run


@dataclass
class Sandbox:
    """ROOT/run (the hostile folder), ROOT/out (the user's output folder), ROOT/victim (everything
    else on the machine: the user's files, a secret, a folder shaped like a run's subfolders)."""

    root: Path
    run: Path = field(init=False)
    out: Path = field(init=False)
    victim: Path = field(init=False)

    def __post_init__(self) -> None:
        self.run, self.out, self.victim = self.root / "run", self.root / "out", self.root / "victim"


def make_sandbox(clean: Path, root: Path) -> Sandbox:
    box = Sandbox(root)
    shutil.copytree(clean, box.run, symlinks=True)
    shutil.copy(clean.parent / "resume.yaml", root / "resume.yaml")
    if (clean.parent / "image.png").exists():
        shutil.copy(clean.parent / "image.png", root / "image.png")
    box.out.mkdir()
    v = box.victim
    (v / "home").mkdir(parents=True)
    (v / "home" / ".bashrc").write_bytes(VICTIM)
    (v / "secret.txt").write_bytes(SECRET)
    # A folder that looks like each subfolder of a run, so a writer that follows a link is happy there.
    for sub in ("checkpoints", "evaluations", "samples", "completion", "snapshots", "tb"):
        shutil.copytree(box.run / sub, v / "dirs" / sub, symlinks=True) if (box.run / sub).is_dir() else (
            v / "dirs" / sub
        ).mkdir(parents=True)
        (v / "dirs" / sub / "victim.txt").write_bytes(VICTIM)
    (v / "dirs" / "checkpoints" / "step-00000001").mkdir(exist_ok=True)
    (v / "record.json").write_text(json.dumps({"files": [["0", str(v / "home" / ".bashrc")]]}))
    return box


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under `folder` (not following links): kind, mode, size and content hash."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st_ = p.lstat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st_.st_mode) else ""
            out[str(p.relative_to(folder))] = (stat.S_IFMT(st_.st_mode), st_.st_mode, st_.st_size, digest)
    return out


# --- the damage ------------------------------------------------------------------------------------
@st.composite
def forged_record(draw) -> dict:
    dest = draw(
        st.sampled_from(
            [
                "{victim}/home/.bashrc",
                "../victim/home/.bashrc",
                "../victim/new/deep/file",
                "a/../../victim/home/.bashrc",
                "evaluation.json",
                "samples/../../victim/x",
                "{victim}/home",
            ]
        )
    )
    src = draw(st.sampled_from(["0", "{victim}/secret.txt", "../../victim/secret.txt", "../0"]))
    return {
        "kind": "txn",
        "pid": draw(st.sampled_from([999999, 4194304, 2**40, 1])),
        "files": [[src, dest]],
        "signature": draw(st.sampled_from([None, "0" * 64, "zz"])),
        "commit_link": draw(st.booleans()),
        "in_out": draw(st.booleans()),
    }


DAMAGE = st.one_of(
    forged_record(),
    st.fixed_dictionaries(
        {
            "kind": st.just("link"),
            "entry": st.sampled_from(ENTRIES),
            "target": st.sampled_from(["secret", "dir", "home", "dangling", "self", "devzero"]),
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.just("special"),
            "entry": st.sampled_from(ENTRIES),
            "what": st.sampled_from(["fifo", "dir"]),
        }
    ),
    st.fixed_dictionaries(
        {
            "kind": st.just("huge"),
            "entry": st.sampled_from(JSON_FILES),
            "digits": st.sampled_from([17, 40, 400, 5000]),
        }
    ),
    st.fixed_dictionaries(
        {"kind": st.just("oversized"), "entry": st.sampled_from(JSON_FILES + ("metrics.jsonl",))}
    ),
    st.fixed_dictionaries({"kind": st.just("bomb")}),
)


def _clear(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.is_symlink() or path.exists():
        path.unlink()


def _linked_on_the_way(run: Path, path: Path) -> bool:
    """Whether a folder between RUN and `path` is already a link or not a folder (a second damage
    there would be the harness writing outside, not gensemble)."""
    return any(
        p.is_symlink() or (p.exists() and not p.is_dir())
        for p in path.parents
        if p != run and run in p.parents
    )


def apply_damage(box: Sandbox, d: dict) -> None:
    run, v = box.run, box.victim
    if d["kind"] == "txn":
        parent = box.out if d["in_out"] else run
        folder = parent / f".txn-{d['pid']}-forged{len(list(parent.glob('.txn-*')))}"
        folder.mkdir()
        (folder / "0").write_bytes(b"echo PWNED\n")
        files = [[s.format(victim=v), t.format(victim=v)] for s, t in d["files"]]
        record = {"files": files, **({"signature": d["signature"]} if d["signature"] else {})}
        (v / "record.json").write_text(json.dumps(record))
        if d["commit_link"]:
            (folder / "COMMIT.json").symlink_to(v / "record.json")
        else:
            (folder / "COMMIT.json").write_text(json.dumps(record))
        return
    if d["kind"] == "bomb":
        # A PNG header claiming 20000×20000 in a folder dataset's training images.
        return
    path = run / d["entry"]
    if _linked_on_the_way(run, path):
        return
    if d["kind"] == "link":
        _clear(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        name = Path(d["entry"]).name
        target = {
            "secret": v / "secret.txt",
            "dir": v / "dirs" / name if (v / "dirs" / name).exists() else v / "dirs" / "samples",
            "home": v / "home" / ".bashrc",
            "dangling": v / "nothing" / "here",
            "self": path,
            "devzero": Path("/dev/zero"),
        }[d["target"]]
        path.symlink_to(target)
    elif d["kind"] == "special":
        _clear(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path) if d["what"] == "fifo" else path.mkdir()
    elif d["kind"] == "huge" and path.is_file() and not path.is_symlink():
        text = path.read_text()
        big = "9" * d["digits"]
        # Replace the first number (or add one) with a huge integer.
        import re

        new, n = re.subn(r"(?<=[:\[,\s])-?\d+(\.\d+)?(?=[,\]\}\s])", big, text, count=1)
        path.write_text(new if n else text.rstrip().rstrip("}") + f', "x": {big}}}')
    elif d["kind"] == "oversized" and path.is_file() and not path.is_symlink():
        with open(path, "ab") as f:
            f.truncate(70 * 2**20)  # sparse: costs no disk


class Hang(BaseException):
    """A command ran past its limit (raised from SIGALRM)."""


@dataclass
class Outcome:
    code: int | None
    stderr: str
    problem: str | None  # None when the command behaved


def run_command(box: Sandbox, name: str, limit_s: int = 10) -> Outcome:
    """One command in-process against the sandbox, then every check: exit 0/2, one-line stderr, no
    traceback, no hang, no outside byte changed, no outside byte in any output."""
    argv = [
        a.format(run=box.run, out=box.out, cfg=box.root / "resume.yaml", root=box.root)
        for a in COMMANDS[name]
    ]
    before = snapshot(box.victim)
    err, out = io.StringIO(), io.StringIO()

    def alarm(signum, frame):
        raise Hang

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(limit_s)
    # A hang inside C code (a library opening a FIFO) never returns to Python for SIGALRM: after the
    # limit, a watchdog opens every FIFO of the sandbox for writing, which lets such a reader go.
    watchdog = threading.Timer(limit_s + 2, unblock_fifos, (box.root, hung := []))
    watchdog.start()
    code, problem = None, None
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = cli_main(["--quiet", *argv])
    except Hang:
        problem = f"hang over {limit_s} s"
    except BaseException as exc:  # anything escaping main is a traceback for the user
        problem = f"traceback: {type(exc).__name__}: {exc!s:.150}\n{traceback.format_exc(limit=4)}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        watchdog.cancel()
    if hung and problem is None:
        problem = f"hang over {limit_s} s in C code (a FIFO was opened): {hung[0]}"
    text = err.getvalue()
    if problem is None and code not in (0, 2):
        problem = f"exit code {code}"
    if problem is None and code == 2 and len([ln for ln in text.splitlines() if "error" in ln]) != 1:
        problem = f"not one error line: {text[-300:]!r}"
    if problem is None and "Traceback" in text:
        problem = "a traceback on stderr"
    after = snapshot(box.victim)
    if problem is None and after != before:
        changed = sorted(set(after.items()) ^ set(before.items()))
        problem = f"outside changed: {changed[:3]}"
    if problem is None:
        problem = leaked(box, text + out.getvalue())
    return Outcome(code, text, problem)


def unblock_fifos(root: Path, hung: list[str]) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            p = Path(dirpath) / name
            if stat.S_ISFIFO(p.lstat().st_mode):
                try:
                    fd = os.open(p, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:
                    continue  # nobody is reading it
                os.close(fd)
                hung.append(str(p.relative_to(root)))


def leaked(box: Sandbox, console: str) -> str | None:
    """Whether the secret's bytes (raw or base64, as a report inlines files) are in any output."""
    needles = [SECRET[:32], base64.b64encode(SECRET)[:40]]
    if any(n.decode() in console for n in needles):
        return "outside bytes on the console"
    for folder in (box.run, box.out):
        for dirpath, _, filenames in os.walk(folder):
            for name in filenames:
                p = Path(dirpath) / name
                if p.is_symlink() or not p.is_file() or p.stat().st_size > 50 * 2**20:
                    continue
                data = p.read_bytes()
                if any(n in data for n in needles):
                    return f"outside bytes in {p.relative_to(box.root)}"
    return None


def check_folder(
    clean: Path | tuple[Path, Path], root: Path, damage: list[dict], commands: list[str]
) -> list[str]:
    """Build one hostile folder per command (commands may change it), apply `damage`, run the
    command; the problems found, one string each. `clean`: the toy run, or (toy run, image run)."""
    problems = []
    toy, images = clean if isinstance(clean, tuple) else (clean, None)
    for name in commands:
        if name in IMAGE_COMMANDS and images is None:
            raise ValueError(f"{name} needs the image run")
        box_root = root / name
        box = make_sandbox(images if name in IMAGE_COMMANDS else toy, box_root)
        for d in damage:
            apply_damage(box, d)
        outcome = run_command(box, name)
        if outcome.problem is not None:
            problems.append(f"{name} {damage}: {outcome.problem}")
        shutil.rmtree(box_root, ignore_errors=True)
    return problems


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> Path:
    return build_clean_run(tmp_path_factory.mktemp("hostile-clean"))


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    return build_image_run(tmp_path_factory.mktemp("hostile-images"))


@pytest.mark.parametrize("name", IMAGE_COMMANDS)
def test_completion_never_obeys_a_forged_record_or_a_linked_folder(clean_run, image_run, tmp_path, name):
    forged = {
        "kind": "txn",
        "pid": 999999,
        "files": [["0", "{victim}/home/.bashrc"]],
        "signature": None,
        "commit_link": False,
        "in_out": name == "complete-image",
    }
    linked = {"kind": "link", "entry": "completion", "target": "dir"}
    assert check_folder((clean_run, image_run), tmp_path / "a", [forged], [name]) == []
    assert check_folder((clean_run, image_run), tmp_path / "b", [linked], [name]) == []


# --- each finding of the attack, reproduced --------------------------------------------------------
@pytest.mark.parametrize("commit_link", [False, True])
@pytest.mark.parametrize("name", ["report", "report-o", "evaluate", "score", "train-resume", "export"])
def test_a_forged_commit_record_is_never_obeyed(clean_run, tmp_path, name, commit_link):
    d = {
        "kind": "txn",
        "pid": 999999,
        "files": [["0", "{victim}/home/.bashrc"]],
        "signature": None,
        "commit_link": commit_link,
        "in_out": name == "export",
    }
    assert check_folder(clean_run, tmp_path, [d], [name]) == []


@pytest.mark.parametrize(
    "entry", ["completion/panel.png", "config.yaml", "samples", "samples/index.json", "evaluations"]
)
def test_the_report_never_inlines_a_file_from_outside(clean_run, tmp_path, entry):
    d = {"kind": "link", "entry": entry, "target": "secret" if "." in entry else "dir"}
    assert check_folder(clean_run, tmp_path, [d], ["report", "report-o"]) == []


@pytest.mark.parametrize("entry", ["judges.safetensors", "heldout.txt", "metrics.jsonl", "config.yaml"])
@pytest.mark.parametrize("name", ["evaluate-rejection", "sample-weighted", "report", "train-resume"])
def test_a_fifo_where_a_file_belongs_never_hangs(clean_run, tmp_path, entry, name):
    d = {"kind": "special", "entry": entry, "what": "fifo"}
    assert check_folder(clean_run, tmp_path, [d], [name]) == []


@pytest.mark.parametrize("entry", ["checkpoints", "evaluations", "samples", "completion", "tb"])
def test_writers_never_follow_a_linked_subfolder(clean_run, tmp_path, entry):
    d = {"kind": "link", "entry": entry, "target": "dir"}
    assert check_folder(clean_run, tmp_path, [d], ["evaluate", "train-resume"]) == []


@pytest.mark.parametrize(
    "entry", ["tournament.json", "evaluation.json", "timings.json", "completion/completion.json"]
)
def test_a_huge_integer_is_one_line(clean_run, tmp_path, entry):
    d = {"kind": "huge", "entry": entry, "digits": 400}
    assert check_folder(clean_run, tmp_path, [d], ["report", "sample-weighted"]) == []


def test_a_huge_integer_in_the_loss_log_is_skipped(clean_run, tmp_path):
    box = make_sandbox(clean_run, tmp_path / "b")
    (box.run / "metrics.jsonl").write_text('{"member": "alpha", "step": ' + "9" * 400 + ', "loss_d": 1}\n')
    assert run_command(box, "report").problem is None
    assert run_command(box, "train-resume").problem is None


@pytest.mark.parametrize("name", ["evaluate", "report-o", "train-resume"])
def test_a_fifo_or_link_as_lock_never_hangs_or_escapes(clean_run, tmp_path, name):
    for i, d in enumerate(
        [
            {"kind": "special", "entry": ".lock", "what": "fifo"},
            {"kind": "link", "entry": ".lock", "target": "dangling"},
        ]
    ):
        box = make_sandbox(clean_run, tmp_path / f"b{i}")
        apply_damage(box, d)
        outcome = run_command(box, name, limit_s=10)
        assert outcome.problem is None, outcome.problem
        assert not (box.victim / "nothing").exists()


def test_metrics_log_linked_to_dev_zero_is_refused_before_anything_is_written(clean_run, tmp_path):
    box = make_sandbox(clean_run, tmp_path / "b")
    apply_damage(box, {"kind": "link", "entry": "metrics.jsonl", "target": "devzero"})
    config_before = (box.run / "config.yaml").read_bytes()
    outcome = run_command(box, "train-resume")
    assert outcome.problem is None and outcome.code == 2, outcome
    assert "metrics.jsonl" in outcome.stderr
    assert (box.run / "config.yaml").read_bytes() == config_before


# --- the fuzzer ------------------------------------------------------------------------------------
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(damage=st.lists(DAMAGE, min_size=1, max_size=3), name=st.sampled_from(sorted(COMMANDS)))
def test_fuzzed_hostile_folders_change_nothing_outside(clean_run, image_run, tmp_path_factory, damage, name):
    root = tmp_path_factory.mktemp("hostile")
    assert check_folder((clean_run, image_run), root, damage, [name]) == []


# --- finding 7: every message says what is true, in one short line ---------------------------------
def test_a_lock_held_by_another_program_names_that_program(clean_run, tmp_path, capsys):
    import subprocess
    import sys
    import time

    box = make_sandbox(clean_run, tmp_path / "b")
    # the copied lock names the process that built the clean run (alive under xdist): clear it, so
    # only the other program's hold can name anyone
    (box.run / ".lock").write_text("")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl,sys,time; f=open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); print(1, flush=True); time.sleep(30)",
            str(box.run / ".lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        holder.stdout.readline()
        code, _, err = run_cli(capsys, "evaluate", str(box.run), "-n", "60")
        line = assert_one_line_error(code, err, f"PID {holder.pid}", "another program (")
        assert "a gensemble command" not in line
        # `report -o` elsewhere reads while the other program writes, and says so.
        warnings.simplefilter("always")  # (this module ignores UserWarnings elsewhere)
        code, _, err = run_cli(capsys, "report", str(box.run), "-o", str(box.out / "r.html"))
        assert code == 0 and "is writing into" in err and len(err.splitlines()[0]) < 400
    finally:
        holder.kill()
        holder.wait()
        time.sleep(0.1)


def test_sigterm_before_the_first_checkpoint_does_not_advise_resume(tmp_path):
    import argparse

    from gensemble.cli import kept_after_interrupt

    args = argparse.Namespace(command="train", out=str(tmp_path / "gone"))
    text = kept_after_interrupt(args)
    assert "--resume" not in text and "no checkpoint was written yet" in text


def test_a_huge_value_is_never_echoed_whole(clean_run, tmp_path, capsys):
    code, _, err = run_cli(capsys, "evaluate", str(clean_run), "--features", "y" * 5000)
    assert_one_line_error(code, err, "unknown feature extractor")


def test_a_config_yaml_that_does_not_parse_is_rendered_with_a_warning(clean_run, tmp_path):
    from gensemble.report import gather_report

    box = make_sandbox(clean_run, tmp_path / "b")
    (box.run / "config.yaml").write_text("data: [unclosed\n")
    data = gather_report(box.run)
    assert any("config.yaml does not parse" in note for note in data.notes)


def test_a_resume_whose_config_does_not_fit_names_the_tensor(clean_run, tmp_path, capsys):
    box = make_sandbox(clean_run, tmp_path / "b")
    cfg = yaml.safe_load((box.run / "config.yaml").read_text())
    cfg["members"][0]["model"]["g_hidden"] = 24  # the run's own config, edited after training
    (box.run / "config.yaml").write_text(yaml.safe_dump(cfg))
    code, _, err = run_cli(capsys, "train", str(box.run / "config.yaml"), "--out", str(box.run), "--resume")
    line = assert_one_line_error(code, err, "do not match its config", "in the checkpoint but")
    assert "Sequential" not in line
