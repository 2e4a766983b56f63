"""Fusion methods: the registry, every sampler's output, quality gains on grid25, and clear errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from gensemble.data import load_dataset
from gensemble.data.toy import toy_modes
from gensemble.errors import ConfigError, GensembleError, UnknownNameError
from gensemble.fusion import (
    FusionContext,
    build_fusion,
    fusion_names,
    parse_fusion_params,
    parse_fusion_settings,
)
from gensemble.fusion.accept import drs_acceptance
from gensemble.fusion.average import average_state_dicts
from gensemble.fusion.choose import simulate_mh
from gensemble.fusion.ddls import energy, langevin
from gensemble.fusion.learned_weights import fid_weights, mmd_weights
from gensemble.fusion.proposal import shift_for
from gensemble.fusion.weighted import softmax_weights
from gensemble.metrics.distance import BlockDistance, ReferenceDistance, median_bandwidths
from gensemble.run import build_ensemble, load_run, parse_config
from gensemble.sampling import Samples
from gensemble.tournament.judges import judge_split

from helpers import run_cli

ALL = [
    "auto",
    "average",
    "best",
    "ddls",
    "learned-weights",
    "mh",
    "rejection",
    "shares",
    "snapshots",
    "stacked",
    "uniform",
    "vote",
    "weighted",
]
# Small fitting budgets so that each sampler builds in about a second.
QUICK = {
    "rejection": {"burn_in": 1000, "n_calibration": 1000, "n_choose": 200, "pool": 3},
    "stacked": {
        "burn_in": 1000,
        "n_calibration": 1000,
        "meta": "forest",
        "n_trees": 20,
        "n_choose": 200,
        "pool": 3,
    },
    "vote": {"n_calibration": 1000},
    "mh": {"n_calibration": 1000, "chain_length": 5},
    "learned-weights": {"n_fit": 300},
    "weighted": {"n_score": 300},
    "best": {"n_rank": 300},
    "average": {"members": ["m0"]},
    "uniform": {},
    "shares": {},
    "auto": {"burn_in": 300, "n_calibration": 500, "n_choose": 200, "pool": 3, "gamma_percentiles": [80]},
    "ddls": {"n_calibration": 1000, "steps": 5},
    "snapshots": {"burn_in": 1000, "n_calibration": 1000, "members": ["m1"], "n_choose": 200, "pool": 3},
}


def high_quality_frac(x: torch.Tensor) -> float:
    """Share of points within 3σ of their nearest grid25 mode (the VEEGAN/PacGAN criterion)."""
    centres, sigma = toy_modes("grid25")
    return float((torch.cdist(x.double(), centres.double()).min(dim=1).values < 3 * sigma).double().mean())


@pytest.fixture(scope="module")
def trio(grid25_trio):
    ens = load_run(grid25_trio)
    return ens, load_dataset(ens.cfg.data, "test")


def test_every_method_is_registered_with_a_description():
    names = dict(fusion_names())
    assert sorted(names) == ALL
    assert all(names.values())


@pytest.mark.parametrize("name", ALL)
def test_every_method_samples(trio, name):
    ens, real = trio
    sampler = build_fusion(ens, name, real, QUICK[name])
    out = sampler.sample(300, torch.Generator().manual_seed(0))
    assert isinstance(out, Samples)
    assert out.x.shape == (300, 2) and out.member_ids.shape == (300,)
    assert torch.isfinite(out.x).all()
    assert 0 <= int(out.member_ids.min()) and int(out.member_ids.max()) < len(out.members)
    if name in ("rejection", "stacked", "vote", "mh", "snapshots") or (
        name == "auto" and (sampler.choice["gamma_percentile"] is not None or "mh_chain" in sampler.choice)
    ):
        assert 0.0 < sampler.acceptance_rate <= 1.0
    else:
        assert sampler.acceptance_rate is None
    again = build_fusion(ens, name, real, QUICK[name]).sample(300, torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.x, out.x)  # fitted with fit_seed, drawn with the caller's generator


# The paper's fixed γ (95th percentile): what these tests measure is the critic, not the choice of γ.
PAPER_GAMMA = {"gamma_percentile": 95.0}


@pytest.mark.integration
@pytest.mark.parametrize("name", ["rejection", "vote", "stacked"])
def test_critic_fusion_beats_the_uniform_mixture_on_grid25(trio, name):
    """The issue's claim: refining with the discriminators raises the share of high-quality samples.

    The trio is young (1000 steps; uniform sits near 2.3-2.75 %). Its discriminators as they are
    barely help (measured: 2.5-4.75 %); judges fine-tuned 500 steps on the calibration half of the
    held-out data against samples pooled from every member help much more. How much depends on the
    trio, which trains differently on different CPUs. Measured on an AVX512 machine: 15.2-15.8 % for
    all three. On an AMD EPYC without AVX512-BF16 (2026-12-03): rejection 10.45 % (raw 3.95 %),
    stacked 13.75 % (raw 4.0 %), vote 7.6 % (raw 4.75 %). DRS (rejection, stacked) at least doubles
    the better of the two on both machines. Vote's fixed majority at P(real) > 0.5 does not adapt
    its strictness the way γ does, so for vote the claim is the significant one: more than 3
    standard errors (of a difference of two shares of 2,000) above both, and 5 points above uniform.
    """
    ens, real = trio
    gamma = PAPER_GAMMA if name != "vote" else {}
    base = high_quality_frac(
        build_fusion(ens, "uniform", real).sample(2000, torch.Generator().manual_seed(11)).x
    )
    as_is = high_quality_frac(
        build_fusion(ens, name, real, {"judges": "raw", **gamma})
        .sample(2000, torch.Generator().manual_seed(11))
        .x
    )
    tuned = build_fusion(ens, name, real, {"judge_steps": 500, **gamma})
    refined = high_quality_frac(tuned.sample(2000, torch.Generator().manual_seed(11)).x)
    assert refined - base > 0.05, (name, base, as_is, refined)
    if name == "vote":
        other = max(base, as_is)
        se = math.sqrt((refined * (1 - refined) + other * (1 - other)) / 2000)
        assert refined - other > 3 * se, (name, base, as_is, refined, se)
    else:
        assert refined > 2.0 * max(base, as_is), (name, base, as_is, refined)


def test_selection_restricts_the_members(trio):
    ens, real = trio
    sampler = build_fusion(ens, "uniform", real, {"top_k": 2, "n_score": 300})
    ids = sampler.sample(500, torch.Generator().manual_seed(0)).member_ids
    assert len(set(ids.tolist())) == 2
    best = build_fusion(ens, "best", real, {"n_rank": 300}).sample(50).member_ids
    assert len(set(best.tolist())) == 1
    by_tournament = build_fusion(ens, "best", real, {"by": "tournament", "n_score": 300}).sample(50)
    assert len(set(by_tournament.member_ids.tolist())) == 1


def test_best_takes_the_member_with_the_lowest_held_out_fid(trio):
    ens, real = trio
    ctx = FusionContext.build(ens, real, 0)
    fids = ctx.heldout_fids(300)
    assert set(fids) == {"m0", "m1", "m2"} and all(v >= 0 for v in fids.values())
    sampler = build_fusion(ens, "best", real, {"n_rank": 300}, ctx=ctx)
    assert sampler.names == [min(fids, key=fids.get)]


def test_weighted_sharpens_towards_the_best_as_temperature_falls(trio):
    ens, real = trio
    hot = build_fusion(ens, "weighted", real, {"temperature": 100.0, "n_score": 300})
    cold = build_fusion(ens, "weighted", real, {"temperature": 1e-4, "n_score": 300})
    np.testing.assert_allclose(sorted(hot.weights.tolist()), [1 / 3] * 3, atol=1e-3)
    assert float(cold.weights.max()) > 0.99
    np.testing.assert_allclose(softmax_weights(np.array([0.0, np.log(3.0)]), 1.0), [0.25, 0.75])


def test_mmd_weights_recover_mixture_proportions():
    rng = np.random.default_rng(0)
    a, b = rng.normal(-3, 0.3, (600, 2)), rng.normal(3, 0.3, (600, 2))
    real = np.concatenate([rng.normal(-3, 0.3, (300, 2)), rng.normal(3, 0.3, (700, 2))])
    bad = rng.uniform(-8, 8, (600, 2))
    w = mmd_weights([a, b, bad], real, median_bandwidths(np.concatenate([a, b, real])))
    np.testing.assert_allclose(w, [0.3, 0.7, 0.0], atol=0.06)


def test_learned_weights_with_fid(trio):
    ens, real = trio
    sampler = build_fusion(ens, "learned-weights", real, {"divergence": "fid", "n_fit": 300})
    assert sampler.weights.sum() == pytest.approx(1.0) and (sampler.weights >= 0).all()


def test_drs_acceptance():
    lr = torch.tensor([-5.0, -1.0, 0.0, 2.0])
    p = drs_acceptance(lr, log_m=2.0, gamma=0.0)
    assert (p[1:] > p[:-1]).all() and float(p[-1]) > 0.99  # the maximum ratio is (nearly) always accepted
    shifted = drs_acceptance(lr, log_m=2.0, gamma=3.0)
    assert (shifted < p).all()  # a larger γ accepts less
    by_percentile = drs_acceptance(torch.linspace(-5, 0, 101), log_m=0.0, percentile=50.0)
    assert float(by_percentile[50]) == pytest.approx(0.5, abs=0.02)  # γ = the median of F


def test_vote_quorum(trio):
    ens, real = trio
    majority = build_fusion(ens, "vote", real, QUICK["vote"])
    unanimous = build_fusion(ens, "vote", real, {**QUICK["vote"], "quorum": 3})
    majority.sample(500, torch.Generator().manual_seed(0))
    unanimous.sample(500, torch.Generator().manual_seed(0))
    assert unanimous.acceptance_rate < majority.acceptance_rate
    with pytest.raises(
        ConfigError, match=r"fusion.quorum=4 is larger than the number of discriminators \(3\)"
    ):
        build_fusion(ens, "vote", real, {"quorum": 4})


def test_mh_outputs_come_from_the_generators_not_the_real_data(trio):
    ens, real = trio
    sampler = build_fusion(ens, "mh", real, QUICK["mh"])
    out = sampler.sample(200, torch.Generator().manual_seed(0))
    assert (torch.cdist(out.x, real.x).min(dim=1).values > 0).all()


def test_average_ema_and_snapshot_soup(trio):
    ens, real = trio
    ema = build_fusion(ens, "average", real, {"members": ["m1"], "source": "ema"})
    soup = build_fusion(ens, "average", real, {"members": ["m1"], "source": "snapshots"})
    last = build_fusion(ens, "average", real, {"members": ["m1"], "source": "snapshots", "last": 1})
    assert ema.members == ["m1:ema"] and soup.members == ["m1:soup(4)"] and last.members == ["m1:soup(1)"]
    z = torch.Generator().manual_seed(0)
    # The last snapshot is the final weights (1000 % 250 == 0): a soup of one is the member itself.
    torch.testing.assert_close(
        last.sample(64, z).x, ens.member("m1").model.sample(64, torch.Generator().manual_seed(0))
    )


def test_average_state_dicts():
    a = {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(5)}
    b = {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(7)}
    out = average_state_dicts([a, b])
    torch.testing.assert_close(out["w"], torch.tensor([2.0, 4.0]))
    assert int(out["n"]) == 7  # integer buffers come from the last state
    with pytest.raises(ConfigError, match="do not share an architecture"):
        average_state_dicts([a, {"w": torch.zeros(3), "n": torch.tensor(1)}])


def test_average_refuses_independently_seeded_members(trio):
    ens, real = trio
    with pytest.raises(ConfigError, match="seeded independently"):
        build_fusion(ens, "average", real)


def test_average_refuses_members_with_different_architectures():
    cfg = parse_config(
        {
            "data": {"name": "grid25"},
            "members": [{"model": {"name": "mlp-gan", "g_hidden": h}, "seed": 0} for h in (16, 32)],
            "train": {"ema_decay": 0.9},
        }
    )
    ens = build_ensemble(cfg, (2,))
    with pytest.raises(
        ConfigError, match=r"share an architecture, but m0 and m1 differ \(g_hidden 16 vs 32\)"
    ):
        build_fusion(ens, "average", torch.randn(100, 2))


def test_average_without_ema_or_snapshots():
    cfg = parse_config({"data": {"name": "grid25"}, "model": {"name": "mlp-gan", "g_hidden": 16}})
    ens = build_ensemble(cfg, (2,))
    with pytest.raises(ConfigError, match="neither EMA weights nor snapshots"):
        build_fusion(ens, "average", torch.randn(100, 2))
    with pytest.raises(ConfigError, match="needs EMA weights"):
        build_fusion(ens, "average", torch.randn(100, 2), {"source": "ema"})


def all_vae_ensemble():
    cfg = parse_config(
        {
            "data": {"name": "digits"},
            "members": [{"model": {"name": "vae", "z_dim": 4, "width": 4}, "seed": s} for s in (0, 1)],
        }
    )
    data = load_dataset(cfg.data, "test")
    return build_ensemble(cfg, data.shape), data


def test_best_ranks_raw_pixels_of_a_small_folder_by_mmd_not_a_rank_deficient_fid(tmp_path):
    """A colour folder's raw pixels (768 dims) against a choice quarter of a few dozen images: FID's
    covariances would be rank-deficient noise, so `best` ranks by the kernel MMD² and says nothing."""
    from PIL import Image

    from gensemble.metrics.distance import fid_or_mmd

    assert fid_or_mmd(64, 1000) == "fid" and fid_or_mmd(3072, 125) == "mmd" and fid_or_mmd(250, 1000) == "fid"
    rng = np.random.default_rng(0)
    folder = tmp_path / "colour"
    folder.mkdir()
    for i in range(160):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), mode="RGB").save(
            folder / f"{i}.png"
        )
    cfg = parse_config(
        {
            "data": {"name": f"folder:{folder}", "image_size": 16, "test_fraction": 0.5},
            "members": [{"model": {"name": "vae", "z_dim": 4, "width": 4}, "seed": s} for s in (0, 1)],
        }
    )
    data = load_dataset(cfg.data, "test")
    ens = build_ensemble(cfg, data.shape)
    ctx = FusionContext.build(ens, data, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "samples < feature dims" warning
        scores = ctx.heldout_fids(50)
    assert len(ctx.choose_real) * 4 < 16 * 16 * 3 and set(scores) == {"m0", "m1"}
    assert all(math.isfinite(v) for v in scores.values())
    assert build_fusion(ens, "best", data, {"n_rank": 50}, ctx=ctx).names == [min(scores, key=scores.get)]


@pytest.mark.parametrize("name", ["weighted", "rejection", "vote", "stacked", "mh", "ddls"])
def test_methods_that_need_discriminators_refuse_an_all_vae_run(name):
    ens, data = all_vae_ensemble()
    # On digits the default judge is the feature judge, which needs no discriminator; with the Ds
    # as judges every critic method refuses.
    params = {"judges": "finetuned"}
    with pytest.raises(
        ConfigError, match=f"fusion '{name}' needs discriminators, but this ensemble has none"
    ):
        build_fusion(ens, name, data, params)


def test_methods_without_discriminators_work_on_images():
    ens, data = all_vae_ensemble()
    for name, params in (
        ("uniform", {}),
        ("learned-weights", {"n_fit": 50}),
        ("best", {"n_rank": 50}),
        ("mh", {"n_calibration": 40, "chain_length": 2, "judge_steps": 2}),  # a feature judge
    ):
        out = build_fusion(ens, name, data, params).sample(8)
        assert out.x.shape == (8, *data.shape) and -1 <= float(out.x.min()) and float(out.x.max()) <= 1
    with pytest.raises(ConfigError, match="needs discriminators"):
        build_fusion(ens, "uniform", data, {"top_k": 1, "judges": "finetuned"})  # the tournament's Ds
    # The default judges on a dataset with a domain classifier: the feature judge ranks VAEs too.
    picked = build_fusion(ens, "uniform", data, {"top_k": 1, "n_score": 40, "judge_steps": 2})
    assert len(picked.names) == 1


def test_parse_fusion_params():
    p = parse_fusion_params("vote", ["fusion.quorum=2", "fusion.calibration=isotonic"])
    assert p.quorum == 2 and p.calibration == "isotonic"
    with pytest.raises(ConfigError, match="unknown config key 'fusion.bogus'"):
        parse_fusion_params("uniform", ["fusion.bogus=1"])
    with pytest.raises(ConfigError, match="takes fusion.KEY=VALUE"):
        parse_fusion_params("uniform", ["train.steps=1"])
    with pytest.raises(ConfigError, match="'fusion.temperature' must be positive"):
        parse_fusion_params("weighted", ["fusion.temperature=0"])
    with pytest.raises(UnknownNameError, match="known fusion methods: auto, average, best"):
        parse_fusion_params("nope")


def test_rejection_gives_up_with_a_clear_error(trio):
    ens, real = trio
    sampler = build_fusion(ens, "vote", real, {**QUICK["vote"], "threshold": 0.999, "max_proposals": 2})
    with pytest.raises(GensembleError, match="accepted 0 of"):
        sampler.sample(100)


def test_cli_sample_of_one_member_does_not_warn_about_diversity(grid25_trio, tmp_path, capsys):
    """Asking for one member by name is not an ensemble losing its diversity."""
    out = tmp_path / "m0.npz"
    code, stdout, _ = run_cli(
        capsys, "sample", str(grid25_trio), "-n", "32", "--member", "m0", "-o", str(out)
    )
    assert code == 0 and "members: m0 100%" in stdout and "diversity" not in stdout
    assert set(np.load(out)["member_ids"].tolist()) == {0}


@pytest.mark.integration  # the sample command end to end: CI runs it in its second pass
def test_cli_sample_with_fusion(grid25_trio, tmp_path, capsys):
    out = tmp_path / "s.npz"
    code, stdout, _ = run_cli(
        capsys,
        "sample",
        str(grid25_trio),
        "-n",
        "64",
        "--fusion",
        "rejection",
        "--set",
        "fusion.burn_in=500",
        "--set",
        "fusion.n_calibration=500",
        "-o",
        str(out),
    )
    assert code == 0 and out.exists()
    data = np.load(out)
    assert data["x"].shape == (64, 2) and data["member_ids"].shape == (64,)
    code, _, err = run_cli(
        capsys,
        "sample",
        str(grid25_trio),
        "-n",
        "8",
        "--fusion",
        "vote",
        "--set",
        "fusion.quorum=9",
        "-o",
        str(out),
    )
    assert code == 2 and err.count("\n") == 1 and "quorum=9 is larger" in err
    code, out_list, _ = run_cli(capsys, "list", "fusions")
    assert code == 0 and all(name in out_list for name in ALL)


@pytest.mark.slow
def test_critics_as_trained_refine_a_longer_trained_ensemble(grid25_trio_long):
    """With 3000 steps of training the discriminators need no fine-tuning to pay off: the critics as
    trained (judges "raw"), with the paper's γ where there is one (the defaults: the next test)."""
    ens = load_run(grid25_trio_long)
    real = load_dataset(ens.cfg.data, "test")
    draw = torch.Generator().manual_seed(5)
    base = high_quality_frac(build_fusion(ens, "uniform", real).sample(3000, draw).x)
    for name in ("rejection", "vote", "stacked", "mh"):
        params = {"judges": "raw", **(PAPER_GAMMA if name in ("rejection", "stacked") else {})}
        refined = high_quality_frac(
            build_fusion(ens, name, real, params).sample(3000, torch.Generator().manual_seed(5)).x
        )
        assert refined > 1.5 * base, (name, base, refined)


@pytest.mark.slow
def test_default_critic_fusions_refine_a_longer_trained_ensemble(grid25_trio_long):
    """The defaults, as users get them: on a 2-D mixture the feature judge sits on the mode-kernel
    features, and rejection and auto choose their critic and γ on the choice quarter by FID on those
    features. (Before, with the feature judge on raw points and γ chosen by MMD, the default rejection
    kept the high-quality share at 27.7% against the uniform mixture's 25.1%, and MH made it 29.1%.)"""
    ens = load_run(grid25_trio_long)
    real = load_dataset(ens.cfg.data, "test")
    base = high_quality_frac(
        build_fusion(ens, "uniform", real).sample(3000, torch.Generator().manual_seed(5)).x
    )
    for name in ("rejection", "mh", "auto"):
        refined = high_quality_frac(
            build_fusion(ens, name, real).sample(3000, torch.Generator().manual_seed(5)).x
        )
        assert refined > 2.0 * base, (name, base, refined)


def test_critic_fusions_in_one_context_share_one_tournament_and_one_critic(trio, monkeypatch):
    import gensemble.fusion.critic as critic_mod
    import gensemble.tournament as tournament_mod
    from gensemble.fusion import FusionContext

    ens, real = trio
    fits, judged = [], []
    fit, judge = critic_mod.fit_ensemble_critic, tournament_mod.judge
    monkeypatch.setattr(critic_mod, "fit_ensemble_critic", lambda *a, **k: fits.append(1) or fit(*a, **k))
    monkeypatch.setattr(tournament_mod, "judge", lambda *a, **k: judged.append(1) or judge(*a, **k))
    ctx = FusionContext.build(ens, real, 0)
    for name in ("rejection", "vote", "mh", "ddls", "weighted", "best"):
        build_fusion(ens, name, real, {k: v for k, v in QUICK[name].items() if k != "n_score"}, ctx=ctx)
    # One critic per judge kind: the judges' (shared by all five) and the feature judge's, which
    # rejection also tries when it chooses its critic and γ.
    assert len(fits) == 2 and len(judged) == 1


def test_each_fusion_is_judged_by_its_own_settings_on_a_shared_context(trio, monkeypatch):
    """build_fusion binds each method's params to the context it hands it (judged_by): a tournament is
    run once per judge settings, whatever else differs, and the caller's context stays unbound."""
    import gensemble.tournament as tournament_mod
    from gensemble.fusion import FusionContext, FusionParams

    ens, real = trio
    judged = []
    judge = tournament_mod.judge
    monkeypatch.setattr(tournament_mod, "judge", lambda *a, **k: judged.append(1) or judge(*a, **k))
    ctx = FusionContext.build(ens, real, 0)
    raw = {"judges": "raw", "n_score": 300}
    cold = build_fusion(ens, "weighted", real, {**raw, "temperature": 0.01}, ctx=ctx)
    hot = build_fusion(ens, "weighted", real, {**raw, "temperature": 100.0}, ctx=ctx)
    assert len(judged) == 1  # the same judge settings: one tournament, read by both
    assert max(cold.weights) > max(hot.weights)  # each kept its own temperature
    build_fusion(ens, "weighted", real, {"judges": "features", "n_score": 300}, ctx=ctx)
    assert len(judged) == 2
    assert ctx.judging == FusionParams().on(ens.cfg.data.name)  # the defaults, made concrete
    bound = ctx.judged_by(parse_fusion_params("weighted", raw))
    assert bound.judging.judges == "raw" and bound._memo is ctx._memo


def test_ddls_moves_latents_down_its_energy(trio):
    """Langevin steps without noise descend E(z) = ½‖z‖² − d(G(z)) (the critic's log-ratio plus the
    prior); with 0 steps DDLS is the uniform proposal itself."""
    ens, real = trio
    base = build_fusion(ens, "ddls", real, {"n_calibration": 1000, "steps": 0})
    x0 = base.sample(500, torch.Generator().manual_seed(3)).x
    uniform = build_fusion(ens, "uniform", real).sample(500, torch.Generator().manual_seed(3))
    assert x0.shape == uniform.x.shape
    p = parse_fusion_params("ddls", {"n_calibration": 1000, "steps": 30, "noise": 0.0, "step_size": 0.05})
    model = next(iter(ens.generators().values())).eval()
    z0 = model.latent(500, torch.Generator().manual_seed(3))
    z1 = langevin(model, base.critic, z0, p, None)
    with torch.enable_grad():
        e0, e1 = energy(model, base.critic, z0).mean(), energy(model, base.critic, z1).mean()
    assert e1 < e0 - 0.1, (float(e0), float(e1))


def test_ddls_refuses_isotonic_calibration():
    with pytest.raises(ConfigError, match="platt for ddls"):
        parse_fusion_params("ddls", {"calibration": "isotonic"})


def test_snapshot_ensemble_mixes_the_saved_generators(trio):
    ens, real = trio
    mix = build_fusion(ens, "snapshots", real, {"members": ["m1"], "refine": "none"})
    assert mix.members == ["m1@250", "m1@500", "m1@750", "m1@final"]  # 1000 is the final generator
    shares = mix.sample(2000, torch.Generator().manual_seed(0)).shares()
    assert all(0.15 < v < 0.35 for v in shares.values()), shares
    refined = build_fusion(ens, "snapshots", real, QUICK["snapshots"])
    out = refined.sample(300, torch.Generator().manual_seed(0))
    assert out.x.shape == (300, 2) and 0 < refined.acceptance_rate < 1


def test_snapshot_ensemble_without_snapshots_says_how_to_get_them():
    cfg = parse_config({"data": {"name": "grid25"}, "model": {"name": "mlp-gan", "g_hidden": 16}})
    ens = build_ensemble(cfg, (2,))
    with pytest.raises(ConfigError, match="no snapshots in this run; train with train.snapshot_every"):
        build_fusion(ens, "snapshots", torch.randn(100, 2))


def test_auto_chooses_on_held_out_data_and_is_never_worse_than_the_best_member_there(trio):
    ens, real = trio
    p = {"burn_in": 300, "n_calibration": 500, "n_choose": 200, "pool": 3, "gamma_percentiles": [50, 80]}
    sampler = build_fusion(ens, "auto", real, p)
    c = sampler.choice
    scored = {k: v for k, v in c["candidates"].items() if v is not None}
    # Every member alone is a candidate, the choice is the lowest, so it is at most the best member.
    assert {"m0", "m1", "m2", "uniform", "learned-weights"} <= set(scored)
    assert c["fid_choice"] == min(scored.values()) <= c["best_member_fid_choice"]
    assert c["best_member_fid_choice"] == min(scored[m] for m in ("m0", "m1", "m2"))
    assert c["chosen"] in scored and c["n_choose"] == 200 and "held-out" in c["why"]
    # The choice quarter is disjoint from what the critics are calibrated on and the judges train on.
    ctx = FusionContext.build(ens, real, 0)
    assert len(ctx.choose_real) + len(ctx.calib_real) + len(judge_split(ctx.cal_real)[0]) == len(ctx.cal_real)
    out = sampler.sample(200, torch.Generator().manual_seed(1))
    assert {m for m, v in out.shares().items() if v > 0} <= set(c["weights"])


def test_weighted_drs_correction_is_zero_for_the_uniform_mixture():
    np.testing.assert_allclose(shift_for(np.full(4, 0.25)), 0.0)
    s = shift_for(np.array([0.5, 0.5, 0.0]))
    assert s[0] == pytest.approx(-np.log(1.5)) and s[2] == -np.inf


def test_fusion_settings_apply_to_the_fusions_that_have_the_key():
    got = parse_fusion_settings(["uniform", "rejection"], ["fusion.gamma_percentile=80"])
    assert got["rejection"].gamma_percentile == 80 and not hasattr(got["uniform"], "gamma_percentile")
    with pytest.raises(ConfigError, match="no fusion among uniform has a parameter 'gamma_percentile'"):
        parse_fusion_settings(["uniform"], ["fusion.gamma_percentile=80"])
    with pytest.raises(ConfigError, match="needs a fusion"):
        parse_fusion_settings([], ["fusion.top_k=2"])
    assert parse_fusion_settings(["best"], {"best": {"top_k": 2}})["best"].top_k == 2


def test_rejection_chooses_gamma_on_held_out_data_and_says_so(trio):
    """γ's percentile "auto" (the default) and the critic are chosen among gamma_percentiles × critics
    on the choice quarter; the choice is recorded, and a given percentile is used as it is."""
    ens, real = trio
    p = {"burn_in": 300, "n_calibration": 500, "n_choose": 200, "pool": 3, "gamma_percentiles": [0, 90]}
    chosen = build_fusion(ens, "rejection", real, p)
    c = chosen.choice
    labels = {f"γ at p{g}, {k} critic" for g in (0, 90) for k in ("judges", "features")}
    assert set(c["candidates"]) == labels and c["n_choose"] == 200 and "held-out" in c["why"]
    scored = {k: v for k, v in c["candidates"].items() if v is not None}
    assert chosen.p.gamma_percentile in (0.0, 90.0) and c["critic"] in ("judges", "features")
    assert scored[c["chosen"]] == min(scored.values())
    assert c["chosen"] == f"γ at p{chosen.p.gamma_percentile:g}, {c['critic']} critic"
    one = build_fusion(ens, "rejection", real, {**p, "critics": ["judges"]}).choice
    assert set(one["candidates"]) == {"γ at p0", "γ at p90"}
    fixed = build_fusion(ens, "rejection", real, {**p, "gamma_percentile": 90})
    assert fixed.choice is None and fixed.p.gamma_percentile == 90
    # The combined critic (one logistic meta-critic over the discriminators and the feature judge) is
    # one more candidate, scored like the others.
    both = build_fusion(ens, "rejection", real, {**p, "critics": ["judges", "combined"]})
    assert {"γ at p0, combined critic", "γ at p90, combined critic"} <= set(both.choice["candidates"])
    assert both.choice["candidates"]["γ at p0, combined critic"] is not None
    assert both.sample(200, torch.Generator().manual_seed(0)).x.shape == (200, 2)


def test_mh_chooses_its_chain_length_on_held_out_data_and_says_so(trio):
    """chain_length "auto" (the default): the length among chain_choices whose simulated chains end
    closest to the choice quarter; a given length is used as it is."""
    ens, real = trio
    p = {"n_calibration": 500, "n_choose": 200, "pool": 3, "chain_choices": [2, 8]}
    chosen = build_fusion(ens, "mh", real, p)
    c = chosen.choice
    assert set(c["candidates"]) == {"chains of 2", "chains of 8"} and c["n_choose"] == 200
    assert c["candidates"][c["chosen"]] == min(c["candidates"].values()) and "held-out" in c["why"]
    assert c["chosen"] == f"chains of {chosen.p.chain_length}"
    assert chosen.sample(100, torch.Generator().manual_seed(0)).x.shape == (100, 2)
    fixed = build_fusion(ens, "mh", real, {**p, "chain_length": 3})
    assert fixed.choice is None and fixed.p.chain_length == 3
    with pytest.raises(ConfigError, match="'fusion.chain_choices' must be positive chain lengths"):
        parse_fusion_params("mh", {"chain_choices": [0, 5]})


def test_a_choice_on_several_spaces_scores_the_geometric_mean_whatever_each_space_scale():
    """BlockDistance: one distance per column block; with several, their geometric mean, so scaling
    one space's features rescales every candidate's score alike and leaves the order as it was."""
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 5))
    near, far = rng.normal(size=(400, 5)) + 0.1, rng.normal(size=(400, 5)) + 0.5
    # Candidate a is near on the first space and far on the second; b the other way, but farther.
    a, b = np.hstack([near[:, :2], far[:, 2:]]), np.hstack([far[:, :2] + 0.5, near[:, 2:]])

    def block(scale: float) -> BlockDistance:
        ref = real * np.array([1, 1, scale, scale, scale])
        return BlockDistance(
            ["one", "two"],
            [ReferenceDistance("fid", ref[:, :2]), ReferenceDistance("fid", ref[:, 2:])],
            [2, 3],
        )

    d = block(1.0)
    one, two = d.parts
    assert d(a) == pytest.approx(math.sqrt(one(a[:, :2]) * two(a[:, 2:])))
    assert d.label == "geometric mean of FID on one and FID on two" and d.kind == "geometric mean"
    s = np.array([1, 1, 100, 100, 100])
    assert (d(a) < d(b)) == (block(100.0)(a * s) < block(100.0)(b * s))
    assert block(100.0)(a * s) / block(100.0)(b * s) == pytest.approx(d(a) / d(b), rel=1e-6)
    single = BlockDistance(["one"], [one], [2])
    assert single(a[:, :2]) == one(a[:, :2]) and single.label == "FID"


def test_choice_spaces_are_checked_and_recorded():
    with pytest.raises(ConfigError, match="'fusion.choice_spaces' takes judges or feature extractors"):
        parse_fusion_params("auto", {"choice_spaces": ["judges", "nope"]})
    with pytest.raises(ConfigError, match="each once"):
        parse_fusion_params("rejection", {"choice_spaces": ["pixels", "pixels"]})
    ens, data = all_vae_ensemble()
    p = {
        "n_calibration": 40,
        "n_choose": 50,
        "pool": 2,
        "critics": ["judges"],
        "judge_steps": 2,
        "burn_in": 50,
    }
    both = {**p, "gamma_percentiles": [0, 80], "choice_spaces": ["judges", "pixels"]}
    c = build_fusion(ens, "rejection", data, both).choice
    assert c["choice_spaces"] == ["classifier:digits", "pixels"] and c["criterion"] == "geometric mean"
    assert "lowest geometric mean of MMD² on classifier:digits and MMD² on pixels" in c["why"]
    alone = build_fusion(ens, "rejection", data, p).choice  # the default: the judges' features
    assert alone["choice_spaces"] == ["classifier:digits"] and alone["criterion"] == "mmd"


def test_simulated_mh_chains_find_high_ratio_proposals_and_never_return_a_start():
    """auto scores MH-GAN from the pool: chains accept min(1, r'/r) moves, so they end mostly on the
    proposals the critic rates far above the rest; chains stuck on a start are rerun from a proposal."""
    feats = [np.arange(100.0)[:, None]]  # a proposal's feature is its index
    ratios = [np.where(np.arange(100) < 10, 5.0, -5.0)]  # the first ten look far more real
    out = simulate_mh(feats, ratios, np.zeros(200), 20, 0)
    assert (out[:, 0] < 10).mean() > 0.9
    stuck = simulate_mh(feats, ratios, np.full(200, 50.0), 20, 0)  # no proposal beats a start
    assert (stuck[:, 0] >= 0).all()  # every chain was rerun from a proposal, none returned a start


# auto at test sizes, with one short MH chain among its candidates.
AUTO_WITH_MH = {
    "burn_in": 300,
    "n_calibration": 500,
    "n_choose": 200,
    "pool": 3,
    "gamma_percentiles": [80],
    "mh_chains": [5],
}


def test_auto_tries_mh_under_every_critic(trio):
    ens, real = trio
    p = AUTO_WITH_MH
    c = build_fusion(ens, "auto", real, p).choice
    assert {
        "uniform + MH (chains of 5, judges critic)",
        "uniform + MH (chains of 5, features critic)",
    } <= set(c["candidates"])


def test_auto_reports_the_proposals_its_choice_drew(trio):
    """The benchmark's cost columns (and its free-ensemble goals) read `proposed` off auto too."""
    ens, real = trio
    p = AUTO_WITH_MH
    sampler = build_fusion(ens, "auto", real, p)
    sampler.sample(100, torch.Generator().manual_seed(0))
    inner = getattr(sampler.inner, "proposed", None)
    assert sampler.proposed == inner and (inner is None or inner >= 100)


def test_auto_never_chooses_a_candidate_dearer_than_max_cost(trio):
    """Every candidate's proposals per sample is reported; one above `max_cost` is scored, not chosen."""
    ens, real = trio
    free = build_fusion(ens, "auto", real, AUTO_WITH_MH).choice
    costs = free["proposals_per_sample"]
    assert costs["uniform"] == 1.0 and costs["uniform + MH (chains of 5, features critic)"] == 5.0
    assert all(v >= 1.0 for v in costs.values())
    drs = [k for k in costs if "rejection" in k]
    assert drs and all(costs[k] > 1.0 for k in drs)  # a DRS candidate keeps fewer than it draws
    cheap = build_fusion(ens, "auto", real, {**AUTO_WITH_MH, "max_cost": 1}).choice
    assert cheap["proposals_per_sample"][cheap["chosen"]] <= 1.0
    assert (
        cheap["gamma_percentile"] is None
        and "mh_chain" not in cheap
        and "at most 1 proposals" in cheap["why"]
    )
    with pytest.raises(ConfigError, match="max_cost"):
        build_fusion(ens, "auto", real, {**AUTO_WITH_MH, "max_cost": 0.5})


def test_auto_respects_its_time_budget_and_says_so(trio):
    """Out of time, auto scores no candidate beyond the members alone, and the record says so."""
    ens, real = trio
    c = build_fusion(ens, "auto", real, {**AUTO_WITH_MH, "budget_s": 1e-9}).choice
    scored = {k for k, v in c["candidates"].items()}
    assert scored == {"m0", "m1", "m2"} and c["chosen"] in scored
    assert (
        c["within_budget"] is False
        and c["unscored_from"] == "m0 + rejection (γ at p80, judges critic)"
        and c["budget_s"] == 1e-9
    )
    free = build_fusion(ens, "auto", real, AUTO_WITH_MH).choice
    assert free["within_budget"] is True and "unscored_from" not in free and free["seconds"] >= 0


def test_auto_with_too_few_held_out_images_returns_the_uniform_mixture_and_says_why(trio, monkeypatch):
    import gensemble.fusion.auto as auto_module

    ens, real = trio
    monkeypatch.setattr(auto_module, "MIN_CHOOSE", 10**6)
    with pytest.warns(UserWarning, match="needs 1000000 to choose"):
        sampler = build_fusion(ens, "auto", real, AUTO_WITH_MH)
    c = sampler.choice
    assert c["chosen"] == "uniform" and c["fallback"] and "data.test_fraction" in c["why"]
    assert set(c["weights"]) == {"m0", "m1", "m2"}
    assert set(sampler.sample(300, torch.Generator().manual_seed(0)).shares()) == {"m0", "m1", "m2"}


def test_fid_weights_on_more_dimensions_than_rows_fit_on_principal_axes():
    """3,072-d raw pixels of a 40-image choice set: the weights are fitted on the top 10 principal
    axes (not 3,072-d Fréchet distances) and still recover which member the data looks like."""
    from gensemble.metrics.fid import principal_axes

    rng = np.random.default_rng(0)
    d = 3072
    centre = np.zeros(d)
    centre[:8] = 6.0
    near = rng.normal(size=(200, d)) + centre
    far = rng.normal(size=(200, d)) - centre
    real = rng.normal(size=(40, d)) + centre
    assert principal_axes(real).shape == (d, 10) and principal_axes(real[:, :8]) is None
    w = fid_weights([near, far], real)
    assert w.sum() == pytest.approx(1.0) and w[0] > 0.9
