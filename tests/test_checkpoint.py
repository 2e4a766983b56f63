"""Checkpoints: exact resume, atomic writes, and clear errors for missing or truncated files."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

import gensemble.checkpoint as ckpt
import gensemble.state_tree as state_tree
from gensemble.errors import CheckpointError
from gensemble.run import load_run, train_run

from helpers import write_config


def final_tensors(run):
    folder = ckpt.latest_checkpoint(run)
    return load_file(str(folder / "weights.safetensors")), load_file(str(folder / "state.safetensors"))


@pytest.mark.parametrize(
    "model",
    [
        {"name": "mlp-gan", "g_hidden": 16, "d_hidden": 16, "g_layers": 2, "d_layers": 2},
        {"name": "dcgan", "ngf": 4, "ndf": 4, "z_dim": 8},
        {"name": "vae", "width": 4, "z_dim": 4},
        # DiffAugment and R1: their random draws come from the member's RNG, so a resume is exact too.
        {"name": "dcgan", "ngf": 4, "ndf": 4, "z_dim": 8, "augment": "color,translation,cutout", "r1": 1.0},
    ],
)
def test_resume_reaches_the_same_weights(tmp_path, model):
    data = (
        {"name": "grid25"}
        if model["name"] == "mlp-gan"
        else {"name": "digits", "image_size": 16, "hflip": True}
    )
    member = {k: model.pop(k) for k in ("augment", "r1") if k in model}
    cfg = write_config(tmp_path / "c.yaml", model=model, data=data, **member)
    straight = train_run(cfg, tmp_path / "a", ["train.steps=6", "train.ema_decay=0.5"])
    train_run(cfg, tmp_path / "b", ["train.steps=3", "train.ema_decay=0.5"])
    resumed = train_run(cfg, tmp_path / "b", ["train.steps=6", "train.ema_decay=0.5"], resume=True)
    (wa, sa), (wb, sb) = final_tensors(straight), final_tensors(resumed)
    assert wa.keys() == wb.keys() and sa.keys() == sb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"weight {k} differs after resume"
    for k in sa:
        assert torch.equal(sa[k], sb[k]), f"training state {k} differs after resume"
    # The metrics log of the resumed run has no duplicated steps.
    steps = [json.loads(line)["step"] for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))


def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    cfg = write_config(tmp_path / "c.yaml")
    run = train_run(cfg, tmp_path / "r", ["train.steps=3"])
    before, _ = final_tensors(run)
    ens = load_run(run)
    for m in ens.members:
        m.step = 5
    real_save = ckpt.save_file
    calls = []

    def crash_midway(tensors, path):
        calls.append(path)
        if len(calls) == 2:  # weights written, crash while writing the training state
            with open(path, "wb") as f:
                f.write(b"\x00\x01partial")
            raise OSError("disk full")
        real_save(tensors, path)

    monkeypatch.setattr(ckpt, "save_file", crash_midway)
    with pytest.raises(CheckpointError, match="previous checkpoint step-00000003 is intact"):
        ens.save()
    monkeypatch.setattr(ckpt, "save_file", real_save)
    assert json.loads((run / "latest.json").read_text())["step"] == 3
    after, _ = final_tensors(run)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not list((run / "checkpoints").glob(".tmp-*")), "the half-written folder was not cleaned up"
    load_run(run)  # still loads


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    ckpt.atomic_write_text(target, "old")

    def boom(*_a, **_k):
        raise OSError("no space")

    monkeypatch.setattr(ckpt.os, "replace", boom)
    with pytest.raises(OSError):
        ckpt.atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_truncated_and_missing_checkpoints_raise_clear_errors(tmp_path):
    cfg = write_config(tmp_path / "c.yaml")
    run = train_run(cfg, tmp_path / "r", ["train.steps=3"])
    weights = ckpt.latest_checkpoint(run) / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_run(run)
    (run / "latest.json").unlink()
    shutil.rmtree(run / "checkpoints")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_run(run)
    with pytest.raises(CheckpointError, match="does not exist|not a run folder"):
        load_run(tmp_path / "nowhere")


def test_state_flattening_round_trip():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))])
    opt.param_groups[0]["params"][0].grad = torch.ones(3)
    opt.step()
    tensors: dict = {}
    skeleton = state_tree.flatten_state(opt.state_dict(), "opt", tensors)
    json.dumps(skeleton)  # JSON-serialisable: no pickles anywhere
    restored = state_tree.unflatten_state(json.loads(json.dumps(skeleton)), tensors)
    assert restored["param_groups"] == opt.state_dict()["param_groups"]
    assert torch.equal(restored["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
