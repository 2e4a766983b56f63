"""Datasets and transforms: shapes, ranges, labels, fixed splits, determinism, and clear errors."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gensemble.data import DATASETS, DataConfig, load_dataset
from gensemble.data.images import FASHION_MNIST_DEFAULT, read_idx
from gensemble.data.toy import toy_modes
from gensemble.data.transforms import (
    augment,
    denormalize,
    normalize,
    preprocess,
    random_hflip,
    resize,
    to_channels,
)
from gensemble.errors import DataError, UnknownNameError
from gensemble.imageio import save_npz


def load_both(cfg: DataConfig):
    return load_dataset(cfg, "train"), load_dataset(cfg, "test")


def check_images(ds, n: int, shape: tuple[int, ...], num_classes: int | None) -> None:
    assert ds.x.shape == (n, *shape)
    assert ds.x.dtype == torch.float32
    assert ds.is_image
    assert -1.0 <= float(ds.x.min()) < float(ds.x.max()) <= 1.0
    assert ds.num_classes == num_classes
    if num_classes is not None:
        assert ds.y.shape == (n,) and ds.y.dtype == torch.int64
        assert 0 <= int(ds.y.min()) and int(ds.y.max()) < num_classes


# --- built-in datasets -----------------------------------------------------------------------------


def test_all_builtin_names_registered():
    from gensemble.data import images, toy  # noqa: F401

    for name in (
        "fashion-mnist",
        "mnist-5k",
        "digits",
        "stacked-mnist",
        "ring8",
        "grid25",
        "folder:",
        "npz:",
    ):
        assert name in DATASETS


def test_unknown_dataset_lists_known_names():
    with pytest.raises(UnknownNameError, match="mnist-5k"):
        load_dataset(DataConfig(name="cifar-1M"))


@pytest.mark.skipif(not Path(FASHION_MNIST_DEFAULT).is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist():
    train, test = load_both(DataConfig(name="fashion-mnist"))
    check_images(train, 60_000, (1, 28, 28), 10)
    check_images(test, 10_000, (1, 28, 28), 10)
    assert torch.bincount(test.y).tolist() == [1000] * 10


def test_fashion_mnist_missing_files_says_how_to_install(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(name="fashion-mnist", root=str(tmp_path)))
    msg = str(err.value)
    assert str(tmp_path) in msg and "\n" not in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "GENSEMBLE_FASHION_MNIST" in msg


def test_fashion_mnist_env_var_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("GENSEMBLE_FASHION_MNIST", str(tmp_path / "elsewhere"))
    with pytest.raises(DataError, match="elsewhere"):
        load_dataset(DataConfig(name="fashion-mnist"), "test")


def _idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + np.array(arr.shape, dtype=">u4").tobytes()
    return header + arr.astype(np.uint8).tobytes()


def test_idx_parse_and_corrupt_files(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    good = tmp_path / "good-idx3-ubyte.gz"
    good.write_bytes(gzip.compress(_idx_bytes(images)))
    np.testing.assert_array_equal(read_idx(good), images)

    short = tmp_path / "short-idx3-ubyte.gz"
    short.write_bytes(gzip.compress(_idx_bytes(images)[:-5]))
    with pytest.raises(DataError, match="short-idx3-ubyte.gz.*truncated"):
        read_idx(short)

    cut_gzip = tmp_path / "cut-idx3-ubyte.gz"
    cut_gzip.write_bytes(gzip.compress(_idx_bytes(images))[:20])
    with pytest.raises(DataError, match="cut-idx3-ubyte.gz"):
        read_idx(cut_gzip)

    bad_magic = tmp_path / "magic-idx3-ubyte.gz"
    bad_magic.write_bytes(gzip.compress(b"\x12\x34" + _idx_bytes(images)[2:]))
    with pytest.raises(DataError, match="magic-idx3-ubyte.gz.*magic number"):
        read_idx(bad_magic)


def test_mnist5k_fixed_split():
    train, test = load_both(DataConfig(name="mnist-5k"))
    check_images(train, 4500, (1, 28, 28), 10)
    check_images(test, 500, (1, 28, 28), 10)
    # The split is fixed: a second load gives the same examples in the same order.
    assert torch.equal(load_dataset(DataConfig(name="mnist-5k", seed=7), "test").x, test.x)


def test_digits_split_and_resize():
    train, test = load_both(DataConfig(name="digits"))
    check_images(train, 1438, (1, 8, 8), 10)
    check_images(test, 359, (1, 8, 8), 10)
    big = load_dataset(DataConfig(name="digits", image_size=16, channels=3), "test")
    assert big.shape == (3, 16, 16) and torch.equal(big.y, test.y)


def test_stacked_mnist_labels_match_channel_digits():
    ds = load_dataset(DataConfig(name="stacked-mnist", limit=20, seed=3))
    check_images(ds, 20, (3, 28, 28), 1000)
    mnist = load_dataset(DataConfig(name="mnist-5k"))
    flat = mnist.x.flatten(1)
    for i in range(3):
        digits = [int(ds.y[i]) // 100, int(ds.y[i]) // 10 % 10, int(ds.y[i]) % 10]
        for c in range(3):
            # Each channel is an exact copy of some mnist-5k train image of the decoded digit.
            matches = (flat == ds.x[i, c].flatten()).all(dim=1).nonzero().flatten()
            assert len(matches) >= 1
            assert digits[c] in mnist.y[matches].tolist()


def test_stacked_mnist_deterministic_and_seeded():
    a = load_dataset(DataConfig(name="stacked-mnist", limit=8, seed=1))
    b = load_dataset(DataConfig(name="stacked-mnist", limit=3, seed=1))
    c = load_dataset(DataConfig(name="stacked-mnist", limit=8, seed=2))
    assert torch.equal(a.x[:3], b.x) and torch.equal(a.y[:3], b.y)  # limit cuts a fixed sequence
    assert not torch.equal(a.y, c.y)
    test = load_dataset(DataConfig(name="stacked-mnist", limit=8, seed=1), "test")
    assert len(test) == 5000 and not torch.equal(test.y[:8], a.y)


@pytest.mark.parametrize("name, k, sigma", [("ring8", 8, 0.01), ("grid25", 25, 0.05)])
def test_toy_mixtures(name, k, sigma):
    centres, s = toy_modes(name)
    assert centres.shape == (k, 2) and s == sigma
    train, test = load_both(DataConfig(name=name, seed=5))
    assert train.x.shape == (50_000, 2) and test.x.shape == (10_000, 2)
    assert train.num_classes == k and torch.equal(train.modes, centres) and train.sigma == sigma
    assert sorted(train.y.unique().tolist()) == list(range(k))
    # Every point lies within 6 sigma of its labelled mode.
    assert float((train.x - centres[train.y]).norm(dim=1).max()) < 6 * sigma
    assert not torch.equal(train.x[:100], test.x[:100])
    again = load_dataset(DataConfig(name=name, seed=5, limit=100))
    assert torch.equal(again.x, train.x[:100])
    assert not torch.equal(load_dataset(DataConfig(name=name, seed=6, limit=100)).x, again.x)


def test_toy_mode_positions():
    ring, _ = toy_modes("ring8")
    assert torch.allclose(ring.norm(dim=1), torch.ones(8))
    assert torch.allclose(ring[2], torch.tensor([0.0, 1.0]), atol=1e-6)
    grid, _ = toy_modes("grid25")
    assert set(grid[:, 0].tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    assert len({tuple(p) for p in grid.tolist()}) == 25
    with pytest.raises(UnknownNameError):
        toy_modes("ring9")


# --- folder:PATH -------------------------------------------------------------------------------------


def make_image_folder(root: Path, n: int = 10) -> list[Path]:
    """n small images of odd sizes, grey and colour, PNG and JPEG, some in nested folders."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        sub = root / ("a" if i % 3 == 0 else "b/c" if i % 3 == 1 else "")
        sub.mkdir(parents=True, exist_ok=True)
        h, w = 9 + i, 13 + 2 * i
        if i % 2:
            img = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), mode="L")
        else:
            img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), mode="RGB")
        ext = [".png", ".jpg", ".JPEG", ".PNG"][i % 4]
        path = sub / f"img{i:02d}{ext}"
        img.save(path, format="PNG" if ext.lower() == ".png" else "JPEG")
        paths.append(path)
    (root / "notes.txt").write_text("not an image")
    return paths


def test_folder_loads_nested_mixed_images(tmp_path):
    make_image_folder(tmp_path, 10)
    train, test = load_both(DataConfig(name=f"folder:{tmp_path}", image_size=16))
    check_images(train, 9, (3, 16, 16), None)
    check_images(test, 1, (3, 16, 16), None)
    assert train.y is None
    assert not set(train.meta["paths"]) & set(test.meta["paths"])
    grey = load_dataset(DataConfig(name=f"folder:{tmp_path}", image_size=8, channels=1), "test")
    assert grey.shape == (1, 8, 8)
    # Unset size keys keep the native size, so a folder of many sizes is refused with what was found.
    with pytest.raises(DataError, match=r"have 10 sizes \(.*×.*\); set data.image_size"):
        load_dataset(DataConfig(name=f"folder:{tmp_path}"), "test")


def test_folder_keeps_its_native_size_and_channels(tmp_path, capsys):
    """A folder of 28×28 grey PNGs with no size keys trains 28×28×1 members (not 64 px RGB)."""
    from gensemble.run import load_run

    from helpers import run_cli, write_config

    grey, colour = tmp_path / "grey", tmp_path / "colour"
    rng = np.random.default_rng(0)
    for folder, shape, mode in ((grey, (28, 28), "L"), (colour, (16, 16, 3), "RGB")):
        folder.mkdir()
        for i in range(40):
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(folder / f"{i}.png")
    assert load_dataset(DataConfig(name=f"folder:{colour}")).shape == (3, 16, 16)
    cfg = write_config(
        tmp_path / "c.yaml",
        data={"name": f"folder:{grey}"},
        model={"name": "dcgan", "ngf": 4, "ndf": 4, "z_dim": 8},
    )
    code, _, err = run_cli(capsys, "train", str(cfg), "--out", str(tmp_path / "R"), "--set", "train.steps=2")
    assert code == 0, err
    ens = load_run(tmp_path / "R")
    x = ens.members[0].model.sample(2, torch.Generator().manual_seed(0))
    assert tuple(x.shape[1:]) == (1, 28, 28)
    # heldout.txt names the held-out files (4 of 40) and the half each belongs to.
    listed = [
        line.split("\t")
        for line in (tmp_path / "R" / "heldout.txt").read_text().splitlines()
        if not line.startswith("#")
    ]
    assert len(listed) == 4 and sorted(h for h, _ in listed) == ["calibration"] * 2 + ["evaluation"] * 2
    assert all(Path(p).parent == grey for _, p in listed)
    Image.fromarray(np.zeros((20, 28), np.uint8)).save(grey / "wide.png")
    with pytest.raises(DataError, match=r"2 sizes \(28×28 \(40\), 28×20 \(1\)\)"):
        load_dataset(DataConfig(name=f"folder:{grey}"))


def test_folder_truncated_image_names_file_and_fix(tmp_path):
    paths = make_image_folder(tmp_path, 14)  # 15 files -> 2 in the test split, so neither ends up empty
    bad = tmp_path / "b" / "broken.png"
    bad.write_bytes(paths[0].read_bytes()[:60])
    cfg = DataConfig(name=f"folder:{tmp_path}", image_size=8)
    with pytest.raises(DataError) as err:
        load_both(cfg)
    msg = str(err.value)
    assert "broken.png" in msg and "set data.skip_bad=true" in msg and "\n" not in msg

    with pytest.warns(UserWarning, match="broken.png"):
        train, test = load_both(DataConfig(name=f"folder:{tmp_path}", image_size=8, skip_bad=True))
    assert len(train) + len(test) == 14
    assert all("broken" not in p for p in train.meta["paths"] + test.meta["paths"])


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(DataConfig(name=f"folder:{tmp_path / 'nope'}"))
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="holds no PNG/JPEG images"):
        load_dataset(DataConfig(name=f"folder:{tmp_path}"))
    Image.new("RGB", (5, 5)).save(tmp_path / "one.png")
    assert len(load_dataset(DataConfig(name=f"folder:{tmp_path}", image_size=4))) == 1
    with pytest.raises(DataError, match="at least 2"):
        load_dataset(DataConfig(name=f"folder:{tmp_path}"), "test")


# --- npz:PATH ----------------------------------------------------------------------------------------


def test_npz_round_trip_through_save_npz(tmp_path):
    x = torch.rand(20, 3, 6, 6) * 2 - 1
    y = torch.arange(20) % 4
    path = save_npz(x, tmp_path / "s.npz", y=y)
    train, test = load_both(DataConfig(name=f"npz:{path}"))
    check_images(train, 18, (3, 6, 6), 4)
    check_images(test, 2, (3, 6, 6), 4)
    both = torch.cat([train.x, test.x])
    order = torch.cat([train.y, test.y])
    # uint8 storage costs at most half a grey level; find each loaded image's original by label order.
    assert sorted(order.tolist()) == sorted(y.tolist())
    assert float((both.sort(dim=0).values - x.sort(dim=0).values).abs().max()) <= 1 / 127.5 + 1e-6


def test_npz_layouts_and_explicit_test_split(tmp_path):
    path = tmp_path / "d.npz"
    nhw = np.random.default_rng(0).integers(0, 256, (5, 7, 7), dtype=np.uint8)
    nchw = np.linspace(-1, 1, 3 * 1 * 7 * 7, dtype=np.float32).reshape(3, 1, 7, 7)
    np.savez(path, images=nhw, labels=np.arange(5), x_test=nchw, y_test=np.array([0, 1, 9]))
    train, test = load_both(DataConfig(name=f"npz:{path}", image_size=14))
    check_images(train, 5, (1, 14, 14), 10)
    check_images(test, 3, (1, 14, 14), 10)
    raw = load_dataset(DataConfig(name=f"npz:{path}"))
    assert torch.allclose(raw.x[:, 0], torch.from_numpy(nhw) / 127.5 - 1)

    points = tmp_path / "p.npz"
    save_npz(torch.randn(10, 2) * 4, points)
    assert load_dataset(DataConfig(name=f"npz:{points}")).x.shape == (9, 2)


def test_npz_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(DataConfig(name=f"npz:{tmp_path / 'missing.npz'}"))
    path = tmp_path / "k.npz"
    np.savez(path, pixels=np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(DataError, match="no key 'x' or 'images'.*pixels"):
        load_dataset(DataConfig(name=f"npz:{path}"))
    np.savez(path, x=np.zeros((4, 8, 8, 5), np.uint8))
    with pytest.raises(DataError, match=r"shape \(4, 8, 8, 5\)"):
        load_dataset(DataConfig(name=f"npz:{path}"))
    np.savez(path, x=np.full((4, 8, 8), 3.0, np.float32))
    with pytest.raises(DataError, match=r"outside \[-1, 1\]"):
        load_dataset(DataConfig(name=f"npz:{path}"))
    np.save(tmp_path / "single.npy", np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(DataError, match="single array, not an .npz"):
        load_dataset(DataConfig(name=f"npz:{tmp_path / 'single.npy'}"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="junk.npz"):
        load_dataset(DataConfig(name=f"npz:{tmp_path / 'junk.npz'}"))


# --- transforms --------------------------------------------------------------------------------------


def test_normalize_denormalize():
    u = torch.tensor([0, 255, 128], dtype=torch.uint8)
    assert torch.allclose(normalize(u), torch.tensor([-1.0, 1.0, 128 / 127.5 - 1]), atol=1e-6)
    assert torch.allclose(normalize(torch.tensor([0.0, 0.5, 1.0])), torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.allclose(denormalize(torch.tensor([-2.0, 0.0, 1.0])), torch.tensor([0.0, 0.5, 1.0]))


def test_channel_conversions():
    grey = torch.rand(2, 1, 4, 4) * 2 - 1
    rgb = to_channels(grey, 3)
    assert rgb.shape == (2, 3, 4, 4) and torch.equal(rgb[:, 2], grey[:, 0])
    assert torch.allclose(to_channels(rgb, 1), grey, atol=1e-6)
    red = torch.zeros(3, 2, 2)
    red[0] = 1.0
    assert torch.allclose(to_channels(red, 1), torch.full((1, 2, 2), 0.299))
    with pytest.raises(DataError):
        to_channels(torch.zeros(1, 4, 2, 2), 3)


def test_resize():
    x = torch.full((2, 3, 28, 28), 0.25)
    assert resize(x, 28) is x
    small = resize(x, 8)
    assert small.shape == (2, 3, 8, 8) and torch.allclose(small, torch.full_like(small, 0.25))
    assert resize(torch.rand(1, 5, 7), 12).shape == (1, 12, 12)


def test_preprocess_limit_applies_to_train_only():
    from gensemble.data import Dataset

    ds = Dataset(x=torch.rand(10, 1, 4, 4) * 4 - 2, y=torch.arange(10), num_classes=10)
    cfg = DataConfig(name="x", limit=3, channels=3, image_size=6)
    train = preprocess(ds, cfg, "train")
    assert train.x.shape == (3, 3, 6, 6) and train.y.tolist() == [0, 1, 2]
    assert float(train.x.abs().max()) <= 1.0
    assert len(preprocess(ds, cfg, "test")) == 10
    points = Dataset(x=torch.full((5, 2), 4.0))
    assert torch.equal(preprocess(points, cfg, "test").x, points.x)  # toy coordinates stay raw


def test_hflip_deterministic_given_generator():
    x = torch.arange(64 * 3 * 2 * 2, dtype=torch.float32).view(64, 3, 2, 2)
    a = random_hflip(x, torch.Generator().manual_seed(1))
    b = random_hflip(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    flipped = (a != x).flatten(1).any(dim=1)
    assert 10 < int(flipped.sum()) < 54
    assert torch.equal(a[flipped], x[flipped].flip(-1))


def test_augment_consumes_no_randomness_when_off():
    x = torch.rand(4, 1, 3, 3)
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert augment(x, DataConfig(hflip=False), g) is x
    assert augment(torch.rand(4, 2), DataConfig(hflip=True), g).shape == (4, 2)
    assert torch.equal(g.get_state(), state)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert augment(x, DataConfig(hflip=True), g).shape == x.shape
    assert not torch.equal(g.get_state(), state)


@pytest.mark.parametrize("n_test", [7, 20, 359, 2000, 10001])
def test_heldout_sizes_are_the_splits_the_fusions_cut(n_test):
    """`train --dry-run` states these sizes, so they must be the ones evaluation, the judges, the
    critics and auto's choice really get."""
    from gensemble.data import heldout_halves, heldout_sizes
    from gensemble.fusion.base import FusionContext
    from gensemble.tournament.judges import judge_split

    x = torch.zeros(n_test, 2)
    cal, ev = heldout_halves(x, 0) if n_test >= 10 else (x[: n_test // 2], x[n_test // 2 :])
    ctx = FusionContext.__new__(FusionContext)
    ctx.cal_real = cal
    sizes = heldout_sizes(n_test)
    assert sizes["evaluation"] == len(ev) and sizes["judges"] == len(judge_split(cal)[0])
    assert sizes["critic calibration"] == len(ctx.calib_real) and sizes["choice"] == len(ctx.choose_real)


def test_heldout_advice_names_the_test_fraction_that_fixes_it():
    from gensemble.data import DataConfig, heldout_advice

    cfg = DataConfig(name="digits")
    assert heldout_advice(cfg, 8000, 2000) is None
    few = heldout_advice(cfg, 4500, 500)
    assert "evaluation 250 (wants 500)" in few and "data.test_fraction=0.2 would hold out 1000" in few
    tiny = heldout_advice(cfg, 1438, 359)
    assert (
        "auto's choice 45 (needs 100)" in tiny
        and "data.test_fraction=0.45 would give auto's choice enough" in tiny
    )
