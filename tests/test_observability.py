"""TensorBoard scalars/images from training, and progress reporting off a terminal."""

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gensemble.progress import progress, set_quiet
from gensemble.run import train_run

from helpers import write_config


def test_training_writes_tensorboard_scalars_and_images(tmp_path):
    model = {"name": "dcgan", "ngf": 4, "ndf": 4, "z_dim": 8}
    cfg = write_config(tmp_path / "c.yaml", model=model, data={"name": "digits", "image_size": 16})
    run = train_run(cfg, tmp_path / "r", ["train.steps=4", "train.log_every=2", "train.image_every=2"])
    acc = EventAccumulator(str(run / "tb" / "m0"))  # one TensorBoard run per member
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    assert {"m0/loss_d", "m0/loss_g", "m0/d_real", "m0/d_fake"} <= scalars
    assert [e.step for e in acc.Scalars("m0/loss_g")] == [2, 4]
    assert "m0/samples" in acc.Tags()["images"]


def test_a_restarted_run_keeps_no_event_file_of_the_aborted_attempt(tmp_path):
    """An attempt stopped before its first checkpoint is restarted from step 0 with --resume: its
    TensorBoard events go with it, as its metrics do; a resume from a checkpoint purges what was
    logged past it."""
    import shutil

    cfg = write_config(tmp_path / "c.yaml")
    run = train_run(cfg, tmp_path / "r", ["train.steps=4", "train.log_every=2", "train.checkpoint_every=2"])
    tb = run / "tb" / "m0"
    first = sorted(p.name for p in tb.iterdir())
    shutil.rmtree(run / "checkpoints")  # as if stopped before any checkpoint was written
    (run / "latest.json").unlink(missing_ok=True)
    train_run(cfg, run, ["train.steps=4", "train.log_every=2", "train.checkpoint_every=2"], resume=True)
    files = sorted(p.name for p in tb.iterdir())
    assert len(files) == 1 and files[0] not in first
    train_run(cfg, run, ["train.steps=6", "train.log_every=2", "train.checkpoint_every=2"], resume=True)
    acc = EventAccumulator(str(tb))
    acc.Reload()
    assert [e.step for e in acc.Scalars("m0/loss_g")] == [2, 4, 6]


def test_a_resumed_writer_s_events_sort_after_the_earlier_attempt_s(tmp_path):
    """TensorBoard reads event files in name order: a file made in the same second as an earlier
    one, by a process whose pid sorts after this one's, would be read first and its steps purged."""
    import socket
    import time

    from torch.utils.tensorboard import SummaryWriter

    from gensemble.run.hooks import tb_writer

    folder = tmp_path / "r" / "tb" / "m0"
    folder.mkdir(parents=True)
    earlier = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.99999999.9"
    (folder / earlier).write_bytes(b"")
    with tb_writer(SummaryWriter, tmp_path / "r", "m0", 4) as w:
        w.add_scalar("x", 1.0, 5)
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 2 and names[0] == earlier  # the new file is read last


def test_event_files_are_deleted_only_inside_the_real_folder(tmp_path):
    import pytest

    from gensemble.safepath import UnsafePathError, remove_files

    run, away = tmp_path / "r", tmp_path / "away"
    (run / "tb" / "m0").mkdir(parents=True)
    away.mkdir()
    (away / "events.out.tfevents.x").write_text("keep")
    (run / "tb" / "m0" / "events.out.tfevents.1").write_text("old")
    (run / "tb" / "m0" / "events.out.tfevents.link").symlink_to(away / "events.out.tfevents.x")
    (run / "tb" / "m0" / "notes.txt").write_text("keep")
    assert remove_files(run, "tb/m0", "events.out.tfevents.") == 1
    assert sorted(p.name for p in (run / "tb" / "m0").iterdir()) == ["events.out.tfevents.link", "notes.txt"]
    assert remove_files(run, "tb/absent", "events.out.tfevents.") == 0
    (run / "tb" / "m1").symlink_to(away)
    with pytest.raises(UnsafePathError):
        remove_files(run, "tb/m1", "events.out.tfevents.")
    assert (away / "events.out.tfevents.x").read_text() == "keep"


def test_a_link_swapped_in_after_the_check_does_not_steer_the_purge(tmp_path, monkeypatch):
    """RUN/tb/NAME is checked (`inside`), then emptied of an aborted attempt's events: a link put there
    between the two is refused, and nothing it points at is deleted."""
    import pytest

    from gensemble.run import hooks
    from gensemble.safepath import UnsafePathError

    run, away = tmp_path / "r", tmp_path / "away"
    (run / "tb").mkdir(parents=True)
    away.mkdir()
    (away / "events.out.tfevents.x").write_text("keep")
    (run / "tb" / "m0").symlink_to(away)
    monkeypatch.setattr(
        hooks, "inside", lambda root, rel, **_: root / rel
    )  # the check passed before the swap
    with pytest.raises(UnsafePathError):
        hooks.tb_writer(lambda *a, **k: None, run, "m0", 0)
    assert (away / "events.out.tfevents.x").read_text() == "keep"


def test_progress_prints_one_line_per_stage_off_a_terminal(capsys):
    set_quiet(True)
    try:
        bar = progress(10, "stage-x", unit="img")
        for _ in range(10):
            bar.update(1)
        bar.set_postfix({"rate": "0.5"})
        bar.close()
    finally:
        set_quiet(False)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("[stage-x] 10/10 img in") and "rate=0.5" in err[0]


def test_training_shows_the_whole_runs_eta_beside_each_members(tmp_path, capsys, monkeypatch):
    """Off a terminal, progress lines carry the whole run's ETA (member-steps left at the rate so
    far), not only the current member's; the clock stops when training ends."""
    import gensemble.progress as prog

    monkeypatch.setattr(prog, "LOG_EVERY_S", 0.0)  # a line on every step
    set_quiet(False)
    cfg = write_config(tmp_path / "c.yaml")
    train_run(cfg, tmp_path / "R", ["train.steps=6"])
    err = capsys.readouterr().err
    assert "whole run ETA" in err and prog.RUN_CLOCK.eta() is None


def test_run_clock_prices_each_member_by_its_own_kind():
    from gensemble.progress import RunClock

    clock = RunClock()
    assert clock.eta() is None
    clock.begin({"g1": 100, "g2": 100, "vae": 100}, {"g1": "gan", "g2": "gan", "vae": "vae"})
    assert clock.eta() is None  # no step made yet: no rate
    for _ in range(50):
        clock.advance(["g1"], 1.0)  # a GAN step costs 1 s
    assert clock.eta() == "4m10s"  # 50 + 100 GAN steps at 1 s, and the VAE priced like them until it runs
    for _ in range(10):
        clock.advance(["vae"], 0.2)  # the VAE is 5x faster
    assert clock.eta() == "2m48s"  # 150 GAN steps at 1 s + 90 VAE steps at 0.2 s
    clock.end()
    clock.advance(["g1"], 1.0)
    assert clock.eta() is None
