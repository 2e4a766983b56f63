"""Every registered model: builds, samples in range, survives a save/load round trip, and learns."""

import copy

import pytest
import torch
from safetensors.torch import load_file, save_file

from gensemble.data import Dataset
from gensemble.errors import ConfigError
from gensemble.models import model_names
from gensemble.training.loop import STEPS
from gensemble.training.member import MemberConfig, build_member

CASES = [
    ("mlp-gan", {"g_hidden": 8, "d_hidden": 8}, (2,)),
    ("mlp-gan", {"g_hidden": 8, "d_hidden": 8, "z_dim": 4}, (1, 8, 8)),
    ("dcgan", {"ngf": 4, "ndf": 4, "z_dim": 8}, (1, 28, 28)),
    ("dcgan", {"ngf": 4, "ndf": 4, "z_dim": 8, "spectral_norm": True}, (3, 32, 32)),
    ("dcgan", {"ngf": 2, "ndf": 2, "z_dim": 8, "d_norm": "layer"}, (3, 64, 64)),
    ("vae", {"width": 4, "z_dim": 4}, (1, 28, 28)),
    ("vae", {"width": 4, "z_dim": 4, "reconstruction": "mse"}, (3, 32, 32)),
    ("mlp-vae", {"hidden": 8}, (2,)),
    ("mlp-vae", {"hidden": 8, "z_dim": 4, "reconstruction": "bce"}, (1, 8, 8)),
]


def test_cases_cover_every_registered_model():
    assert {c[0] for c in CASES} == set(model_names())


def fake_data(shape, n=32):
    g = torch.Generator().manual_seed(0)
    x = torch.rand((n, *shape), generator=g) * 2 - 1
    return Dataset(x=x)


@pytest.mark.parametrize(("name", "params", "shape"), CASES)
def test_sample_shape_and_range(name, params, shape):
    m = build_member(MemberConfig(model={"name": name, **params}, name="m0"), shape)
    x = m.model.sample(5, torch.Generator().manual_seed(1))
    assert x.shape == (5, *shape)
    if len(shape) > 1:
        assert x.min() >= -1 and x.max() <= 1
    # Same generator seed, same samples: sampling is reproducible.
    assert torch.equal(x, m.model.sample(5, torch.Generator().manual_seed(1)))


@pytest.mark.parametrize(("name", "params", "shape"), CASES)
def test_one_step_changes_every_network(name, params, shape):
    m = build_member(MemberConfig(model={"name": name, **params}, name="m0"), shape)
    before = {k: v.clone() for k, v in m.weights().items()}
    STEPS[m.family](m, fake_data(shape), 8)
    for net in m.model.networks():
        changed = [
            k for k in before if k.startswith(f"m0.{net}.") and not torch.equal(before[k], m.weights()[k])
        ]
        assert changed, f"{name}: one step left {net} unchanged"


@pytest.mark.parametrize(("name", "params", "shape"), CASES)
def test_save_load_round_trip(name, params, shape, tmp_path):
    cfg = MemberConfig(model={"name": name, **params}, name="m0")
    m = build_member(cfg, shape)
    STEPS[m.family](m, fake_data(shape), 8)
    save_file({k: v.contiguous() for k, v in m.weights().items()}, str(tmp_path / "w.safetensors"))
    other = build_member(MemberConfig(**{**cfg.__dict__, "seed": 99}), shape)
    assert any(not torch.equal(v, other.weights()[k]) for k, v in m.weights().items())
    other.load_weights(load_file(str(tmp_path / "w.safetensors")))
    for k, v in m.weights().items():
        assert torch.equal(v, other.weights()[k]), k
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.allclose(m.model.sample(4, g1), other.model.sample(4, g2))


def test_same_seed_same_init_and_global_rng_untouched():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    cfg = MemberConfig(model={"name": "dcgan", "ngf": 4, "ndf": 4}, name="a", seed=5)
    a, b = build_member(cfg, (1, 28, 28)), build_member(copy.deepcopy(cfg), (1, 28, 28))
    assert all(torch.equal(v, b.weights()[k]) for k, v in a.weights().items())
    assert torch.equal(state, torch.get_rng_state())


def test_mlp_vae_points_are_not_clamped_and_bce_needs_images():
    # 2-D mixtures are raw coordinates (grid25 spans ±4): a VAE on them must not squash its samples.
    m = build_member(MemberConfig(model={"name": "mlp-vae", "hidden": 8}, name="m0"), (2,))
    with torch.no_grad():
        m.model.decoder[-1].bias.fill_(3.0)
    assert m.model.sample(4).min() > 2.0
    with pytest.raises(ConfigError, match="use .mse. for points"):
        build_member(MemberConfig(model={"name": "mlp-vae", "reconstruction": "bce"}, name="m0"), (2,))
