"""gensemble.run: a config trained into a folder and loaded back, with the executor passed in."""

import torch

from gensemble.run import as_run_config, load_run, train_run

TINY = {
    "data": {"name": "grid25"},
    "members": [{"model": {"name": "mlp-gan", "g_hidden": 8, "d_hidden": 8}, "seed": s} for s in (0, 1)],
    "train": {"steps": 6, "batch_size": 16, "log_every": 3, "checkpoint_every": 6, "ema_decay": 0.5},
}


def test_train_then_load_round_trip_and_the_ema_switch(tmp_path):
    run = train_run(TINY, tmp_path / "r", backend="loop")
    raw, averaged = load_run(run), load_run(run, ema=True)
    for name in ("m0", "m1"):
        g_raw = raw.member(name).model.generator_net().state_dict()
        g_ema = averaged.member(name).model.generator_net().state_dict()
        kept = raw.aux[f"{name}.G_ema"].state_dict()
        assert all(torch.equal(g_ema[k], kept[k]) for k in kept)  # ema=True samples with the EMA
        assert any(not torch.equal(g_raw[k], kept[k]) for k in kept)  # the default keeps trained weights
        assert raw.member(name).step == 6


def test_an_executor_instance_is_used_as_given(tmp_path):
    from gensemble.execution import LocalExecutor

    calls = []

    class Counting(LocalExecutor):
        def run(self, ens, tasks, data, hooks):
            calls.append(len(tasks))
            return super().run(ens, tasks, data, hooks)

    train_run(TINY, tmp_path / "r", backend=Counting("never", name="counting"))
    assert calls == [2]


def test_as_run_config_takes_a_dict_a_path_or_a_config(tmp_path):
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(TINY))
    a, b = as_run_config(TINY), as_run_config(path)
    assert a == b and as_run_config(a) is a
    assert as_run_config(a, ["train.steps=9"]).train.steps == 9
