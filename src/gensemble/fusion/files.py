"""`gensemble sample`: draw from a run (a member, its mixture, or a fusion method) and save the result."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from gensemble.config import load_yaml
from gensemble.data.toy import toy_modes
from gensemble.errors import ConfigError
from gensemble.fusion import sample_with_fusion
from gensemble.imageio import check_output
from gensemble.run.sample import sample_run
from gensemble.sampling import Samples, save_samples


def sample_to_file(
    run_dir: str | Path,
    n: int,
    output: str | Path,
    seed: int = 0,
    member: str | None = None,
    fusion: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    device: str = "cpu",
    step: int | None = None,
) -> tuple[Path, Samples]:
    """Sample from a run (a member, its default mixture, or a fusion method), save, return (path, samples)."""
    check_output(output, (".png", ".npz"))
    if fusion is not None:
        samples = sample_with_fusion(
            run_dir, fusion, n, seed=seed, overrides=overrides, device=device, step=step
        )
    else:
        if overrides:
            raise ConfigError("--set applies to fusion parameters; pass --fusion NAME as well")
        samples = sample_run(run_dir, n, seed=seed, member=member, device=device, step=step)
    return save_samples(samples, output, modes=_toy_modes(run_dir)), samples


def _toy_modes(run_dir: str | Path) -> Tensor | None:
    """The true mode centres of a 2-D mixture run, drawn under its scatter plots."""
    name = load_yaml(Path(run_dir) / "config.yaml").get("data", {}).get("name")
    if name in ("ring8", "grid25"):
        return toy_modes(name)[0]
    return None
