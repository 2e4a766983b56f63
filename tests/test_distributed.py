"""Data-parallel training (torch.distributed, gloo on the CPU): shards, DDP steps, the torchrun launch."""

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from gensemble.checkpoint import load_checkpoint
from gensemble.data import DataConfig, load_dataset
from gensemble.errors import ConfigError
from gensemble.execution.ddp import DistEnv, check_ddp_config, fit_member_data_parallel
from gensemble.run import parse_config
from gensemble.training.loop import Shard, TrainConfig, fit_member, sample_batch
from gensemble.training.member import MemberConfig, build_member

from helpers import TINY_TOY, run_cli, write_config

MLP = {"name": "mlp-gan", "z_dim": 2, "g_hidden": 16, "d_hidden": 16, "g_layers": 2, "d_layers": 2}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shards_split_the_whole_batch_and_keep_rngs_in_step():
    data = load_dataset(DataConfig(name="grid25"))
    whole = sample_batch(data, 8, torch.Generator().manual_seed(3))
    parts, states = [], []
    for rank in range(2):
        rng = torch.Generator().manual_seed(3)
        parts.append(sample_batch(data, 8, rng, shard=Shard(rank, 2)))
        states.append(rng.get_state())
    assert torch.equal(torch.stack(parts, 1).reshape(8, 2), whole)  # rank r holds rows r, r + 2, ...
    assert torch.equal(states[0], states[1])  # every rank drew the same numbers


def _ddp_worker(
    rank: int, world: int, port: int, member_cfg: MemberConfig, train: TrainConfig, out: str
) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        data = load_dataset(DataConfig(name="grid25"))
        member = build_member(member_cfg, data.shape)
        logged = []
        fit_member_data_parallel(member, data, train, Shard(rank, world), lambda m, s: logged.append(s))
        if rank == 0:
            torch.save({"weights": member.weights(), "rng": member.rng.get_state(), "log": logged}, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("loss", ["non-saturating", "wgan-gp"])
def test_ddp_steps_equal_single_process_steps(tmp_path, loss):
    """Two gloo ranks on half a batch each make the update one process makes on the whole batch."""
    member_cfg = MemberConfig(model=MLP, name="m0", loss=loss, n_critic=2, seed=5)
    train = TrainConfig(steps=4, batch_size=16)
    data = load_dataset(DataConfig(name="grid25"))
    member = build_member(member_cfg, data.shape)
    logged = []
    fit_member(member, data, train, lambda m, s: logged.append(s))

    # Forked after the reference run: the workers inherit its imports and start in milliseconds.
    out = tmp_path / "rank0.pt"
    mp.start_processes(
        _ddp_worker, args=(2, free_port(), member_cfg, train, str(out)), nprocs=2, start_method="fork"
    )
    got = torch.load(out)
    for k, v in member.weights().items():
        torch.testing.assert_close(got["weights"][k], v, rtol=1e-5, atol=1e-6)
    assert torch.equal(got["rng"], member.rng.get_state())
    # The log averages the ranks' losses: the whole batch's loss.
    assert got["log"][-1]["loss_g"] == pytest.approx(logged[-1]["loss_g"], rel=1e-5)


def test_ddp_refuses_what_it_cannot_do(tmp_path, monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ConfigError, match="torchrun --nproc_per_node"):
        DistEnv.from_environ()
    cfg = parse_config({**TINY_TOY, "train": {"batch_size": 15}})
    with pytest.raises(ConfigError, match="divisible by the number of processes"):
        check_ddp_config(cfg, 2)
    with pytest.raises(
        ConfigError, match="supports the schemes boosting, independent, partition, swap, not 'mgan'"
    ):
        check_ddp_config(dataclasses.replace(cfg, scheme=dataclasses.replace(cfg.scheme, name="mgan")), 1)


def test_cli_ddp_without_torchrun_is_one_line_error(tmp_path, capsys, monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    cfg = write_config(tmp_path / "c.yaml")
    code, _, err = run_cli(capsys, "train", str(cfg), "--ddp", "--out", str(tmp_path / "R"))
    assert code == 2 and err.count("gensemble: error:") == 1 and "torchrun" in err
    assert not (tmp_path / "R").exists()


def torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        exe,
        "--nproc_per_node=2",
        "--master_port",
        str(free_port()),
        "-m",
        "gensemble",
        "train",
        "--ddp",
        *args,
    ]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_torchrun_trains_resumes_and_matches_local_training(tmp_path, capsys):
    """The documented command, end to end: 2 gloo processes, a resume, then the same weights as one process."""
    cfg = write_config(tmp_path / "c.yaml", bootstrap=True)
    first = torchrun(str(cfg), "--out", "R", "--set", "train.steps=4", "--quiet", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert load_checkpoint(tmp_path / "R")[2]["step"] == 4
    again = torchrun(str(cfg), "--out", "R", "--resume", "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]

    code, _, _ = run_cli(capsys, "train", str(cfg), "--out", str(tmp_path / "L"))
    assert code == 0
    ddp, local = load_checkpoint(tmp_path / "R"), load_checkpoint(tmp_path / "L")
    assert ddp[2]["step"] == local[2]["step"] == 6
    for k, v in local[0].items():
        torch.testing.assert_close(ddp[0][k], v, rtol=1e-5, atol=1e-6)
    steps = [json.loads(line)["step"] for line in (tmp_path / "R" / "metrics.jsonl").open()]
    assert steps == [2, 4, 6]  # one line per logged step: rank 0 alone writes, nothing repeated on resume
    code, _, _ = run_cli(capsys, "sample", str(tmp_path / "R"), "-n", "8", "-o", str(tmp_path / "s.npz"))
    assert code == 0  # an ordinary run folder: no torchrun needed to use it

    # The folder holds a run and --resume is missing: rank 0 finds out, and every rank stops.
    bad = torchrun(str(cfg), "--out", "R", "--quiet", cwd=tmp_path)
    assert bad.returncode != 0 and "already holds a run" in bad.stderr
