"""gensemble.training: the EMA update and the batched-matmul plan of stacked MLP members."""

import copy

import pytest
import torch
from torch import nn

from gensemble.errors import ConfigError
from gensemble.training.bmm import mlp_plan, run_plan
from gensemble.training.loop import TrainConfig, update_ema


def test_update_ema_moves_weights_and_copies_buffers():
    net, ema = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    with torch.no_grad():
        net.weight.fill_(2.0)
        net.running_mean.fill_(5.0)
    update_ema(ema, net, 0.75)
    assert torch.allclose(ema.weight, torch.full((3,), 1.25))  # 0.75·1 + 0.25·2
    assert torch.equal(ema.running_mean, net.running_mean)


@pytest.mark.parametrize("training", [True, False])
def test_bmm_plan_matches_separate_networks(training):
    torch.manual_seed(0)
    act = nn.ReLU()  # shared on purpose: models reuse one activation instance
    nets = [
        nn.Sequential(
            nn.Linear(2, 16), nn.BatchNorm1d(16), act, nn.Linear(16, 16), act, nn.Linear(16, 3), nn.Tanh()
        )
        for _ in range(4)
    ]
    for n in nets:
        n.train(training)
        with torch.no_grad():
            n[1].running_mean.normal_()
    refs = copy.deepcopy(nets)
    plan = mlp_plan(nets[0])
    assert plan is not None and sum(op.kind == "relu" for op in plan) == 2
    params = {
        k: torch.stack([dict(n.named_parameters())[k] for n in nets]) for k, _ in nets[0].named_parameters()
    }
    buffers = {k: torch.stack([dict(n.named_buffers())[k] for n in nets]) for k, _ in nets[0].named_buffers()}
    x = torch.randn(4, 10, 2)
    out = run_plan(plan, params, buffers, x, False, 4, training)
    expected = torch.stack([r(x[i]) for i, r in enumerate(refs)])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    for i, r in enumerate(refs):  # running statistics updated per member, as nn.BatchNorm1d does
        torch.testing.assert_close(buffers["1.running_var"][i], r[1].running_var)


def test_unsupported_layers_fall_back_to_vmap():
    assert mlp_plan(nn.Sequential(nn.Conv2d(1, 2, 3))) is None
    assert mlp_plan(nn.Linear(2, 2)) is None


def test_ema_half_life_ramps_up_as_stylegan2_ada_does():
    """β = ½^(batch / min(half-life, ramp × images seen)): early updates forget the initialisation."""
    cfg = TrainConfig(batch_size=64, ema_halflife_kimg=10, ema_rampup=0.05)
    assert cfg.keeps_ema and TrainConfig().keeps_ema is False
    # After 100 steps (6,400 images) the half-life is 320 images, five batches: β = ½^(1/5).
    assert cfg.ema_beta(100) == pytest.approx(0.5 ** (64 / 320))
    # Once ramp × images seen passes 10,000 images the half-life stays there.
    assert cfg.ema_beta(10_000) == pytest.approx(0.5 ** (64 / 10_000))
    assert cfg.ema_beta(1) < cfg.ema_beta(100) < cfg.ema_beta(10_000)
    assert TrainConfig(ema_decay=0.999).ema_beta(5) == 0.999
    with pytest.raises(ConfigError, match="not both"):
        TrainConfig(ema_decay=0.9, ema_halflife_kimg=1).validate()
