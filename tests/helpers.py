"""Small builders shared by tests: tiny configs written to YAML, and a CLI runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gensemble.cli import main

TINY_TOY = {
    "data": {"name": "grid25"},
    "model": {"name": "mlp-gan", "z_dim": 2, "g_hidden": 16, "d_hidden": 16, "g_layers": 2, "d_layers": 2},
    "seed": 0,
    "train": {"steps": 6, "batch_size": 16, "checkpoint_every": 3, "log_every": 2},
}

# Two small MLP GANs on grid25 with names of their own, for the run-folder artefact tests.
PAIR = (
    "data: {name: grid25}\n"
    "scheme: independent\n"
    "members:\n"
    "  - {name: alpha, model: {name: mlp-gan, g_hidden: 16, d_hidden: 16}, seed: 0}\n"
    "  - {name: beta, model: {name: mlp-gan, g_hidden: 16, d_hidden: 16}, seed: 1}\n"
    "train: {steps: 30, batch_size: 32, log_every: 10, checkpoint_every: 30}\n"
)


def write_config(path: Path, cfg: dict[str, Any] | None = None, **sections: Any) -> Path:
    data = yaml.safe_load(yaml.safe_dump(cfg or TINY_TOY))
    for k, v in sections.items():
        data[k] = v
    path.write_text(yaml.safe_dump(data))
    return path


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["--quiet", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> str:
    """Exit code 2, exactly one `gensemble: error:` line (short, no traceback) holding every needle."""
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("gensemble: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert len(lines[0]) < 400, lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file under a folder with its bytes, to prove that nothing changed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
