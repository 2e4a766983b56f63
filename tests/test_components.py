"""Modules with no test of their own before: registry, catalog, tournament.selection and .scorings,
training.memory, run.budget and export. Tiny shapes, CPU only."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gensemble.catalog import CATALOG, list_components
from gensemble.data import load_dataset
from gensemble.errors import ConfigError, UnknownNameError
from gensemble.export import export_generator
from gensemble.registry import Registry
from gensemble.run import load_run, parse_config, train_run
from gensemble.run.budget import describe_seconds, estimate_seconds
from gensemble.tournament import Judgements, ScoreTable
from gensemble.tournament.scorings import battle_matrix, battle_scores, fool_rates, judges_of
from gensemble.tournament.selection import drop_below, select, select_top_k
from gensemble.training.member import MemberConfig
from gensemble.training.memory import check_memory, gib, member_bytes

from helpers import TINY_TOY


# --- registry and catalog ---------------------------------------------------------------------------
def test_registry_names_lists_and_refuses():
    reg: Registry[int] = Registry("widget")
    reg.register("b", "the second")(2)
    reg.register("a")(1)
    reg.register("folder:")(3)
    assert reg.get("a") == 1 and reg.get("folder:/some/path") == 3  # a prefix name
    assert reg.names() == ["a", "b", "folder:"] and reg.registered() == ["b", "a", "folder:"]
    assert ("b", "the second") in reg.describe() and "a" in reg and "c" not in reg
    with pytest.raises(UnknownNameError, match="unknown widget 'c'; known widgets: a, b, folder:"):
        reg.get("c")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a")(4)


@pytest.mark.parametrize("what", CATALOG)
def test_catalog_lists_every_kind_with_descriptions(what):
    items = list_components(what)
    assert items and all(isinstance(n, str) and n and isinstance(d, str) for n, d in items)
    expected = {"fusions": "auto", "metrics": "fid", "schemes": "independent", "backends": "local"}
    if what in expected:
        assert expected[what] in dict(items)


# --- selection --------------------------------------------------------------------------------------
def test_top_k_keeps_the_best_in_their_original_order_and_refuses_too_many():
    names, scores = ["a", "b", "c", "d"], np.array([0.1, 0.9, 0.5, 0.9])
    assert select_top_k(names, scores, 2) == ["b", "d"]  # a tie keeps both, in order
    assert select_top_k(names, scores, 3) == ["b", "c", "d"]
    assert select_top_k(names, scores, 0) == names
    with pytest.raises(ConfigError, match="only 4"):
        select_top_k(names, scores, 5)
    with pytest.raises(ConfigError, match="non-negative"):
        select_top_k(names, scores, -1)


def test_thresholds_drop_members_and_never_leave_none():
    assert drop_below(["a", "b"], np.array([0.2, 0.6]), 0.5) == ["b"]
    assert drop_below(["a", "b"], np.array([0.2, 0.6]), None) == ["a", "b"]
    with pytest.raises(ConfigError, match="best: 0.600"):
        drop_below(["a", "b"], np.array([0.2, 0.6]), 0.9)


def table(g_scores, d_scores) -> ScoreTable:
    m, n = len(g_scores), len(d_scores)
    z = np.zeros((m, n))
    return ScoreTable(
        tuple(f"g{i}" for i in range(m)),
        tuple(f"d{j}" for j in range(n)),
        z,
        z,
        z,
        np.zeros(n),
        np.asarray(g_scores, float),
        np.asarray(d_scores, float),
    )


def test_select_applies_thresholds_then_top_k_on_each_side():
    t = table([0.1, 0.5, 0.4, 0.8], [0.7, 0.2, 0.9])
    sel = select(t, top_k_generators=2, top_k_discriminators=1, min_generator_score=0.3)
    assert sel.generators == ("g1", "g3") and sel.discriminators == ("d2",)
    with pytest.raises(ConfigError, match="only 3 remain after the threshold"):
        select(t, top_k_generators=4, min_generator_score=0.3)


# --- scorings ---------------------------------------------------------------------------------------
def judgements(fake_probs: torch.Tensor, real_probs: torch.Tensor, owners) -> Judgements:
    m, n, _ = fake_probs.shape
    return Judgements(
        tuple(f"g{i}" for i in range(m)),
        tuple(f"d{j}" for j in range(n)),
        tuple(owners),
        torch.zeros_like(real_probs),
        torch.zeros_like(fake_probs),
        real_probs,
        fake_probs,
        {},
        "platt",
    )


def test_fool_rates_battles_and_own_judges():
    # g0 fools both judges half the time, g1 rarely: g0 must win their battle under either panel.
    fake = torch.stack([torch.full((2, 10), 0.6), torch.full((2, 10), 0.2)])
    fake[0, :, 5:] = 0.4
    j = judgements(fake, torch.full((2, 20), 0.8), ["g0", "g1"])
    assert judges_of(j) == [[0], [1]]
    hard = fool_rates(j)
    assert hard[0, 0] == pytest.approx((5 + 0.5) / 11) and hard[1, 0] == pytest.approx(0.5 / 11)
    assert fool_rates(j, soft=True)[0, 0] == pytest.approx(0.5)
    margins, r_test = battle_matrix(j)
    assert margins[0, 1] > 0 and margins[1, 0] == pytest.approx(-margins[0, 1])
    assert np.allclose(r_test, 1.0)  # both panels err equally on real data: a fair battle
    assert battle_scores(margins).tolist() == [1.0, 0.0]
    # A generator whose member has no judge (a VAE) is judged by everyone.
    assert judges_of(judgements(fake, torch.full((2, 20), 0.8), ["g0", "g0"])) == [[0, 1], [0, 1]]


def test_battle_draws_count_half():
    assert battle_scores(np.array([[0.0, 0.01], [-0.01, 0.0]])).tolist() == [0.5, 0.5]
    assert battle_scores(np.zeros((1, 1))).tolist() == [0.5]


# --- memory and budget ------------------------------------------------------------------------------
def test_member_memory_grows_with_batch_and_width_and_refusal_names_the_fix():
    small = MemberConfig(model={"name": "dcgan", "ngf": 8, "ndf": 8})
    wide = MemberConfig(model={"name": "dcgan", "ngf": 32, "ndf": 32})
    shape = (1, 28, 28)
    assert member_bytes(small, shape, 64) > member_bytes(small, shape, 8) > 0
    assert member_bytes(wide, shape, 8) > member_bytes(small, shape, 8)
    need = check_memory((small, small), shape, 8, torch.device("cpu"))
    assert need == 2 * member_bytes(small, shape, 8)
    huge = MemberConfig(model={"name": "dcgan", "ngf": 1024, "ndf": 1024})
    with pytest.raises(ConfigError, match="reduce train.batch_size"):
        check_memory((huge,) * 8, (3, 64, 64), 8192, torch.device("cpu"))
    assert gib(2**30) == "1.0 GiB" and gib(2**20) == "1 MiB"


def test_budget_estimate_scales_with_steps_and_reads_well():
    cfg = parse_config(TINY_TOY, ["train.steps=100"])
    data = load_dataset(cfg.data, "train")
    short = estimate_seconds(cfg, data, torch.device("cpu"), probe_seconds=0.3)
    longer = estimate_seconds(parse_config(TINY_TOY, ["train.steps=10000"]), data, torch.device("cpu"), 0.3)
    assert 0 < short < longer  # extrapolated from the same kind of probe, 100× the steps
    # A run shorter than the probe is simply trained (a throwaway copy) and timed whole.
    tiny = estimate_seconds(parse_config(TINY_TOY, ["train.steps=4"]), data, torch.device("cpu"), 10.0)
    assert 0 < tiny < short
    assert [describe_seconds(s) for s in (30, 600, 7200, 3 * 86400)] == ["30 s", "10 min", "2.0 h", "3 days"]


# --- export -----------------------------------------------------------------------------------------
def test_export_traces_a_generator_that_reproduces_the_model(tmp_path):
    run = tmp_path / "run"
    train_run(TINY_TOY, run, ["train.steps=3"])
    got = export_generator(run, "m0", tmp_path / "G.pt")
    meta = json.loads((tmp_path / "G.json").read_text())
    assert got["z_dim"] == meta["z_dim"] and meta["member"] == "m0" and meta["output_shape"] == [2]
    traced = torch.jit.load(str(tmp_path / "G.pt"))
    z = torch.randn(5, meta["z_dim"], generator=torch.Generator().manual_seed(1))
    model = load_run(run).member("m0").model.eval()
    with torch.no_grad():
        torch.testing.assert_close(traced(z), model.decode(z))
