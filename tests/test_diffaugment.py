"""DiffAugment (training/diffaugment.py) and R1: the transforms do what the paper says, stay
differentiable, and a member trains with them (resume: tests/test_checkpoint.py)."""

import pytest
import torch

from gensemble.errors import ConfigError
from gensemble.losses import r1_penalty
from gensemble.run.config import parse_config
from gensemble.training.diffaugment import AugmentDraw, apply, check_policy, draw


def test_identity_draws_leave_images_unchanged_and_each_transform_does_its_part():
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    none = AugmentDraw(torch.tensor([[0.0, 1.0, 1.0]] * 2), torch.zeros(2, 2, dtype=torch.long), None)
    torch.testing.assert_close(apply(x, none), x)
    dot = torch.zeros(1, 1, 8, 8)
    dot[0, 0, 2, 3] = 1.0
    moved = apply(dot, AugmentDraw(None, torch.tensor([[1, -2]]), None))
    assert moved[0, 0, 3, 1] == 1.0 and moved.sum() == 1.0  # one row down, two columns left
    off = apply(dot, AugmentDraw(None, torch.tensor([[0, 7]]), None))
    assert off.sum() == 0.0  # shifted out of the frame: the border is zero-filled
    ones = torch.ones(1, 1, 8, 8)
    cut = apply(ones, AugmentDraw(None, None, torch.tensor([[4, 4]])))
    assert cut.sum() == 64 - 16 and cut[0, 0, 2:6, 2:6].sum() == 0  # a 4x4 hole about (4, 4)
    grey = apply(torch.zeros(1, 3, 4, 4), AugmentDraw(torch.tensor([[0.25, 2.0, 1.5]]), None, None))
    torch.testing.assert_close(grey, torch.full((1, 3, 4, 4), 0.25))  # brightness only: no colour to stretch


def test_draws_follow_the_policy_and_the_rng_and_gradients_flow():
    a = draw("color,translation,cutout", 16, (32, 32), torch.Generator().manual_seed(0))
    b = draw("color,translation,cutout", 16, (32, 32), torch.Generator().manual_seed(0))
    assert all(torch.equal(s, t) for s, t in zip((a.color, a.shift, a.cut), (b.color, b.shift, b.cut)))
    assert a.shift.abs().max() <= 4 and ((a.color[:, 0].abs() <= 0.5) & (a.color[:, 1] <= 2)).all()
    only = draw("translation", 4, (32, 32), torch.Generator().manual_seed(0))
    assert only.color is None and only.cut is None and only.shift is not None
    x = torch.rand(16, 3, 32, 32, requires_grad=True)
    apply(x, a).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    check_policy("color,cutout", "members[0]")
    with pytest.raises(ConfigError, match="subset of color, translation, cutout"):
        check_policy("colour", "members[0]")


def test_r1_is_the_squared_gradient_norm_at_the_data():
    w = torch.tensor([3.0, -4.0])
    assert float(r1_penalty(lambda x: x @ w, torch.randn(5, 2))) == pytest.approx(25.0)


def test_augment_and_r1_are_refused_where_they_would_do_nothing():
    gan = {"name": "mlp-gan", "g_hidden": 8, "d_hidden": 8, "g_layers": 1, "d_layers": 1}
    members = [{"model": gan, "seed": s, "r1": 1.0} for s in range(2)]
    with pytest.raises(ConfigError, match="trains critics of its own"):
        parse_config({"data": {"name": "grid25"}, "scheme": {"name": "mgan"}, "members": members})
    with pytest.raises(ConfigError, match="apply to GAN members only"):
        parse_config({"data": {"name": "digits"}, "model": {"name": "vae"}, "augment": "color"})
