"""The batched engine: stacked members make the same updates as members trained one by one."""

import pytest
import torch

from gensemble.checkpoint import latest_checkpoint
from gensemble.data import Dataset
from gensemble.data.toy import sample_mixture
from gensemble.ensemble.base import MemberTask
from gensemble.execution import LocalExecutor
from gensemble.optim import OptimConfig
from gensemble.progress import set_quiet
from gensemble.run import train_run
from gensemble.training.batched import BatchedGAN, BatchedNets, LoopedNets, net_group
from gensemble.training.loop import TrainConfig, fit_member
from gensemble.training.member import MemberConfig, build_member

from helpers import write_config

set_quiet(True)
TINY_MLP = {"name": "mlp-gan", "z_dim": 2, "g_hidden": 16, "d_hidden": 16, "g_layers": 2, "d_layers": 2}
TINY_DCGAN = {"name": "dcgan", "z_dim": 8, "ngf": 4, "ndf": 4, "g_norm": "none", "d_norm": "none"}


def toy_data(n: int = 512) -> Dataset:
    return Dataset(x=sample_mixture("grid25", n, torch.Generator().manual_seed(0))[0])


def image_data(n: int = 128, size: int = 16) -> Dataset:
    return Dataset(x=torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1)


def members(model: dict, data: Dataset, n: int = 3, **cfg) -> list:
    return [
        build_member(MemberConfig(model=model, name=f"m{i}", seed=i, **cfg), data.shape) for i in range(n)
    ]


def assert_same_members(looped, stacked, atol: float = 1e-5) -> None:
    for a, b in zip(looped, stacked):
        assert torch.equal(a.rng.get_state(), b.rng.get_state()), f"{a.name}: RNG streams diverged"
        wa, wb = a.weights(), b.weights()
        for k in wa:
            torch.testing.assert_close(wb[k], wa[k], atol=atol, rtol=1e-4, msg=f"weight {k}")
        for role in a.optimizers:
            sa, sb = a.optimizers[role].state_dict()["state"], b.optimizers[role].state_dict()["state"]
            assert sa.keys() == sb.keys()
            for i in sa:
                for key, value in sa[i].items():
                    if isinstance(value, torch.Tensor):
                        torch.testing.assert_close(sb[i][key], value, atol=atol, rtol=1e-4)


def train_both(model: dict, data: Dataset, steps: int = 6, batch: int = 16, **cfg):
    looped, stacked = members(model, data, **cfg), members(model, data, **cfg)
    for m in looped:
        fit_member(m, data, TrainConfig(steps=steps, batch_size=batch))
    engine = BatchedGAN(stacked)
    for _ in range(steps):
        engine.step(data, batch, [None] * len(stacked))
    engine.write_back()
    return looped, stacked


@pytest.mark.parametrize(
    ("model", "cfg"),
    [
        (TINY_MLP, {}),
        ({**TINY_MLP, "g_norm": "layer", "d_norm": "layer"}, {"loss": "hinge"}),
        (TINY_MLP, {"loss": "wgan-gp", "n_critic": 2}),
        (TINY_MLP, {"optim": OptimConfig(name="sgd", lr=0.01, momentum=0.9)}),
        (TINY_MLP, {"optim": OptimConfig(name="rmsprop", lr=1e-3, weight_decay=1e-4)}),
    ],
)
def test_stacked_mlp_gan_equals_the_loop(model, cfg):
    assert_same_members(*train_both(model, toy_data(), **cfg))


@pytest.mark.parametrize("cfg", [{}, {"loss": "wgan-gp"}])
def test_stacked_dcgan_equals_the_loop(cfg):
    assert_same_members(*train_both(TINY_DCGAN, image_data(), steps=5, **cfg))


def test_stacked_batchnorm_computes_the_same_functions():
    # A bias right before BatchNorm has a zero gradient up to rounding, and Adam magnifies that noise,
    # so such biases may drift apart; what the networks compute in training mode must not.
    model = {**TINY_DCGAN, "g_norm": "batch", "d_norm": "batch"}
    data = image_data()
    looped, stacked = train_both(model, data, steps=5)
    z = torch.randn(8, 8, generator=torch.Generator().manual_seed(1))
    for a, b in zip(looped, stacked):
        for m in (a, b):
            m.model.train()
        torch.testing.assert_close(b.model.G(z), a.model.G(z), atol=1e-4, rtol=1e-3)
        torch.testing.assert_close(b.model.D(data.x[:8]), a.model.D(data.x[:8]), atol=1e-4, rtol=1e-3)
        for k, v in a.model.G.state_dict().items():  # G has no bias before its norms: all close
            torch.testing.assert_close(b.model.G.state_dict()[k], v, atol=1e-5, rtol=1e-4)


def test_stacked_nets_pull_existing_optimiser_state():
    """Resuming stacked training from members that were trained (e.g. looped) keeps their Adam moments."""
    data = toy_data()
    looped, stacked = members(TINY_MLP, data), members(TINY_MLP, data)
    for group in (looped, stacked):
        for m in group:
            fit_member(m, data, TrainConfig(steps=2, batch_size=16))
    for m in looped:
        fit_member(m, data, TrainConfig(steps=5, batch_size=16))
    engine = BatchedGAN(stacked)
    for _ in range(3):
        engine.step(data, 16, [None] * 3)
    engine.write_back()
    assert_same_members(looped, stacked)


def test_net_group_stacks_only_identical_networks():
    data = toy_data()
    same = members(TINY_MLP, data)
    assert isinstance(net_group([m.model.D for m in same], [m.optimizers["D"] for m in same]), BatchedNets)
    assert isinstance(
        net_group([m.model.D for m in same], [m.optimizers["D"] for m in same], False), LoopedNets
    )
    mixed = same[:2] + members({**TINY_MLP, "d_hidden": 8}, data, 1)
    assert isinstance(net_group([m.model.D for m in mixed], [m.optimizers["D"] for m in mixed]), LoopedNets)
    spectral = members({**TINY_MLP, "spectral_norm": True}, data, 2)
    assert isinstance(
        net_group([m.model.D for m in spectral], [m.optimizers["D"] for m in spectral]), LoopedNets
    )


def test_local_executor_groups_members_by_config():
    data = toy_data()
    ms = members(TINY_MLP, data, 2) + members({**TINY_MLP, "g_hidden": 8}, data, 1)
    ms[2].name = "m2"
    ms += [build_member(MemberConfig(model={"name": "vae", "width": 4, "z_dim": 4}, name="v"), (1, 16, 16))]
    groups = LocalExecutor().groups([MemberTask(m, 10) for m in ms])
    assert [[t.member.name for t in g] for g in groups] == [["m0", "m1"], ["m2"], ["v"]]
    assert len(LocalExecutor("never").groups([MemberTask(m, 10) for m in ms])) == 4


def final_weights(run):
    from safetensors.torch import load_file

    return load_file(str(latest_checkpoint(run) / "weights.safetensors"))


@pytest.mark.parametrize("scheme", ["independent", "multi-discriminator", "mgan", "swap"])
def test_schemes_give_the_same_numbers_batched_or_looped(tmp_path, scheme):
    cfg = write_config(
        tmp_path / "c.yaml",
        {
            "data": {"name": "grid25"},
            "members": [{"model": TINY_MLP, "seed": i} for i in range(4)],
            "scheme": {"name": scheme, **({"swap_every": 2} if scheme == "swap" else {})},
            "train": {"steps": 5, "batch_size": 16, "checkpoint_every": 5, "log_every": 5},
        },
    )
    runs = {}
    for backend in ("batched", "loop"):
        runs[backend] = final_weights(train_run(cfg, tmp_path / backend, backend=backend))
    for k, v in runs["loop"].items():
        torch.testing.assert_close(runs["batched"][k], v, atol=1e-5, rtol=1e-4, msg=f"{scheme}: {k}")


def test_isolated_executor_reproduces_local_training_exactly(tmp_path):
    """The self-contained task path a remote backend (Ray) uses: pack, train from the spec, unpack."""
    cfg = write_config(
        tmp_path / "c.yaml",
        {
            "data": {"name": "grid25"},
            "members": [{"model": TINY_MLP, "seed": 0}, {"model": TINY_MLP, "seed": 1, "bootstrap": True}],
            "train": {"steps": 7, "batch_size": 16, "checkpoint_every": 3, "log_every": 2, "ema_decay": 0.9},
        },
    )
    loop = final_weights(train_run(cfg, tmp_path / "loop", backend="loop"))
    isolated = final_weights(train_run(cfg, tmp_path / "iso", backend="isolated"))
    assert loop.keys() == isolated.keys()
    for k in loop:
        assert torch.equal(loop[k], isolated[k]), k
    steps = [line for line in (tmp_path / "iso" / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == 8  # steps 2, 4, 6, 7 of two members


def test_auto_stacking_skips_convolutions_on_the_cpu():
    """On a CPU, grouped convolutions are no faster than separate ones, so "local" stacks only MLPs."""
    data = image_data()
    mlps = members({**TINY_MLP, "z_dim": 4}, data, 2)
    convs = members(TINY_DCGAN, data, 2)
    for executor, expected in ((LocalExecutor("auto"), [2, 1, 1]), (LocalExecutor("always"), [2, 2])):
        for i, m in enumerate(convs):
            m.name = f"c{i}"
        groups = executor.groups([MemberTask(m, 10) for m in mlps + convs])
        assert [len(g) for g in groups] == expected
