"""Calibration: Platt and isotonic fits recover known posteriors, make critics comparable, fail clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gensemble.calibration import (
    PROB_EPS,
    IdentityCalibrator,
    IsotonicCalibrator,
    PlattCalibrator,
    brier_score,
    expected_calibration_error,
    fit_calibrator,
    fit_isotonic,
    fit_platt,
    interp,
)
from gensemble.errors import GensembleError


def gaussian_logits(n: int = 20_000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Real ~ N(+1, 1), fake ~ N(-1, 1): the Bayes posterior of 'real' at x is σ(2x)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g) + 1.0, torch.randn(n, generator=g) - 1.0


def test_platt_recovers_the_bayes_posterior():
    real, fake = gaussian_logits()
    cal = fit_platt(real, fake)
    assert isinstance(cal, PlattCalibrator)
    assert cal.scale == pytest.approx(2.0, abs=0.1)
    assert cal.bias == pytest.approx(0.0, abs=0.05)


def test_platt_undoes_a_discriminators_scale_and_offset():
    """Two critics whose logits differ by an affine map give the same calibrated probabilities."""
    real, fake = gaussian_logits()
    a, b = fit_platt(real, fake), fit_platt(10 * real + 3, 10 * fake + 3)
    x = torch.linspace(-3, 3, 13)
    torch.testing.assert_close(a.predict_proba(x), b.predict_proba(10 * x + 3), atol=1e-3, rtol=0)


def test_isotonic_is_monotone_bounded_and_close_to_the_posterior():
    real, fake = gaussian_logits()
    cal = fit_isotonic(real, fake)
    assert isinstance(cal, IsotonicCalibrator)
    x = torch.linspace(-2, 2, 41)
    p = cal.predict_proba(x)
    assert (p[1:] >= p[:-1]).all()
    assert float(p.min()) >= PROB_EPS and float(p.max()) <= 1 - PROB_EPS
    assert (p - torch.sigmoid(2 * x)).abs().max() < 0.08


def test_calibration_lowers_the_calibration_error_of_an_overconfident_critic():
    real, fake = gaussian_logits(seed=1)
    logits = torch.cat([real, fake]) * 5.0  # over-confident: the right ranking, far too sharp
    labels = torch.cat([torch.ones_like(real), torch.zeros_like(fake)])
    raw = IdentityCalibrator().predict_proba(logits)
    for method in ("platt", "isotonic"):
        cal = fit_calibrator(real * 5.0, fake * 5.0, method)
        p = cal.predict_proba(logits)
        assert expected_calibration_error(p, labels) < 0.5 * expected_calibration_error(raw, labels)
        assert brier_score(p, labels) < brier_score(raw, labels)


def test_interp_matches_numpy():
    xp, fp = torch.tensor([-1.0, 0.0, 2.0]), torch.tensor([0.1, 0.5, 0.9])
    x = torch.linspace(-3, 4, 29)
    np.testing.assert_allclose(
        interp(x, xp, fp).numpy(), np.interp(x.numpy(), xp.numpy(), fp.numpy()), atol=1e-6
    )


def test_predict_proba_keeps_the_device_and_shape():
    cal = fit_platt(*gaussian_logits(200))
    out = cal.predict_proba(torch.zeros(3, 4))
    assert out.shape == (3, 4) and out.dtype == torch.float32


def test_class_counts_are_balanced():
    """Many more fakes than reals must not shift the calibrated 0.5: odds estimate the density ratio."""
    real, fake = gaussian_logits()
    cal = fit_platt(real[:2000], fake)
    assert float(cal.predict_proba(torch.zeros(1))) == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize(
    "real, fake, message",
    [
        (torch.zeros(1), torch.zeros(5), "at least 2"),
        (torch.tensor([0.0, float("nan")]), torch.zeros(5), "NaN"),
    ],
)
def test_bad_logits_are_one_line_errors(real, fake, message):
    with pytest.raises(GensembleError, match=message):
        fit_platt(real, fake)


def test_unknown_method():
    with pytest.raises(GensembleError, match="unknown calibration 'beta'; known: platt, isotonic"):
        fit_calibrator(torch.zeros(4), torch.ones(4), "beta")  # type: ignore[arg-type]
