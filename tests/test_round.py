"""The one GAN round (training/round.py): what it calls, in which order, and the fake-batch reuse."""

from __future__ import annotations

import torch
from torch import nn

from gensemble.data import load_dataset
from gensemble.data.base import DataConfig
from gensemble.training.loop import gan_step, member_round
from gensemble.training.member import MemberConfig, build_member
from gensemble.training.round import Optimizers, RoundParts, gan_round


class Log:
    """An updater that records its calls."""

    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls

    def zero_grad(self) -> None:
        self.calls.append(f"{self.name}.zero_grad")

    def step(self) -> None:
        self.calls.append(f"{self.name}.step")


def counting_parts(n_critic: int, reuse: bool, calls: list[str]) -> RoundParts:
    lin = nn.Linear(2, 2)

    def G(z):
        calls.append("G")
        return lin(z)

    def draw():
        calls.append("draw")
        return torch.zeros(4, 2), torch.ones(4, 2), None

    def noise():
        calls.append("noise")
        return torch.ones(4, 2)

    def d_loss(real, fake, eps):
        assert not fake.requires_grad  # D never backpropagates into G
        return (fake.sum() * 0 + lin.weight.sum()), [{"loss_d": 0.0}]

    def g_loss(fake):
        assert fake.requires_grad
        return fake.sum(), [{"loss_g": 1.0}]

    return RoundParts(n_critic, draw, noise, G, d_loss, g_loss, Log("D", calls), Log("G", calls), reuse)


def test_a_round_updates_d_n_critic_times_then_g_once_and_merges_stats():
    calls: list[str] = []
    stats = gan_round(counting_parts(2, False, calls))
    assert calls == [
        *["draw", "G", "D.zero_grad", "D.step"] * 2,
        "noise",
        "G",
        "G.zero_grad",
        "G.step",
    ]
    assert stats == [{"loss_d": 0.0, "loss_g": 1.0}]


def test_reuse_fake_makes_one_generator_pass_and_no_second_latent_draw():
    calls: list[str] = []
    gan_round(counting_parts(1, True, calls))
    assert calls.count("G") == 1 and "noise" not in calls
    calls.clear()
    gan_round(counting_parts(2, True, calls))  # only with n_critic 1: otherwise the G phase draws anew
    assert calls.count("G") == 3 and calls.count("noise") == 1


def test_optimizers_step_in_order_and_run_after_once():
    calls: list[str] = []
    opts = Optimizers(Log("a", calls), Log("b", calls), after=lambda: calls.append("after"))
    opts.zero_grad()
    opts.step()
    assert calls == ["a.zero_grad", "b.zero_grad", "a.step", "b.step", "after"]


def test_gan_step_is_the_one_member_round_and_reuse_changes_only_the_g_phase():
    """Same seed, same draws for D: the first D update is identical with and without reuse, and with
    reuse the member's RNG has made one latent draw fewer."""
    data = load_dataset(DataConfig(name="grid25", limit=512), "train")
    spec = {"model": {"name": "mlp-gan", "z_dim": 2, "g_hidden": 16, "d_hidden": 16}, "seed": 3}
    a = build_member(MemberConfig(**spec, reuse_fake=True), data.shape)
    b = build_member(MemberConfig(**spec, reuse_fake=False), data.shape)
    sa, sb = gan_step(a, data, 32), gan_step(b, data, 32)
    assert sa["loss_d"] == sb["loss_d"] and sa["d_real"] == sb["d_real"]
    assert member_round(a, data, 32).reuse_fake and not member_round(b, data, 32).reuse_fake
    # b drew a second latent batch for its G phase, so the two RNG streams now differ.
    assert not torch.equal(a.rng.get_state(), b.rng.get_state())
