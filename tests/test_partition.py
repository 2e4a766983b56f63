"""The partition scheme: members that specialise on k-means clusters of the data, mixed by the
clusters' shares (`shares`, and a candidate of `auto`), and judged on their own cluster (`fid_own`)."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_ensemble import assert_identical_runs, ensemble_config

from gensemble.data import load_dataset
from gensemble.ensemble.partition import assign
from gensemble.evaluation.scoring import own_cluster_stats
from gensemble.fusion import build_fusion
from gensemble.fusion.auto import candidates
from gensemble.metrics import FeatureOutput, feature_stats
from gensemble.run import load_run, train_run

from helpers import assert_one_line_error, run_cli

PARTITION = {"name": "partition", "fit_images": 2000}


@pytest.fixture(scope="module")
def split_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("partition")
    return Path(train_run(ensemble_config(root / "c.yaml", PARTITION, n=3, steps=4), root / "R"))


def test_every_example_trains_exactly_one_member_and_the_shares_are_the_clusters(split_run):
    ens = load_run(split_run)
    w = torch.stack([ens.state.data_weights[m.name] for m in ens.members])
    assert w.shape == (3, 50_000) and set(w.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(w.sum(0), torch.ones(50_000))  # disjoint, and every example in one cluster
    torch.testing.assert_close(ens.state.mixture_weights, w.sum(1) / 50_000)
    assert ens.state.mixture_weights.min() > 0.15  # grid25's coordinates split into fair parts
    # Held-out points are matched to the specialist whose cluster they fall in, by the same centres.
    data = load_dataset(ens.cfg.data, "train")
    labels = assign(ens, data.x[:500])
    assert np.array_equal(labels, w[:, :500].argmax(0).numpy())


def test_shares_draws_each_specialist_at_its_clusters_share(split_run):
    ens = load_run(split_run)
    out = build_fusion(ens, "shares", load_dataset(ens.cfg.data, "test")).sample(6000, torch.Generator())
    drawn = torch.bincount(out.member_ids, minlength=3).double() / 6000
    torch.testing.assert_close(drawn, ens.state.mixture_weights.double(), atol=0.03, rtol=0)


def test_auto_offers_the_runs_own_weights_only_where_they_are_not_uniform():
    def labels(own):
        return {
            c.label
            for c in candidates(
                ["a", "b", "c"], [1.0, 2.0, 3.0], np.ones(3) / 3, (2,), (50.0,), ["judges"], own
            )
        }

    assert "shares" in labels(np.array([0.5, 0.3, 0.2])) and "shares + rejection (γ at p50)" in labels(
        np.array([0.5, 0.3, 0.2])
    )
    assert "shares" not in labels(np.ones(3)) and "shares" not in labels(None)


def test_a_partition_resumes_exactly_without_drawing_again(tmp_path):
    cfg = ensemble_config(tmp_path / "c.yaml", PARTITION, n=2, steps=6)
    straight = train_run(cfg, tmp_path / "a")
    train_run(cfg, tmp_path / "b", ["train.steps=3"])
    assert_identical_runs(straight, train_run(cfg, tmp_path / "b", resume=True))


@pytest.mark.parametrize(
    ("scheme", "needle"),
    [
        ({"name": "partition", "features": "nonsense"}, "scheme.features"),
        ({"name": "partition", "min_share": 0.9}, "scheme.min_share"),
    ],
)
def test_bad_partition_settings_are_one_line_errors(tmp_path, capsys, scheme, needle):
    cfg = ensemble_config(tmp_path / "c.yaml", scheme, n=2)
    code, _, err = run_cli(capsys, "train", str(cfg), "--out", str(tmp_path / "R"))
    assert_one_line_error(code, err, needle)
    assert not (tmp_path / "R").exists()


def test_a_cluster_too_small_to_train_on_is_refused(tmp_path, capsys):
    # Six clusters of grid25's plane cannot each hold a fifth of it.
    cfg = ensemble_config(tmp_path / "c.yaml", {"name": "partition", "min_share": 0.2}, n=6)
    code, _, err = run_cli(capsys, "train", str(cfg), "--out", str(tmp_path / "R"))
    assert_one_line_error(code, err, "clusters", "fewer members")


def test_each_specialist_is_graded_on_its_own_cluster_of_the_reference(split_run):
    """`evaluate`'s fid_own: a member's reference statistics are those of the reference images that
    the run's centres assign to it, where the cluster has more images than dimensions."""
    ens = load_run(split_run)
    real = load_dataset(ens.cfg.data, "test").x[:900]
    feats = real.double().numpy() * 3.0 + 1.0  # any features of the reference images
    plan = SimpleNamespace(ens=ens, real=real, n=900, toy=None)
    own = own_cluster_stats(plan, SimpleNamespace(reference=FeatureOutput(feats)))
    labels = assign(ens, real)
    assert sorted(own) == ["m0", "m1", "m2"]
    for i, m in enumerate(ens.members):
        mu, cov = feature_stats(feats[labels == i])
        np.testing.assert_allclose(own[m.name][0], mu)
        np.testing.assert_allclose(own[m.name][1], cov)
    assert (
        own_cluster_stats(
            SimpleNamespace(ens=ens, real=real, n=4, toy=None),
            SimpleNamespace(reference=FeatureOutput(feats[:4])),
        )
        == {}
    )
