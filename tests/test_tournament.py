"""The tournament: the score matrix and its vectors, battles, ratings, selection, and the CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from gensemble.calibration import IdentityCalibrator
from gensemble.data import load_dataset
from gensemble.errors import ConfigError
from gensemble.run import build_ensemble, load_run, parse_config
from gensemble.tournament import (
    Judgements,
    RatingConfig,
    ScoreTable,
    battle_matrix,
    battle_scores,
    drop_below,
    judge,
    rate,
    roc_auc,
    score,
    select,
    select_top_k,
    table_from_judgements,
)
from gensemble.tournament.judges import JudgeConfig
from gensemble.training.member import build_member

from helpers import run_cli


# --- pure functions on hand-made judgements ---------------------------------------------------------
def make_judgements(fake_means: list[list[float]], owners: tuple = (None, None), seed: int = 0) -> Judgements:
    """Judgements with logits ~ N(mean, 1): real at +1, generator i seen by discriminator j at fake_means[i][j]."""
    g = torch.Generator().manual_seed(seed)
    m, n = len(fake_means), len(fake_means[0])
    real = torch.randn(n, 4000, generator=g) + 1.0
    fake = torch.randn(m, n, 4000, generator=g) + torch.tensor(fake_means)[:, :, None]
    cal = IdentityCalibrator()
    return Judgements(
        generators=tuple(f"g{i}" for i in range(m)),
        discriminators=tuple(f"d{j}" for j in range(n)),
        owners=owners,
        real_logits=real,
        fake_logits=fake,
        real_probs=cal.predict_proba(real),
        fake_probs=cal.predict_proba(fake),
        calibrators={f"d{j}": cal for j in range(n)},
        calibration="none",
    )


def test_roc_auc_matches_scikit_learn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 300), np.round(rng.normal(0, 1, 200), 1)
    expected = roc_auc_score(np.r_[np.ones(300), np.zeros(200)], np.r_[pos, neg])
    assert roc_auc(pos, neg) == pytest.approx(expected, abs=1e-12)


def test_matrix_and_score_vectors():
    """A generator whose samples look real (logits near the real +1) scores higher; S(G) is the row mean
    of the matrix and S(D) the column mean of the AUCs."""
    j = make_judgements([[0.8, 0.5], [-2.0, -1.0], [0.0, 0.0]], owners=(None, None))
    t = table_from_judgements(j)
    assert t.matrix.shape == (3, 2) and t.auc.shape == (3, 2)
    np.testing.assert_allclose(t.generator_scores, t.matrix.mean(axis=1))
    np.testing.assert_allclose(t.discriminator_scores, t.auc.mean(axis=0))
    assert t.generator_ranking() == ["g0", "g2", "g1"]
    assert t.auc[1].min() > t.auc[0].max()  # the worst generator is the easiest to tell from real


@pytest.mark.parametrize("scoring", ["battle", "elo", "glicko"])
def test_alternative_scorings_agree_on_a_clear_order(scoring):
    j = make_judgements([[0.8, 0.5], [-2.0, -1.5], [0.0, -0.2]], owners=(None, None))
    assert table_from_judgements(j, scoring).generator_ranking() == ["g0", "g2", "g1"]


def test_battle_margins_are_antisymmetric_with_own_judges():
    j = make_judgements([[0.5, -1.0], [-1.0, 0.0]], owners=("g0", "g1"))
    margins, r_test = battle_matrix(j)
    np.testing.assert_allclose(margins, -margins.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(margins), 0.0)
    np.testing.assert_allclose(r_test * r_test.T, 1.0)
    # g0 fools g1's judge (mean 0.0 vs g1's own 0.0 → even) and g1 is caught by g0's judge: g0 wins.
    assert margins[0, 1] > 0
    np.testing.assert_allclose(battle_scores(margins), [1.0, 0.0])


def test_ratings_put_the_stronger_player_on_top():
    """Discriminator 0 wins most of its games; generator 1 loses most of its own."""
    # (rounds, generators + real data, discriminators), from the discriminators' side
    out = np.array([[[0.9, 0.6], [0.95, 0.8], [0.7, 0.5]]] * 30)
    for method in ("elo", "glicko"):
        r = rate(out, method, RatingConfig(rounds=30))
        assert r["cols"][0] > r["cols"][1]
        assert r["rows"][1] == r["rows"].min() and r["rows"][2] == r["rows"].max()
    glicko = rate(out, "glicko", RatingConfig(rounds=30))
    assert (glicko["rows_rd"] < RatingConfig().initial_rd).all()  # deviations shrink as games are played


def test_selection():
    names, scores = ("a", "b", "c", "d"), np.array([0.3, 0.9, 0.1, 0.5])
    assert select_top_k(names, scores, 2) == ["b", "d"]  # kept in the original order
    assert select_top_k(names, scores, 0) == list(names)
    assert drop_below(names, scores, 0.3) == ["a", "b", "d"]
    with pytest.raises(ConfigError, match="only 4"):
        select_top_k(names, scores, 5)
    with pytest.raises(ConfigError, match="every one of the generators scores below the threshold 0.95"):
        drop_below(names, scores, 0.95)
    t = table_from_judgements(make_judgements([[0.8, 0.5], [-2.0, -1.0], [0.0, 0.0]]))
    sel = select(t, top_k_generators=2, top_k_discriminators=1)
    assert sel.generators == ("g0", "g2") and len(sel.discriminators) == 1
    assert select(t, min_generator_score=float(t.generator_scores[2]) - 1e-9).generators == ("g0", "g2")


def test_to_json_keys_and_shapes():
    t = table_from_judgements(make_judgements([[0.8, 0.5], [-2.0, -1.0], [0.0, 0.0]]), "glicko")
    doc = json.loads(json.dumps(t.to_json()))
    for key in ("generators", "discriminators", "matrix", "generator_scores", "discriminator_scores"):
        assert key in doc
    assert np.array(doc["matrix"]).shape == (3, 2)
    assert len(doc["pairs"]) == 6
    assert {"generator", "discriminator", "mean_prob", "auc"} <= set(doc["pairs"][0])
    assert "g0" in t.format() and "d1" in t.format()


# --- on trained ensembles ---------------------------------------------------------------------------
def add_broken_member(ens, seed: int = 7) -> None:
    """An untrained member whose generator is moved to (1, 1), between four of grid25's modes.

    Untrained generators put their samples in a tight blob near the origin, which on grid25 is one of
    the real modes, so an untrained generator alone is not reliably bad there; the shift makes it so.
    """
    member = build_member(replace(ens.cfg.members[0], name="broken", seed=seed), ens.shape, ens.device)
    with torch.no_grad():
        member.model.G[-1].bias += torch.tensor([1.0, 1.0])
    member.model.eval()
    ens.members.append(member)


def test_score_shapes_and_determinism(grid25_trio):
    ens = load_run(grid25_trio)
    real = load_dataset(ens.cfg.data, "test")
    a, b = score(ens, real, n_samples=500), score(ens, real, n_samples=500)
    assert isinstance(a, ScoreTable)
    assert a.generators == ("m0", "m1", "m2") and a.discriminators == ("m0.D", "m1.D", "m2.D")
    assert a.matrix.shape == (3, 3) and a.n_samples == 500
    assert ((a.matrix > 0) & (a.matrix < 1)).all()
    np.testing.assert_array_equal(a.matrix, b.matrix)
    assert (a.auc.mean(axis=0) > 0.5).all()  # trained discriminators beat chance


def test_the_tournament_ranks_a_broken_member_last(grid25_trio):
    ens = load_run(grid25_trio)
    add_broken_member(ens)
    j = judge(ens, load_dataset(ens.cfg.data, "test"))
    for scoring in ("matrix", "elo", "glicko"):
        t = table_from_judgements(j, scoring)
        assert t.generator_ranking()[-1] == "broken", (scoring, t.generator_scores)
    # As trained, its untrained discriminator separates nothing: last among the judges, at chance.
    raw = table_from_judgements(judge(ens, load_dataset(ens.cfg.data, "test"), judges=JudgeConfig("raw")))
    assert raw.discriminator_ranking()[-1] == "broken.D"
    assert raw.discriminator_scores[-1] == pytest.approx(0.5, abs=0.1)
    # Fine-tuned against samples pooled from every generator, the same network becomes a judge.
    tuned = table_from_judgements(j)
    assert tuned.extra["judges"]["kind"] == "finetuned"
    assert tuned.discriminator_scores[-1] > raw.discriminator_scores[-1] + 0.1


def test_judges_rank_members_of_clearly_different_quality(grid25_trio):
    """Every judge kind puts an untrained generator last; the feature judge needs no discriminator."""
    ens = load_run(grid25_trio)
    add_broken_member(ens)
    real = load_dataset(ens.cfg.data, "test")
    for kind in ("finetuned", "features"):
        t = table_from_judgements(judge(ens, real, n_samples=500, judges=JudgeConfig(kind, steps=100)))
        assert t.generator_ranking()[-1] == "broken", (kind, t.generator_scores)
    feats = table_from_judgements(judge(ens, real, n_samples=500, judges=JudgeConfig("features", steps=100)))
    assert feats.discriminators == ("features",)


def test_self_judgement_off_leaves_out_each_members_own_judge(grid25_trio):
    ens = load_run(grid25_trio)
    j = judge(
        ens,
        load_dataset(ens.cfg.data, "test"),
        n_samples=300,
        judges=JudgeConfig("raw", self_judgement=False),
    )
    counted = j.counted()
    assert not counted.diagonal().any() and counted.sum() == 6
    t = table_from_judgements(j)
    np.testing.assert_allclose(t.generator_scores[0], t.matrix[0, 1:].mean())


def tiny_image_ensemble(families: list[str]):
    members = [
        {"model": {"name": "vae", "z_dim": 4, "width": 4}, "seed": i}
        if f == "vae"
        else {"model": {"name": "mlp-gan", "z_dim": 4, "g_hidden": 16, "d_hidden": 16}, "seed": i}
        for i, f in enumerate(families)
    ]
    cfg = parse_config({"data": {"name": "digits"}, "members": members})
    data = load_dataset(cfg.data, "test")
    return build_ensemble(cfg, data.shape), data


def test_vae_decoders_are_scored_like_any_generator():
    ens, data = tiny_image_ensemble(["gan", "vae"])
    t = score(ens, data, n_samples=100, judges=JudgeConfig("finetuned"))
    assert t.generators == ("m0", "m1") and t.discriminators == ("m0.D",)
    assert t.matrix.shape == (2, 1)


def test_scoring_a_run_without_discriminators_is_a_clear_error():
    ens, data = tiny_image_ensemble(["vae", "vae"])
    with pytest.raises(ConfigError, match="scoring needs discriminators, but this ensemble has none"):
        score(ens, data, judges=JudgeConfig("finetuned"))
    # The default judge on a dataset with a domain classifier is the feature judge: it needs no D.
    t = score(ens, data, n_samples=50, judges=JudgeConfig(steps=2))
    assert t.discriminators == ("features",) and t.extra["judges"]["kind"] == "features"


def test_cli_score_table_and_json(grid25_trio, capsys):
    code, out, _ = run_cli(capsys, "score", str(grid25_trio), "-n", "300")
    assert code == 0 and "S(G)" in out and "m2.D" in out
    code, out, _ = run_cli(capsys, "score", str(grid25_trio), "-n", "300", "--json", "--scoring", "battle")
    doc = json.loads(out)
    assert code == 0 and doc["generators"] == ["m0", "m1", "m2"] and doc["scoring"] == "battle"
    assert len(doc["matrix"]) == 3 and len(doc["discriminator_scores"]) == 3


def test_cli_score_without_discriminators(tmp_path, capsys):
    from helpers import write_config

    cfg = write_config(
        tmp_path / "vae.yaml",
        {
            "data": {"name": "digits"},
            "model": {"name": "vae", "z_dim": 4, "width": 4},
            "train": {"steps": 1, "batch_size": 8},
        },
    )
    assert run_cli(capsys, "train", str(cfg), "--out", str(tmp_path / "run"))[0] == 0
    code, out, err = run_cli(capsys, "score", str(tmp_path / "run"), "--judges", "finetuned")
    assert code == 2 and err.count("\n") == 1 and "needs discriminators" in err and "Traceback" not in err
    code, out, err = run_cli(capsys, "score", str(tmp_path / "run"), "-n", "50")
    assert code == 0 and "features" in out


@pytest.mark.slow
def test_every_scoring_ranks_a_broken_member_last_on_a_longer_trained_ensemble(grid25_trio_long):
    ens = load_run(grid25_trio_long)
    add_broken_member(ens)
    j = judge(ens, load_dataset(ens.cfg.data, "test"))
    for scoring in ("matrix", "battle", "elo", "glicko"):
        t = table_from_judgements(j, scoring)
        assert t.generator_ranking()[-1] == "broken", (scoring, t.generator_scores)
