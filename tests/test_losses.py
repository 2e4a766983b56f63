import math

import pytest
import torch

from gensemble.losses import GAN_LOSSES, elbo, gaussian_kl, gradient_penalty


def test_minimax_matches_log_formula():
    real, fake = torch.tensor([0.3, -1.2]), torch.tensor([0.5, 2.0])
    loss = GAN_LOSSES.get("minimax")
    d = torch.sigmoid
    expected_d = -(torch.log(d(real)).mean() + torch.log(1 - d(fake)).mean())
    assert loss.d_loss(real, fake).item() == pytest.approx(expected_d.item(), rel=1e-6)
    assert loss.g_loss(fake).item() == pytest.approx(torch.log(1 - d(fake)).mean().item(), rel=1e-6)


def test_nonsaturating_g_is_minus_log_d():
    fake = torch.tensor([0.1, -0.7])
    expected = -torch.log(torch.sigmoid(fake)).mean()
    assert GAN_LOSSES.get("non-saturating").g_loss(fake).item() == pytest.approx(expected.item(), rel=1e-6)


def test_hinge_and_least_squares_values():
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.5])
    hinge = GAN_LOSSES.get("hinge")
    assert hinge.d_loss(real, fake).item() == pytest.approx((0 + 1) / 2 + (0 + 1.5) / 2)
    assert hinge.g_loss(fake).item() == pytest.approx(0.75)
    ls = GAN_LOSSES.get("least-squares")
    assert ls.d_loss(real, fake).item() == pytest.approx(0.5 * (1 + 1) / 2 + 0.5 * (4 + 0.25) / 2)
    assert ls.g_loss(fake).item() == pytest.approx(0.5 * (9 + 0.25) / 2)


def test_wgan_gp_penalty_zero_for_unit_gradient_critic():
    critic = lambda x: x.flatten(1) @ torch.tensor([0.6, 0.8])  # noqa: E731  (‖∇‖ = 1 everywhere)
    real, fake = torch.randn(4, 2), torch.randn(4, 2)
    gp = gradient_penalty(critic, real, fake, torch.rand(4))
    assert gp.item() == pytest.approx(0.0, abs=1e-10)
    assert GAN_LOSSES.get("wgan-gp").gradient_penalty


def test_elbo_kl_and_reconstruction():
    mu, logvar = torch.zeros(3, 4), torch.zeros(3, 4)
    assert gaussian_kl(mu, logvar).abs().max().item() == 0.0
    x = torch.full((3, 1, 2, 2), 1.0)
    _, recon, kl = elbo(x.clone(), x, mu, logvar, beta=1.0, reconstruction="mse")
    assert recon.item() == 0.0 and kl.item() == 0.0
    logits = torch.full((3, 1, 2, 2), 100.0)  # Bernoulli p≈1 for pixels at +1 → BCE ≈ 0
    _, recon, _ = elbo(logits, x, mu + 1.0, logvar, beta=2.0, reconstruction="bce")
    assert recon.item() == pytest.approx(0.0, abs=1e-6)
    loss, _, kl = elbo(logits, x, mu + 1.0, logvar, beta=2.0, reconstruction="bce")
    assert kl.item() == pytest.approx(0.5 * 4) and loss.item() == pytest.approx(2 * 2.0, rel=1e-5)
    assert not math.isnan(loss.item())
