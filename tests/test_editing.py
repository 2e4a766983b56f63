"""Completion, projection and interpolation: the maths on hand-made tensors, the CLI on a tiny run."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gensemble.editing import Editor, slerp
from gensemble.editing.complete import (
    CompletionConfig,
    boundary_jump,
    complete_images,
    composite,
    features_of,
    least_squares,
)
from gensemble.editing.latent import SearchConfig, known_mse, search
from gensemble.editing.masks import box_mask
from gensemble.errors import ConfigError, DataError
from gensemble.run import load_run, train_run

from helpers import TINY_TOY, run_cli, write_config

TINY_IMAGES = {
    "data": {"name": "digits", "image_size": 16},
    "scheme": "independent",
    "members": [
        {"name": "g1", "model": {"name": "dcgan", "ngf": 8, "ndf": 8}, "seed": 0},
        {"name": "g2", "model": {"name": "dcgan", "ngf": 8, "ndf": 8}, "seed": 1},
        {"name": "v", "model": {"name": "vae", "width": 8, "z_dim": 8}, "seed": 2},
    ],
    "train": {"steps": 40, "batch_size": 32, "checkpoint_every": 40, "log_every": 20},
}
FAST = CompletionConfig(search=SearchConfig(restarts=2, steps=15))


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("editing")
    return Path(train_run(write_config(root / "c.yaml", TINY_IMAGES), root / "R"))


def save_png(path: Path, arr: np.ndarray) -> Path:
    Image.fromarray(arr.astype(np.uint8)).save(path)
    return path


def test_composite_keeps_every_known_pixel_and_boundary_jump_by_hand():
    x, g = torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
    hole = torch.zeros(1, 1, 4, 4)
    hole[..., 1:3, 1:3] = 1
    c = composite(x, g, hole)
    assert torch.equal(c[hole == 0], x[hole == 0]) and torch.equal(c[hole == 1], g[hole == 1])
    # Each of the 4 filled pixels has 2 known neighbours: 8 edges, each a jump of 1.
    assert boundary_jump(c, hole).item() == pytest.approx(1.0)
    assert boundary_jump(torch.zeros(1, 1, 4, 4), hole).item() == 0.0


def test_search_fits_the_known_pixels_better_than_its_start(image_run):
    ens = load_run(image_run)
    x = Editor.build(ens).heldout[:6]
    known = 1 - box_mask((4, 4, 8, 8), 16, 16)[None].expand(6, 1, 16, 16)
    for name, model in ens.generators().items():
        start = search(model, x, known, SearchConfig(restarts=2, steps=0))
        fitted = search(model, x, known, SearchConfig(restarts=2, steps=30))
        assert fitted.known_mse.mean() < start.known_mse.mean(), name
        assert fitted.image.shape == x.shape and fitted.z.shape == (6, model.z_dim)
    # More restarts never do worse on the objective searched (the known pixels' error plus the prior
    # term): the best of a superset of starts, since an image's first restarts do not depend on how
    # many there are.
    g = ens.generators()["g1"]
    one = search(g, x, known, SearchConfig(restarts=1, steps=10))
    four = search(g, x, known, SearchConfig(restarts=4, steps=10))
    weight = SearchConfig().prior_weight
    assert (
        four.known_mse + weight * four.z.pow(2).mean(1)
        <= one.known_mse + weight * one.z.pow(2).mean(1) + 1e-6
    ).all()


def test_the_ensemble_chooses_the_lowest_cost_candidate(image_run):
    editor = Editor.build(load_run(image_run), FAST)
    x = editor.heldout[:5]
    hole = box_mask((4, 4, 8, 8), 16, 16)[None]
    c = editor.complete(x, hole, FAST, learned=False)
    assert c.candidates.shape == (3, 5, 1, 16, 16) and c.members == ["g1", "g2", "v"]
    assert torch.equal(c.choice, c.cost.argmin(0))
    assert torch.equal(c.chosen, c.candidates[c.choice, torch.arange(5)])
    assert torch.equal(c.chosen * (1 - hole), x * (1 - hole))  # known pixels kept exactly
    expected = c.known_mse + FAST.boundary_weight * c.boundary - FAST.realism_weight * c.realism
    assert torch.allclose(c.cost, expected)
    assert set(c.scores(0)["g1"]) == {"cost", "known_mse", "boundary", "realism"}
    # A VAE-only ensemble has no critic: realism drops out of the cost.
    no_critic = complete_images({"v": editor.generators["v"]}, x, hole, None, FAST)
    assert no_critic.realism is None and torch.equal(no_critic.choice, torch.zeros(5, dtype=torch.long))


def test_an_image_is_completed_the_same_alone_or_among_others(image_run):
    """A GAN member's search starts from codes seeded by the image itself, not by its place in the
    call, so an image's projection and completion do not depend on the other images."""
    editor = Editor.build(load_run(image_run), FAST)
    x = editor.heldout[:5]
    hole = box_mask((4, 4, 8, 8), 16, 16)[None]
    known = (1 - hole).expand(5, 1, 16, 16)
    g = editor.generators["g1"]
    together = search(g, x, known, FAST.search)
    for batch, at in ((x[3:4], 0), (x[[3, 0]], 0), (x[[0, 1, 2, 4, 3]], 4)):
        alone = search(g, batch, known[: len(batch)], FAST.search)
        assert torch.allclose(alone.z[at], together.z[3], atol=1e-5)
    full, one = (
        editor.complete(x, hole, FAST, learned=False),
        editor.complete(x[3:4], hole, FAST, learned=False),
    )
    assert one.choice[0] == full.choice[3] and torch.allclose(
        one.candidates[:, 0], full.candidates[:, 3], atol=1e-5
    )


def test_the_learned_choice_adds_the_ensembles_blend_and_takes_the_lowest_predicted_error(image_run):
    editor = Editor.build(
        load_run(image_run), CompletionConfig(search=SearchConfig(restarts=2, steps=10), n_cost_fit=16)
    )
    x = editor.heldout[:4]
    hole = box_mask((4, 4, 8, 8), 16, 16)[None]
    c = editor.complete(x, hole)
    assert c.members == ["g1", "g2", "v", "ensemble"] and c.candidates.shape == (4, 4, 1, 16, 16)
    model = editor.cost_model()
    for m, name in enumerate(c.members[:3]):
        feats = features_of(c.known_mse[m], c.boundary[m], c.realism[m])
        assert torch.allclose(c.cost[m], feats @ model.weights[name], atol=1e-5)
    assert torch.equal(c.choice, c.cost.argmin(0))
    assert torch.equal(c.chosen * (1 - hole), x * (1 - hole))
    # Fitted once, then read back from RUN/completion/cost_model.json.
    again = Editor.build(load_run(image_run), editor.cfg).cost_model()
    assert all(torch.allclose(again.weights[k], model.weights[k], atol=1e-6) for k in model.weights)


def test_least_squares_recovers_a_linear_rule():
    feats = torch.cat([torch.rand(50, 3), torch.ones(50, 1)], 1)
    true = torch.tensor([2.0, -1.0, 0.5, 0.1])
    assert torch.allclose(least_squares(feats, feats @ true), true, atol=1e-3)


def test_slerp_ends_and_norm():
    a, b = (
        torch.randn(8, generator=torch.Generator().manual_seed(0)),
        torch.randn(8, generator=torch.Generator().manual_seed(1)),
    )
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-5) and torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    assert known_mse(torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)).tolist() == [
        1.0,
        1.0,
    ]


@pytest.mark.parametrize(
    ("box", "error"),
    [
        ("1,2,3", "four whole numbers"),
        ("0,0,0,4", "does not fit"),
        ("10,10,8,8", "does not fit"),
        ("0,0,16,16", "whole image"),
    ],
)
def test_bad_boxes(box, error):
    with pytest.raises((ConfigError, DataError), match=error):
        box_mask(box, 16, 16)


@pytest.mark.integration  # the complete command end to end: CI runs it in its second pass
def test_complete_cli_single_image_folder_and_candidates(image_run, tmp_path, capsys):
    rng = np.random.default_rng(0)
    img = save_png(tmp_path / "a.png", rng.integers(0, 255, (16, 16)))
    code, out, err = run_cli(
        capsys,
        "complete",
        str(image_run),
        "--image",
        str(img),
        "--box",
        "4,4,8,8",
        "-o",
        str(tmp_path / "o.png"),
        "--candidates",
    )
    assert code == 0, err
    assert Image.open(tmp_path / "o.png").size == (16, 16)
    # The labelled sheet: original, masked input, 4 candidates (3 members and the blend), the choice,
    # each scaled to a readable 112 px, with a caption column.
    sheet = Image.open(tmp_path / "o-candidates.png")
    assert sheet.size == (150 + 7 * (112 + 6) + 6, 22 + 112 + 12)
    # The one-time cost-model fit is announced before it runs, with its expected time; then kept.
    assert "[complete] fitting the completion cost model once" in err and "about" in err
    saved = json.loads((tmp_path / "o.json").read_text())
    entry = saved["images"][str(img)]
    assert entry["chosen"] in ("g1", "g2", "v", "ensemble") and set(entry["candidates"]) == {
        "g1",
        "g2",
        "v",
        "ensemble",
    }
    # The known pixels come back unchanged (to within PNG's 8 bits).
    before, after = (
        np.asarray(Image.open(img), dtype=int),
        np.asarray(Image.open(tmp_path / "o.png"), dtype=int),
    )
    known = np.ones((16, 16), bool)
    known[4:12, 4:12] = False
    assert np.abs(before[known] - after[known]).max() <= 1
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        save_png(folder / f"f{i}.png", rng.integers(0, 255, (16, 16)))
    mask = np.zeros((16, 16))
    mask[2:6, 3:9] = 255
    save_png(tmp_path / "m.png", mask)
    code, _, err = run_cli(
        capsys,
        "complete",
        str(image_run),
        "--image",
        str(folder),
        "--mask",
        str(tmp_path / "m.png"),
        "-o",
        str(tmp_path / "out"),
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f0.png", "f1.png", "f2.png"]
    assert "fitting the completion cost model" not in err  # fitted once, read back


def _one_line(code, err, needle):
    lines = [line for line in err.splitlines() if line.startswith("gensemble: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert needle in lines[0], lines[0]


def test_complete_bad_inputs(image_run, tmp_path, capsys):
    img = save_png(tmp_path / "a.png", np.full((16, 16), 100))
    big = save_png(tmp_path / "big.png", np.full((20, 20), 100))
    rgb = tmp_path / "rgb.png"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(rgb)
    small_mask = save_png(tmp_path / "m8.png", np.full((8, 8), 255))
    empty = save_png(tmp_path / "empty.png", np.zeros((16, 16)))
    full = save_png(tmp_path / "full.png", np.full((16, 16), 255))
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    cases = [
        (["--image", str(img), "--mask", str(small_mask)], "8×8 px but the image is 16×16"),
        (["--image", str(img), "--mask", str(empty)], "marks no pixel"),
        (["--image", str(img), "--mask", str(full)], "whole image"),
        (["--image", str(big), "--box", "1,1,4,4"], "takes greyscale 16×16"),
        (["--image", str(rgb), "--box", "1,1,4,4"], "3-channel"),
        (["--image", str(tmp_path / "junk.png"), "--box", "1,1,4,4"], "cannot read image"),
        (["--image", str(img)], "exactly one of --mask"),
        (["--image", str(tmp_path / "none.png"), "--box", "1,1,2,2"], "does not exist"),
    ]
    for args, needle in cases:
        code, _, err = run_cli(capsys, "complete", str(image_run), *args, "-o", str(tmp_path / "o.png"))
        _one_line(code, err, needle)
    assert not (tmp_path / "o.png").exists()
    toy = train_run(write_config(tmp_path / "t.yaml", TINY_TOY), tmp_path / "T")
    code, _, err = run_cli(
        capsys, "complete", str(toy), "--image", str(img), "--box", "1,1,2,2", "-o", str(tmp_path / "o.png")
    )
    _one_line(code, err, "completion needs an image run")


def test_project_flags_what_no_member_explains(image_run, tmp_path, capsys, monkeypatch):
    img = save_png(tmp_path / "a.png", np.full((16, 16), 100))
    code, out, err = run_cli(
        capsys, "project", str(image_run), "--image", str(img), "--json", "--n-reference", "8"
    )
    assert code == 0, err
    entry = json.loads(out)["images"][str(img)]
    assert entry["best_member"] in ("g1", "g2", "v") and set(entry["members"]) == {"g1", "g2", "v"}
    assert entry["best_mse"] == min(m["mse"] for m in entry["members"].values())
    assert "critic_p_image" in entry and all(
        "critic_p_reconstruction" in m for m in entry["members"].values()
    )
    monkeypatch.setattr(Editor, "typical_error", lambda self, n=32, cfg=None: 1e-9)
    code, out, _ = run_cli(capsys, "project", str(image_run), "--image", str(img), "--json")
    assert json.loads(out)["images"][str(img)]["unlike_training_data"] is True


def test_interpolate_and_report_panel(image_run, tmp_path, capsys):
    a = save_png(tmp_path / "a.png", np.full((16, 16), 30))
    b = save_png(tmp_path / "b.png", np.full((16, 16), 220))
    code, out, err = run_cli(
        capsys,
        "interpolate",
        str(image_run),
        "--from",
        str(a),
        "--to",
        str(b),
        "--steps",
        "5",
        "-o",
        str(tmp_path / "i.png"),
    )
    assert code == 0, err
    width = Image.open(tmp_path / "i.png").size[0]
    assert width == 7 * (16 + 2) + 2  # the two images and 5 steps, padded
    code, _, err = run_cli(capsys, "complete", str(image_run), "--heldout", "3")
    assert code == 0, err
    summary = json.loads((image_run / "completion" / "completion.json").read_text())
    assert summary["n"] == 3 and set(summary["hole_mse"]) == {"g1", "g2", "v", "ensemble", "choice", "oracle"}
    assert summary["hole_mse"]["oracle"] <= min(summary["hole_mse"][m] for m in ("g1", "g2", "v")) + 1e-6
    code, _, err = run_cli(
        capsys, "report", str(image_run), "-o", str(tmp_path / "r.html"), "--fusion", "uniform"
    )
    html = (tmp_path / "r.html").read_text()
    assert code == 0 and "completion panel" in html and "id='completion'" in html


def test_heldout_beyond_the_evaluation_half_says_it_is_clamped(image_run, monkeypatch, tmp_path):
    from gensemble.editing import files

    real = files.load_editor

    def two_held_out(run, device="cpu", cfg=None):
        editor = real(run, device, FAST)
        editor.heldout = editor.heldout[:2]
        return editor

    run = tmp_path / "R"
    import shutil

    shutil.copytree(image_run, run)
    monkeypatch.setattr(files, "load_editor", two_held_out)
    with pytest.warns(UserWarning, match="more than the 2 held-out images"):
        summary = files.complete_heldout(run, 5)
    assert summary["n"] == 2
