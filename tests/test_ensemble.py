"""Ensemble schemes: each trains on grid25, names its networks stably, rejects members it cannot use
with a one-line error, resumes exactly, and (mixture) makes its generators differ."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import gensemble.run.hooks
from gensemble.checkpoint import latest_checkpoint
from gensemble.data.toy import toy_modes
from gensemble.ensemble.adagan import boosting_weights
from gensemble.run import load_config, load_run, train_run
from gensemble.run.config import parse_config

from helpers import run_cli, write_config

TINY = {"name": "mlp-gan", "z_dim": 2, "g_hidden": 16, "d_hidden": 16, "g_layers": 2, "d_layers": 2}
TINY_VAE = {"name": "vae", "width": 4, "z_dim": 4}
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def ensemble_config(
    path: Path,
    scheme: dict,
    n: int = 4,
    steps: int = 6,
    model: dict = TINY,
    member: dict | None = None,
    **extra,
) -> Path:
    members = [{"model": model, "seed": i, **(member or {})} for i in range(n)]
    train = {
        "steps": steps,
        "batch_size": 16,
        "checkpoint_every": 3,
        "log_every": 2,
        **extra.pop("train", {}),
    }
    cfg = {
        "data": {"name": "grid25"},
        "members": extra.pop("members", members),
        "scheme": scheme,
        "train": train,
    }
    return write_config(path, cfg)


SCHEMES = {
    "independent": ({"name": "independent"}, []),
    "multi-discriminator": (
        {"name": "multi-discriminator", "discriminators": 3},
        ["gman.D0", "gman.D1", "gman.D2"],
    ),
    "learned-lambda": (
        {"name": "multi-discriminator", "discriminators": 2, "learn_temperature": True},
        ["gman.D0", "gman.D1", "gman.lambda"],
    ),
    "max": ({"name": "multi-discriminator", "discriminators": 2, "aggregate": "max"}, ["gman.D0", "gman.D1"]),
    "mgan": ({"name": "mgan", "beta": 1.0}, ["mgan.D", "mgan.C"]),
    "boosting": ({"name": "boosting", "ratio_steps": 5}, ["boost.D"]),
    "swap": ({"name": "swap", "swap_every": 2}, []),
    "partition": ({"name": "partition", "fit_images": 1000}, []),
}


@pytest.mark.parametrize("case", list(SCHEMES))
def test_scheme_trains_and_names_every_network(tmp_path, case):
    scheme, aux = SCHEMES[case]
    run = train_run(ensemble_config(tmp_path / "c.yaml", scheme), tmp_path / "R")
    weights = load_file(str(latest_checkpoint(run) / "weights.safetensors"))
    nets = {".".join(k.split(".")[:2]) for k in weights}
    assert {f"m{i}.{net}" for i in range(4) for net in ("G", "D")} | set(aux) == nets
    ens = load_run(run)
    assert all(m.step == 6 for m in ens.members)
    mixture = ens.state.mixture_weights
    assert mixture.shape == (4,) and torch.isclose(mixture.sum(), torch.tensor(1.0))
    discriminators = ens.discriminators()
    assert all(d(torch.zeros(5, 2)).shape == (5,) for d in discriminators.values())
    if scheme["name"] in ("multi-discriminator", "mgan"):
        assert not {f"m{i}.D" for i in range(4)} & set(discriminators)  # members' own D's are idle
    assert len(ens.generators()) == 4


def test_the_old_scheme_name_mixture_still_loads_as_mgan(capsys):
    members = [{"model": TINY, "seed": s} for s in (0, 1)]
    cfg = parse_config({"scheme": {"name": "mixture", "beta": 0.5}, "members": members})
    assert cfg.scheme.name == "mgan" and cfg.scheme.params.beta == 0.5
    code, out, _ = run_cli(capsys, "list", "schemes")
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert code == 0 and "mgan" in names and "mixture" not in names


def test_list_schemes(capsys):
    code, out, _ = run_cli(capsys, "list", "schemes")
    assert code == 0
    for name in ("independent", "multi-discriminator", "mgan", "boosting", "swap"):
        assert name in out


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("gensemble: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def mixed_members(vae_at: int = 1) -> list:
    members = [{"model": TINY, "seed": 0}, {"model": TINY, "seed": 1}]
    members[vae_at] = {"model": TINY_VAE, "seed": vae_at}
    return members


@pytest.mark.parametrize(
    ("cfg", "needles"),
    [
        ({"scheme": {"name": "swap"}, "members": mixed_members()}, ["'swap'", "member 'm1'", "VAE"]),
        ({"scheme": {"name": "mgan"}, "members": mixed_members()}, ["'mgan'", "member 'm1'", "VAE"]),
        ({"scheme": "multi-discriminator", "members": mixed_members(0)}, ["member 'm0'", "VAE"]),
        ({"scheme": {"name": "swap"}, "members": [{"model": TINY}] * 3}, ["member 'm2'", "partner"]),
        (
            {"scheme": {"name": "swap"}, "members": [{"model": TINY}, {"model": {**TINY, "d_hidden": 8}}]},
            ["member 'm1'", "models differ"],
        ),
        ({"scheme": {"name": "mgan"}, "members": [{"model": TINY}]}, ["member 'm0'", "at least 2"]),
        (
            {"scheme": {"name": "mgan"}, "members": [{"model": TINY}, {"model": TINY, "loss": "hinge"}]},
            ["member 'm1'", "loss"],
        ),
        (
            {
                "scheme": {"name": "boosting"},
                "members": [{"model": TINY_VAE}, {"model": TINY_VAE, "seed": 1}],
            },
            ["member 'm0'", "ratio_model"],
        ),
        (
            {"scheme": {"name": "mgan"}, "members": [{"model": TINY}, {"model": TINY, "bootstrap": True}]},
            ["member 'm1'", "bootstrap"],
        ),
        ({"scheme": {"name": "mgan", "beta": -1}, "members": [{"model": TINY}] * 2}, ["scheme.beta"]),
        (
            {"scheme": {"name": "bagging"}, "members": [{"model": TINY}]},
            ["unknown scheme 'bagging'", "mgan"],
        ),
        ({"members": []}, ["'members' is empty", "at least one member"]),
        (
            {
                "data": {"name": "digits"},
                "members": [{"model": {"name": "dcgan", "ngf": 4, "ndf": 4, "image_size": 16}}],
            },
            ["member 'm0'", "16 px", "8 px"],
        ),
        (
            {
                "data": {"name": "digits"},
                "members": [{"model": {**TINY_VAE, "channels": 3}, "name": "painter"}],
            },
            ["member 'painter'", "3-channel"],
        ),
    ],
)
def test_bad_ensembles_get_one_line_errors_and_write_nothing(tmp_path, capsys, cfg, needles):
    base = {"data": {"name": "grid25"}, "train": {"steps": 2, "batch_size": 8}}
    path = write_config(tmp_path / "c.yaml", {**base, **cfg})
    code, _, err = run_cli(capsys, "train", str(path), "--out", str(tmp_path / "R"))
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "R").exists()


def test_unknown_backend_is_a_clear_error():
    from gensemble.errors import ConfigError
    from gensemble.execution import make_executor

    with pytest.raises(ConfigError, match="unknown backend 'slurm'.*local.*loop"):
        make_executor("slurm")


def test_example_configs_resolve():
    names = ["independent", "multi-discriminator", "mgan", "boosting", "swap"]
    expected = (
        [f"grid25-{n}.yaml" for n in names] + [f"fashion-{n}.yaml" for n in names] + ["fashion-hetero.yaml"]
    )
    for name in expected:
        cfg = load_config(CONFIGS / name)
        assert cfg.scheme.name in names, name
    hetero = load_config(CONFIGS / "fashion-hetero.yaml")
    assert [m.model["name"] for m in hetero.members] == ["dcgan"] * 3 + ["vae"]
    # The recipe for a user's own folder: the demo's members at the budget the folders benchmark chose.
    folder, demo = load_config(CONFIGS / "folder.yaml"), load_config(CONFIGS / "demo.yaml")
    assert folder.data.name.startswith("folder:") and folder.train.steps == 3000
    assert [(m.model, m.seed) for m in folder.members] == [(m.model, m.seed) for m in demo.members]


def test_boosting_weights_follow_the_closed_form():
    # h = [0.5, 1, 2, 4], β = 1/2: λ* = (βN + (1-β)(0.5 + 1 + 2)) / 3 = 1.25, w ∝ (λ* - h/2)₊.
    w = boosting_weights(torch.tensor([0.5, 1.0, 2.0, 4.0]), 0.5)
    torch.testing.assert_close(w, torch.tensor([0.5, 0.375, 0.125, 0.0]))
    assert torch.equal(boosting_weights(torch.ones(5), 1.0), torch.full((5,), 0.2))  # β = 1: uniform


def test_boosting_weights_and_mixture_are_kept(tmp_path):
    run = train_run(
        ensemble_config(tmp_path / "c.yaml", {"name": "boosting", "ratio_steps": 5}, n=3), tmp_path / "R"
    )
    ens = load_run(run)
    torch.testing.assert_close(ens.state.mixture_weights, torch.full((3,), 1 / 3))  # β_t = 1/t: uniform
    assert set(ens.state.data_weights) == {"m1", "m2"}
    for w in ens.state.data_weights.values():
        assert w.shape == (50_000,) and torch.isclose(w.sum(), torch.tensor(1.0)) and (w >= 0).all()


def test_bagging_weights_are_checkpointed(tmp_path):
    members = [{"model": TINY, "seed": 0}, {"model": TINY, "seed": 1, "bootstrap": True}]
    cfg = ensemble_config(tmp_path / "c.yaml", {"name": "independent"}, n=2, members=members)
    ens = load_run(train_run(cfg, tmp_path / "R"))
    assert list(ens.state.data_weights) == ["m1"] and ens.state.data_weights["m1"].sum() == 50_000


def final_tensors(run: Path) -> dict:
    folder = latest_checkpoint(run)
    return {**load_file(str(folder / "weights.safetensors")), **load_file(str(folder / "state.safetensors"))}


def assert_identical_runs(a: Path, b: Path) -> None:
    ta, tb = final_tensors(a), final_tensors(b)
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), f"{k} differs after resume"


def crash_after(monkeypatch, calls: int) -> None:
    """Make the run die (as from Ctrl-C) at the `calls`-th member step."""
    original, count = gensemble.run.hooks.RunHooks.__call__, [0]

    def dying(self, member, stats):
        count[0] += 1
        if count[0] == calls:
            raise KeyboardInterrupt
        original(self, member, stats)

    monkeypatch.setattr(gensemble.run.hooks.RunHooks, "__call__", dying)


@pytest.mark.parametrize("scheme", ["mgan", "multi-discriminator-learned", "swap"])
def test_lockstep_schemes_resume_exactly(tmp_path, scheme):
    spec = {
        "mgan": {"name": "mgan"},
        "multi-discriminator-learned": {
            "name": "multi-discriminator",
            "discriminators": 2,
            "learn_temperature": True,
        },
        "swap": {"name": "swap", "swap_every": 3},  # checkpoints fall on swap steps
    }[scheme]
    cfg = ensemble_config(tmp_path / "c.yaml", spec, steps=8, train={"checkpoint_every": 3, "ema_decay": 0.5})
    straight = train_run(cfg, tmp_path / "a")
    train_run(cfg, tmp_path / "b", ["train.steps=4"])
    resumed = train_run(cfg, tmp_path / "b", resume=True)
    assert_identical_runs(straight, resumed)


def test_boosting_resumes_exactly_after_a_crash_mid_member(tmp_path, monkeypatch):
    cfg = ensemble_config(tmp_path / "c.yaml", {"name": "boosting", "ratio_steps": 4}, n=3, steps=6)
    straight = train_run(cfg, tmp_path / "a")
    with monkeypatch.context() as patch:
        crash_after(patch, 6 + 5)  # member m1, step 5: the last checkpoint is m1's step 3
        with pytest.raises(KeyboardInterrupt):
            train_run(cfg, tmp_path / "b")
    resumed = train_run(cfg, tmp_path / "b", resume=True)
    assert_identical_runs(straight, resumed)
    assert torch.equal(
        load_run(resumed).state.data_weights["m2"], load_run(straight).state.data_weights["m2"]
    )


def mode_histograms(run: Path, n: int = 1000) -> list[torch.Tensor]:
    """For each generator, the share of its samples nearest to each of grid25's 25 modes."""
    centres, _ = toy_modes("grid25")
    gen = torch.Generator().manual_seed(0)
    out = []
    for model in load_run(run).generators().values():
        nearest = torch.cdist(model.sample(n, gen), centres).argmin(1)
        out.append(torch.bincount(nearest, minlength=len(centres)).float() / n)
    return out


def min_pairwise_tv(hists: list[torch.Tensor]) -> float:
    """The smallest total-variation distance between two generators' mode histograms (1: disjoint modes)."""
    return min(0.5 * (a - b).abs().sum().item() for i, a in enumerate(hists) for b in hists[i + 1 :])


def test_mixture_generators_sit_on_different_modes(tmp_path):
    """Fast version: 300 steps of 4 small generators. MGAN's β drives them onto disjoint sets of modes;
    the same members trained independently spread over the same modes."""
    model = {**TINY, "g_hidden": 64, "d_hidden": 64}
    tv = {}
    for scheme in ("mixture", "independent"):
        cfg = ensemble_config(
            tmp_path / f"{scheme}.yaml",
            {"name": scheme},
            steps=300,
            model=model,
            member={"optim": {"lr": 0.001}},
            train={"batch_size": 64, "checkpoint_every": 300, "log_every": 100},
        )
        tv[scheme] = min_pairwise_tv(mode_histograms(train_run(cfg, tmp_path / scheme)))
    assert tv["mixture"] > 0.8, tv
    assert tv["independent"] < 0.5, tv


@pytest.mark.slow
def test_mixture_example_config_separates_generators(tmp_path):
    """The shipped grid25-mgan.yaml (2000 steps, ~2 minutes on one thread): generators on different modes."""
    run = train_run(CONFIGS / "grid25-mgan.yaml", tmp_path / "R", ["train.checkpoint_every=2000"])
    hists = mode_histograms(run)
    assert min_pairwise_tv(hists) > 0.8
    assert len({int(h.argmax()) for h in hists}) == 4  # four different favourite modes


def test_swap_exchanges_discriminators_with_their_optimisers(tmp_path):
    from gensemble.ensemble.gap import swap_discriminators

    ens = load_run(
        train_run(
            ensemble_config(tmp_path / "c.yaml", {"name": "swap", "swap_every": 2}, steps=4), tmp_path / "R"
        )
    )
    assert ens.state.swaps == 1  # at step 2; none at the last step
    a, b = ens.members[:2]
    Da, Db, opt_a = a.model.D, b.model.D, a.optimizers["D"]
    swap_discriminators(a, b)
    assert a.model.D is Db and b.model.D is Da and b.optimizers["D"] is opt_a
    assert {id(p) for p in opt_a.param_groups[0]["params"]} == {id(p) for p in Da.parameters()}
