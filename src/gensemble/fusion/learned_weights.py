"""learned-weights: mixture weights fitted to minimise MMD² or FID to held-out real data (the
calibration half), on raw values or any registered feature space."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from gensemble.errors import ConfigError
from gensemble.fusion.base import FusionContext, register_fusion
from gensemble.fusion.params import FusionParams
from gensemble.fusion.proposal import MixtureSampler
from gensemble.metrics.distance import mean_kernel, median_bandwidths
from gensemble.metrics.features import feature_map, features_of
from gensemble.metrics.fid import feature_stats, frechet_distance, principal_axes


@dataclass(frozen=True)
class LearnedWeightsParams(FusionParams):
    divergence: Literal["mmd", "fid"] = "mmd"  # what the weights minimise against held-out real data
    features: str = "raw"  # "raw" (flattened values), or an extractor: "classifier:DATASET", "inception"
    n_fit: int = 1000  # samples per generator, and held-out real examples, used to fit
    bandwidths: tuple[float, ...] = ()  # MMD: Gaussian kernel widths; () = median distance × 2^-6 … 2^0

    def _check(self, path: str) -> None:
        if self.n_fit < 10:
            raise ConfigError(f"config key '{path}.n_fit' must be at least 10, got {self.n_fit}")
        if any(b <= 0 for b in self.bandwidths):
            raise ConfigError(
                f"config key '{path}.bandwidths' must hold positive widths, got {list(self.bandwidths)}"
            )


def mmd_weights(fakes: list[np.ndarray], real: np.ndarray, bandwidths: tuple[float, ...]) -> np.ndarray:
    """Mixture weights on the simplex minimising MMD²(Σ w_i P_i, P_real).

    MMD² is the quadratic wᵀAw − 2bᵀw + const with A_ik = E k(x_i, x_k), b_i = E k(x_i, y), so the
    minimum over the simplex is a small quadratic programme (SLSQP); bad members get weight 0.
    """
    from scipy.optimize import minimize

    m = len(fakes)
    a = np.empty((m, m))
    for i in range(m):
        for k in range(i, m):
            a[i, k] = a[k, i] = mean_kernel(fakes[i], fakes[k], bandwidths, same=i == k)
    b = np.array([mean_kernel(f, real, bandwidths, same=False) for f in fakes])
    res = minimize(
        lambda w: w @ a @ w - 2 * b @ w,
        np.full(m, 1.0 / m),
        jac=lambda w: 2 * a @ w - 2 * b,
        bounds=[(0.0, 1.0)] * m,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
        method="SLSQP",
    )
    w = np.clip(res.x, 0.0, None)
    return w / w.sum()


def fid_weights(fakes: list[np.ndarray], real: np.ndarray) -> np.ndarray:
    """Mixture weights minimising the Fréchet distance between the mixture's and real features.

    A mixture's mean and covariance follow from its members' first and second moments, so each
    evaluation is one Fréchet distance; weights are softmax(θ), θ found by L-BFGS. Features with
    more dimensions than a quarter of the real rows are first projected on their top principal axes
    (`principal_axes`), so the numerical gradient costs M + 1 small eigendecompositions.
    """
    from scipy.optimize import minimize

    axes = principal_axes(real, *fakes)  # more dims than rows / 4: fit on the top principal axes
    if axes is not None:
        fakes, real = [f @ axes for f in fakes], real @ axes
    mus = [f.mean(0) for f in fakes]
    seconds = [f.T @ f / len(f) for f in fakes]
    mu_r, sigma_r = feature_stats(real)

    def objective(theta: np.ndarray) -> float:
        w = np.exp(theta - theta.max())
        w /= w.sum()
        mu = sum(wi * m for wi, m in zip(w, mus))
        sigma = sum(wi * s for wi, s in zip(w, seconds)) - np.outer(mu, mu)
        return frechet_distance(mu, sigma, mu_r, sigma_r)

    res = minimize(objective, np.zeros(len(fakes)), method="L-BFGS-B")
    w = np.exp(res.x - res.x.max())
    return w / w.sum()


@register_fusion("learned-weights", LearnedWeightsParams, False)
def fuse_by_learned_weights(ctx: FusionContext, p: LearnedWeightsParams) -> MixtureSampler:
    """mixture weights fitted to minimise MMD or FID to held-out real data"""
    gens = ctx.generators(ctx.selection("fusion 'learned-weights'").generators)
    real_x = ctx.cal_real[: p.n_fit]
    fn = feature_map(p.features, str(ctx.ens.device))
    fakes = [
        features_of(fn, g.sample(p.n_fit, torch.Generator().manual_seed(p.fit_seed + 31 * i)).cpu())
        .double()
        .numpy()
        for i, g in enumerate(gens.values())
    ]
    real = features_of(fn, real_x.cpu()).double().numpy()
    if p.divergence == "mmd":
        widths = p.bandwidths or median_bandwidths(np.concatenate([*fakes, real]), p.fit_seed)
        weights = mmd_weights(fakes, real, widths)
    else:
        weights = fid_weights(fakes, real)
    return MixtureSampler(gens, weights, ctx.names)
