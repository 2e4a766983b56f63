"""Metrics against closed forms, hand-computed values and brute-force reference implementations."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import scipy.linalg
import torch

from gensemble.errors import GensembleError
from gensemble.metrics import (
    KIDResult,
    feature_stats,
    fid,
    frechet_distance,
    inception_score,
    kid,
    label_mode_stats,
    mmd2_unbiased,
    mode_kernel_features,
    polynomial_kernel,
    prdc,
    precision_recall,
    toy_mode_stats,
)

# The package re-exports the function `prdc`, which shadows the submodule of the same name.
prdc_module = importlib.import_module("gensemble.metrics.prdc")


def _random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def _reference_frechet(mu1, s1, mu2, s2) -> float:
    """The pytorch-fid formula with scipy's general sqrtm, as an independent reference."""
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


# ----------------------------------------------------------------------------------------- FID


def test_frechet_distance_diagonal_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_full_covariances_match_scipy_sqrtm():
    rng = np.random.default_rng(0)
    for d in (1, 2, 5, 16):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
            _reference_frechet(mu1, s1, mu2, s2), rel=1e-8
        )


def test_frechet_distance_rank_deficient_is_finite():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(6, 2))
    s1, s2 = v @ v.T, np.diag([1.0, 0, 0, 0, 0, 0])  # both rank-deficient
    value = frechet_distance(np.zeros(6), s1, np.zeros(6), s2)
    assert math.isfinite(value) and value >= 0


def test_fid_of_large_gaussian_samples_approaches_closed_form():
    rng = np.random.default_rng(2)
    mu1, mu2 = np.array([0.0, 0.0, 0.0]), np.array([1.0, -0.5, 0.0])
    s1, s2 = np.diag([1.0, 2.0, 0.5]), np.diag([0.5, 2.0, 1.5])
    x = rng.multivariate_normal(mu1, s1, size=40_000)
    y = rng.multivariate_normal(mu2, s2, size=40_000)
    expected = frechet_distance(mu1, s1, mu2, s2)
    assert expected == pytest.approx(
        1.25 + (1 - math.sqrt(0.5)) ** 2 + (math.sqrt(0.5) - math.sqrt(1.5)) ** 2
    )
    assert fid(x, y) == pytest.approx(expected, abs=0.03)


def test_fid_of_identical_sets_is_zero_and_accepts_tensors():
    x = np.random.default_rng(3).normal(size=(200, 8))
    assert fid(x, x) == pytest.approx(0.0, abs=1e-8)
    assert fid(torch.from_numpy(x).float(), x.astype(np.float32)) == pytest.approx(0.0, abs=1e-6)


def test_feature_stats_shapes_and_warning_when_fewer_samples_than_dims():
    mu, sigma = feature_stats(np.random.default_rng(4).normal(size=(50, 3)))
    assert mu.shape == (3,) and sigma.shape == (3, 3)
    with pytest.warns(UserWarning, match="rank-deficient"):
        feature_stats(np.random.default_rng(5).normal(size=(4, 10)))


def test_fid_rejects_bad_input():
    with pytest.raises(GensembleError, match=r"2-D array"):
        fid(np.zeros(10), np.zeros((10, 2)))
    with pytest.raises(GensembleError, match="shapes disagree"):
        fid(np.random.rand(10, 2), np.random.rand(10, 3))
    with pytest.raises(GensembleError, match="NaN"):
        fid(np.full((10, 2), np.nan), np.random.rand(10, 2))


# ----------------------------------------------------------------------------------------- KID


def test_mmd2_unbiased_matches_loops():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(7, 4)), rng.normal(size=(7, 4)) + 0.3
    m, d = 7, 4

    def k(a, b):
        return (a @ b / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    got = mmd2_unbiased(polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y))
    assert got == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def test_kid_is_unbiased_for_same_distribution():
    means = []
    for rep in range(30):
        rng = np.random.default_rng(100 + rep)
        x, y = rng.normal(size=(100, 8)), rng.normal(size=(100, 8))
        means.append(kid(x, y, subsets=5, subset_size=50, seed=rep).mean)
    means = np.array(means)
    # An unbiased estimator averages to ~0; allow three standard errors.
    assert abs(means.mean()) < 3 * means.std() / math.sqrt(len(means))


def test_kid_is_positive_for_shifted_distribution():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(200, 8)), rng.normal(size=(200, 8)) + 0.5
    result = kid(x, y, subsets=20, subset_size=100)
    assert isinstance(result, KIDResult)
    assert result.mean > 0 and result.mean > 5 * result.std


def test_kid_clips_subset_size_and_is_seeded():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(20, 4))
    a = kid(x, y, subsets=3, subset_size=1000, seed=1)
    assert a == kid(x, y, subsets=3, subset_size=1000, seed=1)
    assert math.isfinite(a.mean) and math.isfinite(a.std)
    with pytest.raises(GensembleError, match="feature dims"):
        kid(x, rng.normal(size=(20, 3)))


# ---------------------------------------------------------------------------------------- PRDC


def _brute_prdc(real: np.ndarray, fake: np.ndarray, k: int, k_pr: int) -> dict[str, float]:
    """Per-point loops straight from the papers' definitions."""

    def dist(a, b):
        return math.sqrt(sum((ai - bi) ** 2 for ai, bi in zip(a, b)))

    def radius(points, i, kk):
        others = sorted(dist(points[i], points[j]) for j in range(len(points)) if j != i)
        return others[kk - 1]

    r_pr = [radius(real, i, k_pr) for i in range(len(real))]
    r_dc = [radius(real, i, k) for i in range(len(real))]
    f_pr = [radius(fake, j, k_pr) for j in range(len(fake))]
    precision = np.mean([any(dist(f, r) <= r_pr[i] for i, r in enumerate(real)) for f in fake])
    recall = np.mean([any(dist(r, f) <= f_pr[j] for j, f in enumerate(fake)) for r in real])
    density = np.mean([sum(dist(f, r) < r_dc[i] for i, r in enumerate(real)) for f in fake]) / k
    coverage = np.mean([min(dist(r, f) for f in fake) < r_dc[i] for i, r in enumerate(real)])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


@pytest.mark.parametrize("k,k_pr", [(1, 1), (2, 3), (5, 3), (4, 4)])
def test_prdc_matches_brute_force(k, k_pr):
    rng = np.random.default_rng(k * 10 + k_pr)
    real, fake = rng.normal(size=(20, 3)), rng.normal(size=(23, 3)) * 1.3 + 0.4
    got = prdc(real, fake, k=k, k_pr=k_pr)
    expected = _brute_prdc(real, fake, k, k_pr)
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key


def test_prdc_chunked_equals_unchunked(monkeypatch):
    rng = np.random.default_rng(9)
    real, fake = rng.normal(size=(40, 5)), rng.normal(size=(37, 5)) + 0.2
    whole = prdc(real, fake)
    monkeypatch.setattr(prdc_module, "BLOCK", 64)  # blocks of one or two rows
    assert prdc(real, fake) == whole


def test_prdc_defaults_and_precision_recall():
    rng = np.random.default_rng(10)
    real, fake = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    both = prdc(real, fake)  # precision/recall with k=3, density/coverage with k=5
    assert both == pytest.approx(_brute_prdc(real, fake, 5, 3))
    pr = precision_recall(real, fake)
    assert pr == {"precision": both["precision"], "recall": both["recall"]}
    assert set(prdc(real, fake, k=5, k_pr=None)) == {"precision", "recall", "density", "coverage"}


def test_prdc_errors():
    x = np.random.default_rng(11).normal(size=(5, 2))
    with pytest.raises(GensembleError, match="need more than 5 samples"):
        prdc(x, x, k=5)


# ------------------------------------------------------------------------------ Inception Score


def test_inception_score_confident_and_uniform_equals_num_classes():
    probs = np.eye(10)[np.arange(100) % 10]  # every split of 10 rows holds each class once
    score = inception_score(probs, splits=10)
    assert score.mean == pytest.approx(10.0) and score.std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_constant_predictions_is_one():
    probs = np.tile(np.array([0.7, 0.2, 0.1]), (40, 1))
    assert inception_score(probs, splits=4).mean == pytest.approx(1.0)
    assert inception_score(np.eye(3)[np.zeros(40, int)], splits=4).mean == pytest.approx(1.0)


def test_inception_score_matches_formula_on_soft_probs():
    probs = np.random.default_rng(12).dirichlet(np.ones(5), size=60)
    marginal = probs.mean(0)
    expected = math.exp(np.mean(np.sum(probs * (np.log(probs) - np.log(marginal)), axis=1)))
    assert inception_score(probs, splits=1).mean == pytest.approx(expected, rel=1e-12)


def test_inception_score_errors():
    with pytest.raises(GensembleError, match="classifier:DATASET"):
        inception_score(None)
    with pytest.raises(GensembleError, match="softmax"):
        inception_score(np.random.default_rng(13).normal(size=(20, 4)))
    with pytest.raises(GensembleError, match="splits"):
        inception_score(np.eye(3), splits=10)


# --------------------------------------------------------------------------------------- modes

GRID = np.array([(a, b) for a in (-4.0, -2.0, 0.0, 2.0, 4.0) for b in (-4.0, -2.0, 0.0, 2.0, 4.0)])


def test_toy_mode_stats_hand_placed_points():
    points = np.array([GRID[0], GRID[7], GRID[24], [10.0, 10.0]])
    stats = toy_mode_stats(points, GRID, sigma=0.05)
    assert stats["modes_covered"] == 3
    assert stats["high_quality_frac"] == pytest.approx(0.75)
    counts = stats["per_mode_counts"]
    assert len(counts) == 25 and counts[0] == counts[7] == counts[24] == 1 and sum(counts) == 3


def test_toy_mode_stats_threshold_and_min_count():
    sigma = 0.1
    points = np.array([GRID[3] + [0.29, 0.0], GRID[3] + [0.0, -0.31], GRID[5], GRID[5] + [0.1, 0.1]])
    stats = toy_mode_stats(torch.tensor(points), torch.tensor(GRID), sigma=sigma)
    assert stats["per_mode_counts"][3] == 1 and stats["per_mode_counts"][5] == 2
    assert stats["high_quality_frac"] == pytest.approx(0.75)
    assert toy_mode_stats(points, GRID, sigma=sigma, min_count=2)["modes_covered"] == 1
    assert toy_mode_stats(points, GRID, sigma=sigma, threshold=4.0)["high_quality_frac"] == 1.0


def test_mode_kernel_features_see_what_raw_fid_cannot():
    rng = np.random.default_rng(0)
    sharp = GRID[rng.integers(25, size=2000)] + 0.05 * rng.standard_normal((2000, 2))
    real = GRID[rng.integers(25, size=2000)] + 0.05 * rng.standard_normal((2000, 2))
    # A Gaussian blob with the data's mean and covariance: raw-coordinate FID calls it near perfect.
    blob = rng.multivariate_normal(real.mean(0), np.cov(real.T), size=2000)
    raw = {k: fid(v, real) for k, v in (("sharp", sharp), ("blob", blob))}
    phi = {
        k: mode_kernel_features(v, GRID, 0.05) for k, v in (("sharp", sharp), ("blob", blob), ("real", real))
    }
    kernel = {k: fid(phi[k], phi["real"]) for k in ("sharp", "blob")}
    assert raw["blob"] < 0.05 and kernel["blob"] > 20 * kernel["sharp"]
    f = mode_kernel_features(np.array([GRID[7], [5.0, 5.0]]), GRID, 0.05)
    assert f.shape == (2, 25) and f[0, 7] == pytest.approx(1.0) and f[1].max() < 1e-10
    with pytest.raises(GensembleError, match="sigma > 0"):
        mode_kernel_features(GRID, GRID, 0.0)


def test_the_judges_mode_features_are_the_metric_and_have_gradients_everywhere():
    from gensemble.metrics.features import feature_map, feature_source

    assert feature_source("grid25") == "modes:grid25" and feature_source("ring8") == "modes:ring8"
    fn = feature_map("modes:grid25")
    x = torch.tensor(
        np.vstack([GRID[:3], [[0.1, -0.2], [3.0, 3.0]]]), dtype=torch.float32, requires_grad=True
    )
    np.testing.assert_allclose(
        fn(x).detach().numpy(), mode_kernel_features(x.detach(), GRID, 0.05), atol=1e-6
    )
    fn(x).sum().backward()  # DDLS steps through it, also from a sample sitting on a centre
    assert torch.isfinite(x.grad).all()


def test_label_mode_stats_uniform_reference():
    stats = label_mode_stats(np.array([0, 0, 1, 1]), num_classes=4)
    # p = (1/2, 1/2, 0, 0) against uniform 1/4: KL = 2 * 1/2 * log 2. Smoothing leaves a uniform q as is.
    assert stats == {"modes_hit": 2, "kl": pytest.approx(math.log(2), rel=1e-12)}
    assert label_mode_stats(np.arange(10), 10)["kl"] == pytest.approx(0.0, abs=1e-12)


def test_label_mode_stats_real_reference_and_smoothing():
    pred, real = torch.tensor([0, 1, 0, 1]), torch.tensor([0, 0, 0, 1])
    stats = label_mode_stats(pred, 3, real_labels=real)
    # p = (1/2, 1/2, 0), q = (3/4, 1/4, 0): KL = 1/2 log(2/3) + 1/2 log 2 = 1/2 log(4/3).
    assert stats["modes_hit"] == 2
    assert stats["kl"] == pytest.approx(0.5 * math.log(4 / 3), rel=1e-5)
    # A generated class the real data lacks: finite, through q = eps / (1 + K eps).
    eps = 1e-6
    lone = label_mode_stats(np.array([2, 2]), 3, real_labels=real, eps=eps)["kl"]
    assert lone == pytest.approx(math.log((1 + 3 * eps) / eps))


def test_label_mode_stats_rejects_out_of_range_labels():
    with pytest.raises(GensembleError, match=r"\[0, 10\)"):
        label_mode_stats(np.array([3, 10]), 10)


def test_kid_with_precomputed_real_sums_is_the_same_kid():
    from gensemble.metrics.kid import kid, kid_real_sums

    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(300, 16)), rng.normal(0.2, 1.0, size=(200, 16))
    sums = kid_real_sums(real, len(fake), subsets=20, subset_size=100, seed=3)
    assert kid(real, fake, subsets=20, subset_size=100, seed=3, real_sums=sums) == kid(
        real, fake, subsets=20, subset_size=100, seed=3
    )


@pytest.mark.parametrize("whole_gram", [True, False])
def test_kid_from_one_gram_matrix_equals_kid_from_every_subsets_blocks(monkeypatch, whole_gram):
    kid_module = importlib.import_module("gensemble.metrics.kid")
    if not whole_gram:  # the per-subset fallback for sets too large for one Gram matrix
        monkeypatch.setattr(kid_module, "WHOLE_GRAM", 0)
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(250, 8)), rng.normal(0.3, 1.2, size=(180, 8))
    estimates = []
    for ix, iy in kid_module.kid_subsets(len(real), len(fake), 15, 90, 4):
        xs, ys = real[ix], fake[iy]
        k_xx, k_yy, k_xy = (polynomial_kernel(a, b) for a, b in ((xs, xs), (ys, ys), (xs, ys)))
        estimates.append(mmd2_unbiased(k_xx, k_yy, k_xy))
    got = kid(real, fake, subsets=15, subset_size=90, seed=4)
    assert got.mean == pytest.approx(np.mean(estimates), rel=1e-10, abs=1e-14)
    assert got.std == pytest.approx(np.std(estimates), rel=1e-8)
