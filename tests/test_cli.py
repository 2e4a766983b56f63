"""The CLI end to end, and every bad input getting a one-line error with exit code 2."""

import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import yaml
from PIL import Image

from gensemble.checkpoint import latest_checkpoint

from helpers import TINY_TOY, run_cli, write_config


def assert_one_line_error(code, err, *needles):
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("gensemble: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_readme_flow_train_then_sample(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml")
    code, out, _ = run_cli(capsys, "train", str(cfg), "--set", "train.steps=4", "--out", str(tmp_path / "R"))
    assert code == 0 and "run saved" in out
    assert (tmp_path / "R" / "config.yaml").is_file() and (tmp_path / "R" / "metrics.jsonl").is_file()
    code, out, _ = run_cli(capsys, "sample", str(tmp_path / "R"), "-n", "64", "-o", str(tmp_path / "s.png"))
    assert code == 0 and Image.open(tmp_path / "s.png").size[0] > 100
    code, _, _ = run_cli(capsys, "sample", str(tmp_path / "R"), "-n", "10", "-o", str(tmp_path / "s.npz"))
    assert code == 0 and np.load(tmp_path / "s.npz")["x"].shape == (10, 2)


def test_dry_run_prints_resolved_config_and_writes_nothing(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml")
    code, out, _ = run_cli(capsys, "train", str(cfg), "--dry-run", "--out", str(tmp_path / "R"))
    resolved = yaml.safe_load(out)
    assert (
        code == 0 and resolved["members"][0]["model"]["z_dim"] == 2 and resolved["members"][0]["name"] == "m0"
    )
    assert resolved["members"][0]["optim"]["lr"] == 2e-4  # defaults are written out
    assert not (tmp_path / "R").exists()


@pytest.mark.parametrize("what", ["datasets", "models", "losses", "schemes"])
def test_list(capsys, what):
    code, out, _ = run_cli(capsys, "list", what)
    expected = {"datasets": "fashion-mnist", "models": "dcgan", "losses": "wgan-gp", "schemes": "independent"}
    assert code == 0 and expected[what] in out


@pytest.mark.parametrize(
    ("override", "needles"),
    [
        ("data.name=cifar99", ["unknown dataset 'cifar99'", "grid25", "fashion-mnist"]),
        ("model.name=biggan", ["unknown model 'biggan'", "dcgan", "vae"]),
        ("loss=wasserstein-ish", ["unknown loss 'wasserstein-ish'", "hinge"]),
        ("train.stepz=5", ["unknown config key 'train.stepz'"]),
        ("train.steps=many", ["'train.steps' must be an integer"]),
        ("optim.name=adagrad", ["'members[0].optim.name' must be one of"]),
        ("train.batch_size=0", ["'train.batch_size' must be between 1 and"]),
    ],
)
def test_bad_config_values(tmp_path, capsys, override, needles):
    cfg = write_config(tmp_path / "c.yaml")
    code, _, err = run_cli(capsys, "train", str(cfg), "--set", override, "--out", str(tmp_path / "R"))
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "R").exists()


def test_missing_dataset_files_name_the_package(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml", data={"name": "fashion-mnist", "root": str(tmp_path / "empty")})
    code, _, err = run_cli(capsys, "train", str(cfg), "--out", str(tmp_path / "R"))
    assert_one_line_error(code, err, "dataset-fashion-mnist")


def test_unreadable_image_in_folder_is_named_and_can_be_skipped(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(40):  # 4 held out: the fewest a run can be scored and evaluated with
        Image.fromarray(np.full((20, 20, 3), i * 6, np.uint8)).save(folder / f"ok{i}.png")
    good = (folder / "ok0.png").read_bytes()
    (folder / "broken.png").write_bytes(good[: len(good) // 2])
    model = {"name": "dcgan", "ngf": 4, "ndf": 4, "z_dim": 8}
    data = {"name": f"folder:{folder}", "image_size": 16, "channels": 1}
    cfg = write_config(tmp_path / "c.yaml", data=data, model=model)
    code, _, err = run_cli(capsys, "train", str(cfg), "--out", str(tmp_path / "R"), "--set", "train.steps=2")
    assert_one_line_error(code, err, "broken.png", "skip_bad")
    code, _, err = run_cli(
        capsys,
        "train",
        str(cfg),
        "--out",
        str(tmp_path / "R"),
        "--set",
        "train.steps=2",
        "--set",
        "data.skip_bad=true",
    )
    assert code == 0
    warned = [line for line in err.splitlines() if "broken.png" in line]
    assert warned and all(line.startswith("gensemble: warning:") for line in warned)  # one line each


def bomb_png(side: int = 20000) -> bytes:
    """A 45-byte PNG whose header claims side×side pixels (no image data follows)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = struct.pack(">I", 0) + b"IDAT" + struct.pack(">I", zlib.crc32(b"IDAT"))  # an empty IDAT
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + idat
    )


@pytest.mark.parametrize("size", [None, 16])
def test_a_decompression_bomb_in_a_training_folder_is_skipped(tmp_path, capsys, size):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(40):
        Image.fromarray(np.full((16, 16), i * 6, np.uint8)).save(folder / f"ok{i}.png")
    (folder / "bomb.png").write_bytes(bomb_png())
    data = {"name": f"folder:{folder}", "channels": 1, **({"image_size": size} if size else {})}
    cfg = write_config(
        tmp_path / "c.yaml", data=data, model={"name": "dcgan", "ngf": 4, "ndf": 4, "z_dim": 8}
    )
    code, _, err = run_cli(capsys, "train", str(cfg), "--out", str(tmp_path / "R"), "--set", "train.steps=2")
    assert_one_line_error(code, err, "bomb.png", "skip_bad")
    argv = [
        "train",
        str(cfg),
        "--out",
        str(tmp_path / "R"),
        "--set",
        "train.steps=2",
        "--set",
        "data.skip_bad=true",
    ]
    code, _, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert any("bomb.png" in line and line.startswith("gensemble: warning:") for line in err.splitlines())


def test_empty_image_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    cfg = write_config(
        tmp_path / "c.yaml", data={"name": f"folder:{tmp_path / 'empty'}"}, model={"name": "dcgan"}
    )
    code, _, err = run_cli(capsys, "train", str(cfg), "--out", str(tmp_path / "R"))
    assert_one_line_error(code, err, "empty")


def test_missing_and_truncated_checkpoint_for_sample(tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "sample", str(tmp_path / "nothing"), "-n", "4", "-o", str(tmp_path / "s.png")
    )
    assert_one_line_error(code, err, "nothing")
    cfg = write_config(tmp_path / "c.yaml")
    run_cli(capsys, "train", str(cfg), "--out", str(tmp_path / "R"))
    w = latest_checkpoint(tmp_path / "R") / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    code, _, err = run_cli(capsys, "sample", str(tmp_path / "R"), "-n", "4", "-o", str(tmp_path / "s.png"))
    assert_one_line_error(code, err, "truncated")
    assert not (tmp_path / "s.png").exists()


def test_output_folder_with_a_different_run_is_not_overwritten(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml")
    run_cli(capsys, "train", str(cfg), "--out", str(tmp_path / "R"))
    before = {p: p.read_bytes() for p in (tmp_path / "R").rglob("*") if p.is_file()}
    other = write_config(tmp_path / "d.yaml", data={"name": "ring8"})
    code, _, err = run_cli(capsys, "train", str(other), "--out", str(tmp_path / "R"))
    assert_one_line_error(code, err, "already holds a run")
    code, _, err = run_cli(capsys, "train", str(other), "--out", str(tmp_path / "R"), "--resume")
    assert_one_line_error(code, err, "different run")
    after = {p: p.read_bytes() for p in (tmp_path / "R").rglob("*") if p.is_file()}
    assert before == after
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "train", str(cfg), "--out", str(tmp_path / "junk"))
    assert_one_line_error(code, err, "not empty")


def test_bad_yaml_and_missing_config(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("data: {name: grid25\n")
    code, _, err = run_cli(capsys, "train", str(tmp_path / "bad.yaml"))
    assert_one_line_error(code, err, "not valid YAML")
    code, _, err = run_cli(capsys, "train", str(tmp_path / "none.yaml"))
    assert_one_line_error(code, err, "does not exist")


@pytest.mark.integration  # real processes and signals: CI runs it in its second pass
def test_console_script_has_no_traceback_on_error(tmp_path):
    """The real entry point, in a subprocess: exit code 2 and one line on stderr."""
    cfg = write_config(tmp_path / "c.yaml", data={"name": "nope"})
    proc = subprocess.run(
        [sys.executable, "-m", "gensemble", "train", str(cfg), "--out", str(tmp_path / "R")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "unknown dataset 'nope'" in proc.stderr


def test_tiny_toy_config_is_valid():
    assert TINY_TOY["data"]["name"] == "grid25"


@pytest.mark.integration  # three real processes: CI runs it in its second pass
def test_list_answers_from_the_catalog_cache_without_loading_torch(tmp_path, monkeypatch):
    """`gensemble list` writes the catalog; the next listing prints the same rows from the cache,
    without importing torch; a damaged cache is ignored, never printed."""
    env = {**os.environ, "GENSEMBLE_CACHE": str(tmp_path)}
    probe = (
        "import sys; from gensemble.cli import main; code = main(['list', 'fusions']); "
        "print('torch loaded' if 'torch' in sys.modules else 'no torch', file=sys.stderr); sys.exit(code)"
    )
    first = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    again = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert first.returncode == again.returncode == 0
    assert "torch loaded" in first.stderr and "no torch" in again.stderr, again.stderr
    assert again.stdout == first.stdout and "auto " in again.stdout
    # The same cache holds every help page, so `--help` needs no torch either.
    helped = subprocess.run(
        [sys.executable, "-c", probe.replace("['list', 'fusions']", "['train', '--help']")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert helped.returncode == 0 and "no torch" in helped.stderr, helped.stderr
    assert helped.stdout.startswith("usage: gensemble train") and "--resume" in helped.stdout
    from gensemble.catalog_cache import cached_listing

    monkeypatch.setenv("GENSEMBLE_CACHE", str(tmp_path))
    assert [f"{n:<22} {d}" for n, d in cached_listing("fusions")] == again.stdout.splitlines()
    assert dict(cached_listing("help"))["train"] == helped.stdout
    (cached,) = (tmp_path / "catalog").glob("*.json")
    cached.write_text('{"fusions": [["evil", 3]]}')
    assert cached_listing("fusions") is None and cached_listing("nonsense") is None
