"""Fuzzing with hypothesis: config mappings, `--set` strings, image files and checkpoint folders.

The only outcomes allowed are success or a GensembleError (which the CLI prints as one line with
exit code 2). Anything else (a TypeError, an OverflowError, a RecursionError) is a bug.
"""

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import gensemble.checkpoint as ckpt
from gensemble.config import dump_yaml, to_dict
from gensemble.data import load_dataset
from gensemble.errors import GensembleError
from gensemble.imageio import load_image
from gensemble.run import build_ensemble, parse_config, train_run
from gensemble.training.loop import gan_step

from helpers import TINY_TOY, write_config

# Property-based fuzzing, many cases each: CI runs the module in its second pass (pytest -m integration).
# (the fallback to an older checkpoint warns)
pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::UserWarning")]

FAST = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

# Values a careless or hostile user might type, of every YAML type.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["1e9", "-1", "0", ".nan", "adam", "hinge", "dcgan", "vae", "grid25", "folder:/nope"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
KEYS = {
    "data": ["name", "root", "image_size", "channels", "hflip", "limit", "seed", "max_pixels"],
    "train": [
        "steps",
        "batch_size",
        "checkpoint_every",
        "log_every",
        "image_every",
        "ema_decay",
        "snapshot_every",
        "device",
    ],
    "model": ["name", "z_dim", "g_hidden", "d_hidden", "g_layers", "d_layers", "g_norm", "spectral_norm"],
    "optim": ["name", "lr", "lr_d", "betas", "momentum", "alpha", "eps", "weight_decay"],
    "scheme": ["name", "discriminators", "temperature", "beta", "swap_every", "ratio_steps", "seed"],
}


@st.composite
def configs(draw):
    """TINY_TOY with a few keys of its sections replaced by arbitrary values (or junk keys added), and
    the names of what was changed (section and key)."""
    raw, changed = tiny_toy(), set()
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from([*KEYS, "seed", "loss", "n_critic", "gp_weight", "members"]))
        changed.add(section)
        if section in KEYS:
            key = draw(st.sampled_from(KEYS[section]) | st.text(max_size=5))
            target = raw.setdefault(section, {})
            if not isinstance(target, dict):
                target = raw[section] = {}
            target[key] = draw(values)
            changed.add(key)
        else:
            raw[section] = draw(values)
    return raw, changed


def check_parse(raw, overrides=()) -> tuple[str, object]:
    """Parse, then build (with the memory check that runs before training): ("ok", the config) or
    ("error", its one-line message, a GensembleError's)."""
    try:
        cfg = parse_config(raw, list(overrides))
        if cfg.data.name in ("grid25", "ring8"):
            build_ensemble(cfg, (2,), "cpu")
    except GensembleError as exc:
        return "error", str(exc)
    return "ok", cfg


def assert_round_trip(cfg) -> None:
    """An accepted config, written out as it resolved (what `train` saves as config.yaml), parses to
    the same config."""
    again = parse_config(yaml.safe_load(dump_yaml(to_dict(cfg))))
    assert again == cfg


# Words a refusal may use to name a config's parts besides the keys themselves.
SECTION_WORDS = {"members": ("member",), "loss": ("loss",), "seed": ("seed",)}


@FAST
@given(configs())
def test_fuzz_config_mappings(case):
    """Every config either parses (and survives a dump-and-parse round trip) or is refused with a
    message that names what is wrong: one of the keys or sections that were changed."""
    raw, changed = case
    outcome, got = check_parse(raw)
    if outcome == "ok":
        assert_round_trip(got)
        return
    words = {w for c in changed for w in (c, *SECTION_WORDS.get(c, ())) if c}
    assert "\n" not in got and any(w in got for w in words), (got, changed)


def tiny_toy() -> dict:
    return json.loads(json.dumps(TINY_TOY))


def set_items():
    """`--set` strings: free text, or a real key with free text as its value."""
    keys = ["train.steps", "optim.lr", "model.z_dim", "data.name", "x", "members.0.seed", "a.b.c", "seed"]
    return st.one_of(
        st.text(max_size=40), st.builds(lambda k, v: f"{k}={v}", st.sampled_from(keys), st.text(max_size=30))
    )


@FAST
@given(set_items())
def test_fuzz_set_strings(item):
    """A `--set` string is applied (and the result round-trips) or refused in one line that quotes it
    or names its key."""
    outcome, got = check_parse(tiny_toy(), [item])
    if outcome == "ok":
        assert_round_trip(got)
        return
    key = item.split("=", 1)[0].strip()
    names = [t for t in ("config key", "--set", key, key.split(".")[0]) if t]
    assert "\n" not in got and any(t in got for t in names), (got, item)


def _png_bytes(mode: str, size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    arr = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


VALID_PNG = _png_bytes("RGB", (9, 7))


def image_bytes():
    """Random bytes, or a real PNG with some bytes overwritten and/or cut short."""
    return st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda cut, pos, junk: (VALID_PNG[:pos] + junk + VALID_PNG[pos + len(junk) :])[:cut],
            st.integers(0, len(VALID_PNG)),
            st.integers(0, len(VALID_PNG)),
            st.binary(min_size=1, max_size=8),
        ),
    )


@FAST
@given(image_bytes(), st.sampled_from([None, 4, 16]), st.sampled_from([None, 1, 3]))
def test_fuzz_image_files(tmp_path_factory, data, size, channels):
    check_image(tmp_path_factory.mktemp("img") / "x.png", data, size, channels)


def check_image(path: Path, data: bytes, size, channels) -> str:
    path.write_bytes(data)
    try:
        x = load_image(path, size=size, channels=channels)
    except GensembleError:
        return "error"
    assert x.dim() == 3 and torch.isfinite(x).all() and x.min() >= -1 and x.max() <= 1
    return "ok"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-run")
    return Path(train_run(write_config(root / "c.yaml"), root / "R"))


def _json_values():
    leaf = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6)
    return st.recursive(
        leaf,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=10,
    )


@st.composite
def checkpoint_damage(draw):
    """One way to damage a checkpoint folder: a JSON file replaced or edited, a file cut short or bit-flipped."""
    kind = draw(st.sampled_from(["latest", "state-replace", "state-edit", "truncate", "flip"]))
    if kind in ("latest", "state-replace"):
        return kind, draw(_json_values())
    if kind == "state-edit":
        return kind, (
            draw(st.sampled_from(["step", "members", "aux_optimizers", "scheme_state"])),
            draw(_json_values()),
        )
    return kind, (
        draw(st.sampled_from(["weights.safetensors", "state.safetensors", "state.json"])),
        draw(st.floats(0, 1)),
        draw(st.integers(0, 255)),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(checkpoint_damage())
def test_fuzz_checkpoint_folders(tiny_run, tmp_path_factory, damage):
    check_checkpoint(tiny_run, tmp_path_factory.mktemp("ck") / "R", damage)


def check_checkpoint(tiny_run: Path, run: Path, damage) -> str:
    """Damage a copy of a run's checkpoint, then restore it both ways: "ok" or "error" per restore."""
    shutil.copytree(tiny_run, run)
    kind, arg = damage
    folder = ckpt.latest_checkpoint(run)
    if kind == "latest":
        (run / "latest.json").write_text(json.dumps(arg))
    elif kind == "state-replace":
        (folder / "state.json").write_text(json.dumps(arg))
    elif kind == "state-edit":
        state = json.loads((folder / "state.json").read_text())
        state[arg[0]] = arg[1]
        (folder / "state.json").write_text(json.dumps(state))
    else:
        fname, where, byte = arg
        data = bytearray((folder / fname).read_bytes())
        pos = int(where * (len(data) - 1))
        if kind == "truncate":
            data = data[:pos]
        else:
            data[pos] ^= byte or 1
        (folder / fname).write_bytes(bytes(data))
    cfg = parse_config(tiny_toy())
    outcomes = []
    for weights_only in (True, False):
        ens = build_ensemble(cfg, (2,), "cpu")
        ens.run_dir = run
        try:
            ens.restore(weights_only=weights_only)
        except GensembleError:
            outcomes.append("error")
            continue
        outcomes.append("ok")
        if not weights_only:  # a checkpoint that loads must also train on
            gan_step(ens.members[0], load_dataset(cfg.data, "train"), 8)
    return "/".join(outcomes)
