import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

# Tests import their small helpers as a plain module.
sys.path.insert(0, str(Path(__file__).parent))
# Two cores, shared: one intra-op thread avoids oversubscription and keeps timings steady.
torch.set_num_threads(1)
# Classifiers and real features are cached on disk. Tests start from an empty cache of their own,
# as CI's fresh machine does, so they never lean on what a developer's ~/.cache happens to hold.
# CLI calls inside tests use one thread too, not the auto-probe (which would switch the process to 2).
os.environ.setdefault("GENSEMBLE_THREADS", "1")
if "GENSEMBLE_TEST_KEEP_CACHE" not in os.environ:
    os.environ["GENSEMBLE_CACHE"] = tempfile.mkdtemp(prefix="gensemble-test-cache-")


# Three small MLP GANs on grid25, trained for the tournament and fusion tests. 1000 steps at lr 1e-3
# is the least that gives discriminators with a usable signal (~20 s on one thread); EMA and
# snapshots are kept so that `average` can be tested on the same run.
GRID25_TRIO = {
    "data": {"name": "grid25"},
    "scheme": "independent",
    "members": [
        {"model": {"name": "mlp-gan", "g_hidden": 128, "d_hidden": 128}, "optim": {"lr": 1e-3}, "seed": s}
        for s in range(3)
    ],
    "train": {
        "steps": 1000,
        "batch_size": 128,
        "log_every": 500,
        "checkpoint_every": 1000,
        "ema_decay": 0.99,
        "snapshot_every": 250,
    },
}


def shared_run(tmp_path_factory, name: str, config: dict) -> Path:
    """A run trained once for the whole session where the xdist workers can share it: the first
    worker to ask trains it in the folder they share and marks it done; a worker that asks while it
    is being trained does not wait idle but trains a private copy (read-only use either way)."""
    import fcntl

    import yaml

    from gensemble.run import train_run

    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name
    shared.mkdir(exist_ok=True)
    lock = open(shared / ".lock", "w")  # noqa: SIM115 (held for the session on success)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        root = shared
    except BlockingIOError:  # another worker is training it right now
        lock.close()
        if (shared / "trained").exists():
            return shared / "run"
        root = tmp_path_factory.mktemp(name)
    try:
        if not (root / "trained").exists():
            cfg = root / "config.yaml"
            cfg.write_text(yaml.safe_dump(config))
            train_run(cfg, root / "run")
            (root / "trained").touch()
    finally:
        if root is shared:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()
    return root / "run"


@pytest.fixture(scope="session")
def grid25_trio(tmp_path_factory) -> Path:
    """The run folder of GRID25_TRIO, trained once per test session (shared by the workers; tests
    only read it)."""
    return shared_run(tmp_path_factory, "grid25-trio", GRID25_TRIO)


@pytest.fixture(scope="session")
def grid25_trio_long(tmp_path_factory) -> Path:
    """GRID25_TRIO trained for 3000 steps (about a minute of CPU), for the slow tests."""
    import yaml

    from gensemble.run import train_run

    root = tmp_path_factory.mktemp("grid25-trio-long")
    cfg = root / "trio.yaml"
    cfg.write_text(yaml.safe_dump({**GRID25_TRIO, "train": {**GRID25_TRIO["train"], "steps": 3000}}))
    return Path(train_run(cfg, root / "run"))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Every test that reads the shared grid25 trio runs on one xdist worker (`--dist loadgroup`), so
    the trio is trained once per session, not once per worker; the other worker runs the rest.
    (tryfirst: xdist reads the group markers in its own hook of this name, so they must be on the
    items before it runs.)"""
    for item in items:
        if "grid25_trio" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("grid25-trio"))


def pytest_configure(config):
    """xdist groups a test by a suffix on its node id, which pytest 9.2 no longer lets it add: the
    group scatters without a word and every worker trains its own trio. Say so instead."""
    version = tuple(int(v) for v in pytest.__version__.split(".")[:2])
    if config.getoption("dist", default="no") == "loadgroup" and version >= (9, 2):
        raise pytest.UsageError(
            f"pytest {pytest.__version__} breaks pytest-xdist's --dist loadgroup; "
            "install the pinned dev dependencies: pip install -e '.[dev]'"
        )
