"""Calibrating discriminators: raw logits -> probabilities that mean the same thing for every critic.

A discriminator's logit is only comparable with another's after calibration: one trained with a
hinge loss, or one that is over-confident because its generator collapsed, puts its 0.5 somewhere
else. Both calibrators are fitted on held-out real (label 1) and generated (label 0) data, with equal
counts, so that a calibrated p(x) estimates p_data / (p_data + p_fake) and p / (1 - p) the density
ratio that rejection sampling and MH need.

* ``platt``: logistic regression on the logit, p = σ(a·logit + b) (Platt 1999). Two parameters, so
  it needs little data and keeps the ranking; it is the default.
* ``isotonic``: a monotone step function of the logit (Zadrozny & Elkan 2002). More flexible, needs
  more data, and is flat (ties) inside each step.

Fitting uses scikit-learn; applying a fitted calibrator is pure torch, on the logits' device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from gensemble.errors import GensembleError

CalibrationMethod = Literal["platt", "isotonic"]
CALIBRATION_METHODS: tuple[str, ...] = ("platt", "isotonic")
# Probabilities are kept off 0 and 1 so that log-ratios stay finite (DRS takes logit(p)).
PROB_EPS = 1e-6


@dataclass(frozen=True)
class PlattCalibrator:
    """p = σ(scale·logit + bias)."""

    scale: float
    bias: float

    def predict_proba(self, logits: Tensor) -> Tensor:
        p = torch.sigmoid(self.scale * logits.float() + self.bias)
        return p.clamp(PROB_EPS, 1.0 - PROB_EPS)


@dataclass(frozen=True)
class IsotonicCalibrator:
    """A non-decreasing piecewise-linear map from logit to probability, through (knots, values)."""

    knots: tuple[float, ...]
    values: tuple[float, ...]

    def predict_proba(self, logits: Tensor) -> Tensor:
        x = logits.float()
        knots = torch.tensor(self.knots, dtype=torch.float32, device=x.device)
        values = torch.tensor(self.values, dtype=torch.float32, device=x.device)
        return interp(x, knots, values).clamp(PROB_EPS, 1.0 - PROB_EPS)


@dataclass(frozen=True)
class IdentityCalibrator:
    """p = σ(logit): the discriminator's own probability, uncalibrated (for comparisons)."""

    def predict_proba(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits.float()).clamp(PROB_EPS, 1.0 - PROB_EPS)


Calibrator = PlattCalibrator | IsotonicCalibrator | IdentityCalibrator


def interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """np.interp in torch: linear between knots, constant beyond the ends (xp increasing)."""
    if xp.numel() == 1:
        return fp.expand_as(x).clone()
    idx = torch.searchsorted(xp, x.contiguous()).clamp(1, xp.numel() - 1)
    x0, x1, f0, f1 = xp[idx - 1], xp[idx], fp[idx - 1], fp[idx]
    t = ((x - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0.0, 1.0)
    return f0 + t * (f1 - f0)


def _labelled(
    real_logits: Tensor | np.ndarray, fake_logits: Tensor | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    real = np.asarray(torch.as_tensor(real_logits).detach().cpu().double().reshape(-1))
    fake = np.asarray(torch.as_tensor(fake_logits).detach().cpu().double().reshape(-1))
    if real.size < 2 or fake.size < 2:
        raise GensembleError(
            f"calibration needs at least 2 real and 2 fake logits, got {real.size} and {fake.size}"
        )
    if not (np.isfinite(real).all() and np.isfinite(fake).all()):
        raise GensembleError("calibration got NaN or infinite discriminator logits; check the discriminator")
    # Equal class weights: the calibrated odds then estimate p_data / p_fake, whatever the counts.
    m = min(real.size, fake.size)
    x = np.concatenate([real[:m], fake[:m]])
    y = np.concatenate([np.ones(m), np.zeros(m)])
    return x, y


def fit_platt(real_logits: Tensor | np.ndarray, fake_logits: Tensor | np.ndarray) -> PlattCalibrator:
    """Logistic regression of label on logit (real = 1), nearly unregularised."""
    from sklearn.linear_model import LogisticRegression

    x, y = _labelled(real_logits, fake_logits)
    # Standardise first so lbfgs converges whatever the logits' scale; fold the scaling back after.
    mu, sd = float(x.mean()), float(x.std()) or 1.0
    lr = LogisticRegression(C=1e4, max_iter=1000).fit(((x - mu) / sd)[:, None], y)
    a, b = float(lr.coef_[0, 0]) / sd, float(lr.intercept_[0])
    return PlattCalibrator(scale=a, bias=b - a * mu)


def fit_isotonic(real_logits: Tensor | np.ndarray, fake_logits: Tensor | np.ndarray) -> IsotonicCalibrator:
    """Isotonic regression of label on logit (real = 1); stored as knots for a pure-torch predict."""
    from sklearn.isotonic import IsotonicRegression

    x, y = _labelled(real_logits, fake_logits)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(x, y)
    knots, values = iso.X_thresholds_, iso.y_thresholds_
    return IsotonicCalibrator(tuple(float(k) for k in knots), tuple(float(v) for v in values))


FITTERS = {"platt": fit_platt, "isotonic": fit_isotonic}


def fit_calibrator(
    real_logits: Tensor | np.ndarray, fake_logits: Tensor | np.ndarray, method: CalibrationMethod = "platt"
) -> Calibrator:
    """Fit a calibrator of `method` ("platt" or "isotonic") on held-out real and generated logits."""
    if method not in FITTERS:
        raise GensembleError(f"unknown calibration {method!r}; known: {', '.join(CALIBRATION_METHODS)}")
    return FITTERS[method](real_logits, fake_logits)


def brier_score(probs: Tensor, labels: Tensor) -> float:
    """Mean squared error of probabilities against 0/1 labels (lower is better calibrated)."""
    return float(((probs.float() - labels.float()) ** 2).mean())


def expected_calibration_error(probs: Tensor, labels: Tensor, bins: int = 10) -> float:
    """Σ_b (n_b / n) |mean label − mean probability| over equal-width probability bins."""
    p, y = probs.float().cpu(), labels.float().cpu()
    idx = (p * bins).long().clamp(0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            total += float(sel.float().mean()) * abs(float(y[sel].mean()) - float(p[sel].mean()))
    return total
