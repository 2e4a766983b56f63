"""The ray backend: members as Ray tasks on a local 2-CPU Ray, equal to local training; faults; bad input."""

import json
import os
import signal
import sys

import pytest
import torch

from helpers import run_cli, write_config

pytest.importorskip("ray")

from gensemble import execution as executors  # noqa: E402
from gensemble.checkpoint import load_checkpoint  # noqa: E402
from gensemble.execution.ray import (  # noqa: E402
    RayExecutor,
    RayUnavailableError,
    import_ray,
    train_member_task,
)
from gensemble.run import train_run  # noqa: E402

MLP = {"name": "mlp-gan", "z_dim": 2, "g_hidden": 16, "d_hidden": 16, "g_layers": 2, "d_layers": 2}
TWO_MEMBERS = {
    "data": {"name": "grid25"},
    "members": [{"model": MLP, "seed": 0}, {"model": MLP, "seed": 1, "bootstrap": True}],
    "train": {"steps": 6, "batch_size": 16, "checkpoint_every": 3, "log_every": 2, "ema_decay": 0.9},
}


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray with 2 CPUs for the whole module: starting Ray costs seconds."""
    ray = import_ray()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def backend(monkeypatch):
    """Records every executor the run builds for "ray", so a test can look at what was submitted."""
    built = []
    factory = executors.EXECUTORS.get("ray")

    def recording(address=None):
        built.append(factory(address=address))
        return built[-1]

    monkeypatch.setitem(executors.EXECUTORS._items, "ray", recording)
    return built


def train_with(backend_name, cfg, out, **kwargs):
    return train_run(cfg, out, backend=backend_name, **kwargs)


def assert_same_checkpoint(a, b, exact=True):
    (wa, sa, ja), (wb, sb, jb) = load_checkpoint(a), load_checkpoint(b)
    assert sorted(wa) == sorted(wb) and sorted(sa) == sorted(sb)
    for k in wa:
        if exact:
            assert torch.equal(wa[k], wb[k]), k  # bit for bit, EMA generators included
        else:
            torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-5, msg=k)
    if not exact:
        return
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k  # optimiser moments and RNG states too
    assert ja["step"] == jb["step"]


def metric_steps(run_dir):
    steps = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        steps.setdefault(rec["member"], []).append(rec["step"])
    return {k: sorted(v) for k, v in steps.items()}


@pytest.mark.integration
def test_ray_trains_members_in_parallel_as_local_training_does(ray_session, backend, tmp_path, capsys):
    cfg = write_config(tmp_path / "two.yaml", TWO_MEMBERS)
    code, out, err = run_cli(capsys, "train", str(cfg), "--backend", "ray", "--out", str(tmp_path / "ray"))
    assert code == 0, err
    executor = backend[-1]
    assert isinstance(executor, RayExecutor)
    # Both members were sent before either came back (2 CPUs: they ran side by side), in chunks
    # that end at checkpoint steps.
    assert sorted(executor.submitted[:2]) == [("m0", 0, 3), ("m1", 0, 3)]
    assert sorted(executor.submitted[2:]) == [("m0", 3, 6), ("m1", 3, 6)]

    train_with("loop", cfg, tmp_path / "loop")  # one member after another: the reference
    assert_same_checkpoint(tmp_path / "ray", tmp_path / "loop")
    # The default backend stacks these members (vmap), whose kernels round differently.
    train_with("local", cfg, tmp_path / "local")
    assert_same_checkpoint(tmp_path / "ray", tmp_path / "local", exact=False)
    assert (
        metric_steps(tmp_path / "ray")
        == metric_steps(tmp_path / "loop")
        == {"m0": [2, 4, 6], "m1": [2, 4, 6]}
    )


def crash_when(member, from_step):
    """A task function whose worker is SIGKILLed when `member` starts a chunk at `from_step` or later."""

    def task(spec, data_ref, threads):
        if spec.member.name == member and spec.state.training["step"] >= from_step:
            os.kill(os.getpid(), signal.SIGKILL)
        return train_member_task(spec, data_ref, threads)

    return task


@pytest.mark.integration
def test_killed_worker_names_the_member_and_resume_loses_nothing(
    ray_session, backend, tmp_path, capsys, monkeypatch
):
    cfg = write_config(tmp_path / "two.yaml", TWO_MEMBERS)
    run = str(tmp_path / "R")
    crashing = lambda address=None: RayExecutor(address, task_fn=crash_when("m1", from_step=3))  # noqa: E731
    monkeypatch.setitem(executors.EXECUTORS._items, "ray", crashing)
    code, _, err = run_cli(capsys, "train", str(cfg), "--backend", "ray", "--out", run)
    lines = [line for line in err.splitlines() if line.startswith("gensemble: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "member 'm1' failed on Ray: its Ray worker died" in lines[0] and "--resume" in lines[0]
    saved = load_checkpoint(tmp_path / "R")[2]["members"]
    assert saved["m0"]["step"] == 6  # the healthy member trained on and was saved
    assert saved["m1"]["step"] == 3  # the lost one kept its last checkpoint

    fresh = []
    monkeypatch.setitem(
        executors.EXECUTORS._items,
        "ray",
        lambda address=None: fresh.append(RayExecutor(address)) or fresh[-1],
    )
    code, _, err = run_cli(capsys, "train", str(cfg), "--backend", "ray", "--out", run, "--resume")
    assert code == 0, err
    assert fresh[-1].submitted == [("m1", 3, 6)]  # m0 is not retrained; m1 goes on from 3

    train_with("loop", cfg, tmp_path / "uninterrupted")
    assert_same_checkpoint(tmp_path / "R", tmp_path / "uninterrupted")
    assert metric_steps(tmp_path / "R") == {"m0": [2, 4, 6], "m1": [2, 4, 6]}  # no step lost, none twice


def test_unreachable_address_is_a_one_line_error(backend, tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml")
    code, _, err = run_cli(capsys, "train", str(cfg), "--backend", "ray", "--address", "127.0.0.1:1")
    assert code == 2 and err.count("gensemble: error:") == 1 and "Traceback" not in err
    assert "cannot reach a Ray cluster at '127.0.0.1:1'" in err
    code, _, err = run_cli(capsys, "train", str(cfg), "--backend", "ray", "--address", "nonsense")
    assert code == 2 and "neither 'auto' nor HOST:PORT" in err
    code, _, err = run_cli(capsys, "train", str(cfg), "--address", "auto")
    assert code == 2 and "add --backend ray" in err


def test_without_ray_installed_the_error_says_how_to_install(backend, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(RayUnavailableError):
        import_ray()
    cfg = write_config(tmp_path / "c.yaml")
    code, _, err = run_cli(capsys, "train", str(cfg), "--backend", "ray", "--out", str(tmp_path / "R"))
    assert code == 2 and "pip install 'gensemble[ray]'" in err and err.count("\n") == 1
