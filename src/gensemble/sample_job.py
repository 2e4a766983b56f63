"""`gensemble sample`: draw from a run (a member, its mixture, or a fusion method) and save the result."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

from gensemble.config import load_yaml
from gensemble.data.toy import toy_modes
from gensemble.errors import ConfigError
from gensemble.fusion import sample_with_fusion
from gensemble.imageio import check_output, save_grid, save_npz
from gensemble.plots import save_scatter
from gensemble.run.sample import sample_run
from gensemble.sampling import Samples


@dataclass(frozen=True)
class SampleRequest:
    """What `gensemble sample` draws: n samples of a member, the run's default mixture or a fusion."""

    n: int
    seed: int = 0
    member: str | None = None
    fusion: str | None = None
    overrides: tuple[str, ...] = ()  # fusion.KEY=VALUE settings of the fusion
    device: str = "cpu"
    step: int | None = None  # the checkpoint at this total step (default: the latest)


def sample_to_file(run_dir: str | Path, output: str | Path, request: SampleRequest) -> tuple[Path, Samples]:
    """Sample from a run as `request` says, save to `output` (.png or .npz), return (path, samples)."""
    check_output(output, (".png", ".npz"))
    r = request
    if r.fusion is not None:
        samples = sample_with_fusion(
            run_dir, r.fusion, r.n, seed=r.seed, overrides=list(r.overrides), device=r.device, step=r.step
        )
    else:
        if r.overrides:
            raise ConfigError("--set applies to fusion parameters; pass --fusion NAME as well")
        samples = sample_run(run_dir, r.n, seed=r.seed, member=r.member, device=r.device, step=r.step)
    return save_samples(samples, output, modes=_toy_modes(run_dir)), samples


def _toy_modes(run_dir: str | Path) -> Tensor | None:
    """The true mode centres of a 2-D mixture run, drawn under its scatter plots."""
    name = load_yaml(Path(run_dir) / "config.yaml").get("data", {}).get("name")
    if name in ("ring8", "grid25"):
        return toy_modes(name)[0]
    return None


def save_samples(samples: Samples, path: str | Path, modes: Tensor | None = None) -> Path:
    """PNG: an image grid (or a scatter plot for 2-D points). NPZ: arrays x and member_ids."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".npz"):
        raise ConfigError(f"output {str(path)!r} must end in .png or .npz")
    if suffix == ".npz":
        save_npz(samples.x, path, member_ids=samples.member_ids.numpy(), members=np.array(samples.members))
    elif samples.x.dim() == 2:
        save_scatter(
            samples.x.numpy(),
            path,
            modes=None if modes is None else modes.numpy(),
            labels=samples.member_ids.numpy(),
        )
    else:
        save_grid(samples.x, path)
    return path
