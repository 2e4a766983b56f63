"""The two acceptance rules the critic fusions are built on, as pure functions over log density ratios.

The samplers (rejection.py, mh.py, auto.py) call them on ratios of fresh proposals; the choice
(choose.py) calls them on a judged pool of proposals to simulate a setting without sampling. Each
rule exists here once, so what is simulated is what is sampled.
"""

from __future__ import annotations

import torch
from torch import Tensor


def drs_acceptance(
    log_ratio: Tensor, log_m: float, gamma: float | None = None, percentile: float = 95.0, eps: float = 1e-6
) -> Tensor:
    """DRS acceptance probabilities (Azadi et al. 2019, eq. 8):

    F(x) = D̃(x) − D̃_M − log(1 − exp(D̃(x) − D̃_M − ε)) − γ,  p(accept) = σ(F(x)),

    with D̃ the critic's log density ratio and D̃_M its maximum. γ shifts the acceptance rate; by
    default it is set for each batch to the `percentile`-th percentile of F (as in the paper).
    """
    delta = (log_ratio - log_m).clamp(max=0.0)
    f = delta - torch.log1p(-torch.exp(delta - eps))
    shift = torch.quantile(f.double(), percentile / 100.0).item() if gamma is None else gamma
    return torch.sigmoid(f - shift)


def drs_keep(
    log_ratio: Tensor,
    uniform: Tensor,
    log_m: float,
    gamma: float | None,
    percentile: float,
    eps: float,
) -> tuple[Tensor, float]:
    """One batch of DRS: which proposals are kept (uniform < p(accept)) and the raised D̃_M. The
    paper keeps raising D̃_M as larger ratios appear, so it is updated before the batch is judged."""
    log_m = max(log_m, float(log_ratio.max()))
    prob = drs_acceptance(log_ratio, log_m, gamma, percentile, eps)
    return torch.as_tensor(uniform) < prob, log_m


def mh_accepts(uniform: Tensor, proposed_log_ratio: Tensor, current_log_ratio: Tensor) -> Tensor:
    """Independent Metropolis–Hastings (MH-GAN, Turner et al. 2019): a chain moves to the proposal
    with probability min(1, r'/r), r the critic's density ratio; compared in log space."""
    return torch.log(torch.as_tensor(uniform).clamp_min(1e-12)) < (proposed_log_ratio - current_log_ratio)
