"""Fusion: turn an ensemble into one sampler, by mixing, selecting, refining or averaging its members.

Each method is registered by name with a frozen config of its own parameters (set from the command
line with ``--set fusion.KEY=VALUE``) and a builder ``(FusionContext, params) -> Sampler``. A sampler's
``sample(n, generator)`` returns `gensemble.sampling.Samples`: the images (or 2-D points) and, for
each, the index of the member that made it. Samplers that reject proposals report
``acceptance_rate`` (accepted / proposed so far); the others report None.

One file per method: uniform.py, weighted.py, shares.py, best.py, learned_weights.py (mixtures and a
selection); rejection.py (DRS), vote.py, stacked.py, mh.py (MH-GAN), ddls.py (Langevin dynamics in
each generator's latent space), which refine the uniform mixture with one calibrated ensemble
critic; snapshots.py (the generators saved along one run, mixed and filtered by its critics);
average.py (EMA or a soup of snapshots); auto.py (a mixture and a refinement chosen on held-out data).
What they share, one piece each: params.py (the parameter groups), proposal.py (the mixture sampler
and the pool of judged proposals), critic.py (the ensemble critic), accept.py (the DRS and MH
acceptance rules), choose.py (simulating and scoring settings on held-out data), base.py (the
context, the registry, and what steers each method).

Everything a method fits (calibrators, weights, a meta-critic, DRS's bound M) is fitted once, when
the sampler is built, on the calibration half of the held-out real data and on generated samples
drawn with `fit_seed`; the sampling seed only changes which samples come out. See docs/fusion.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

# The methods register themselves on import.
from gensemble.config import apply_overrides, from_dict
from gensemble.data import Dataset
from gensemble.errors import ConfigError
from gensemble.fusion import (  # noqa: F401
    auto,
    average,
    best,
    ddls,
    learned_weights,
    mh,
    rejection,
    shares,
    snapshots,
    stacked,
    uniform,
    vote,
    weighted,
)
from gensemble.fusion.base import (
    FUSIONS,
    NO_DISCRIMINATOR_HINT,
    FusionContext,
    FusionEntry,
    Sampler,
    register_fusion,
)
from gensemble.fusion.params import FusionParams, concrete
from gensemble.run import Ensemble, load_run_and_heldout
from gensemble.sampling import Samples
from gensemble.tournament import require_discriminators

# The fusions the report suggests: one of each kind (a mixture, a weighted mixture, a selection,
# rejection and MCMC with the critics).
STANDARD_FUSIONS = ("uniform", "weighted", "best", "rejection", "mh")


def get_fusion(name: str) -> FusionEntry:
    return FUSIONS.get(name)


def fusion_names() -> list[tuple[str, str]]:
    """(name, one-line description) of every fusion method, for `gensemble list fusions`."""
    return FUSIONS.describe()


def parse_fusion_params(name: str, overrides: list[str] | tuple[str, ...] | dict[str, Any] = ()) -> Any:
    """`--set fusion.KEY=VALUE` items (or a plain dict) -> the method's typed, validated params."""
    entry = get_fusion(name)
    if isinstance(overrides, dict):
        raw = overrides
    else:
        for item in overrides:
            if not item.startswith("fusion."):
                raise ConfigError(f"--set with --fusion takes fusion.KEY=VALUE, got {item!r}")
        raw = apply_overrides({}, overrides).get("fusion", {})
    if not isinstance(raw, dict):
        raise ConfigError("--set fusion=... must name a key, as in fusion.KEY=VALUE")
    return from_dict(entry.config, raw, "fusion")


def parse_fusion_settings(
    names: Sequence[str], overrides: Sequence[str] | dict[str, dict[str, Any]] = ()
) -> dict[str, Any]:
    """Each named fusion's typed params: `--set fusion.KEY=VALUE` items apply to every named fusion
    whose parameters have KEY (a key none of them has is an error); a dict gives each its own."""
    if isinstance(overrides, dict):
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise ConfigError(
                f"fusion settings given for {unknown[0]!r}, which is not among the fusions evaluated"
            )
        return {n: parse_fusion_params(n, overrides.get(n, {})) for n in names}
    for item in overrides:
        if not item.startswith("fusion."):
            raise ConfigError(f"--set with --fusion takes fusion.KEY=VALUE, got {item!r}")
    raw = apply_overrides({}, list(overrides)).get("fusion", {})
    if not isinstance(raw, dict):
        raise ConfigError("--set fusion=... must name a key, as in fusion.KEY=VALUE")
    if raw and not names:
        raise ConfigError("--set fusion.KEY=VALUE needs a fusion to apply to: add --fusion NAME")
    fields = {n: set(get_fusion(n).config.__dataclass_fields__) for n in names}
    for key in raw:
        if not any(key in f for f in fields.values()):
            raise ConfigError(
                f"no fusion among {', '.join(names)} has a parameter {key!r}; see docs/fusion.md for each one's keys"
            )
    return {n: parse_fusion_params(n, {k: v for k, v in raw.items() if k in fields[n]}) for n in names}


def build_fusion(
    ens: Ensemble,
    name: str,
    real_heldout: Dataset | Tensor,
    params: Any = None,
    ctx: FusionContext | None = None,
) -> Sampler:
    """A sampler for fusion method `name` over `ens`. `params`: its config, a dict, or None (defaults).

    `real_heldout` is held-out real data; it is halved with `params.fit_seed` (calibration,
    evaluation) and the methods fit only on the calibration half. Pass the same `ctx` to build
    several fusions and they share the tournament, the proposals and the fitted critic.
    """
    entry = get_fusion(name)
    if params is None or isinstance(params, dict):
        params = parse_fusion_params(name, params or {})
    elif not isinstance(params, entry.config):
        raise ConfigError(
            f"fusion {name!r} takes {entry.config.__name__} params, got {type(params).__name__}"
        )
    params = concrete(params, ens.cfg.data.name)
    if entry.needs_discriminators and params.needs_discriminators:
        require_discriminators(ens, f"fusion {name!r}", NO_DISCRIMINATOR_HINT)
    seed = getattr(params, "fit_seed", 0)
    if ctx is None or ctx.seed != seed or ctx.ens is not ens:
        ctx = FusionContext.build(ens, real_heldout, seed)
    return entry.build(ctx.judged_by(params), params)


def sample_with_fusion(
    run_dir: str | Path,
    fusion: str,
    n: int,
    seed: int = 0,
    overrides: list[str] | tuple[str, ...] = (),
    device: str = "cpu",
    step: int | None = None,
) -> Samples:
    """Load a run, build fusion method `fusion` against its held-out split, and draw n samples
    (with the sampler's acceptance rate attached)."""
    if n < 1:
        raise ConfigError(f"-n must be at least 1, got {n}")
    params = parse_fusion_params(fusion, overrides)  # bad names and keys fail before any loading
    ens, heldout = load_run_and_heldout(run_dir, device, step)
    sampler = build_fusion(ens, fusion, heldout, params)
    samples = sampler.sample(n, torch.Generator().manual_seed(seed))
    samples.acceptance_rate = sampler.acceptance_rate
    return samples


__all__ = [
    "FUSIONS",
    "FusionContext",
    "FusionEntry",
    "FusionParams",
    "STANDARD_FUSIONS",
    "Sampler",
    "build_fusion",
    "fusion_names",
    "get_fusion",
    "parse_fusion_params",
    "parse_fusion_settings",
    "register_fusion",
    "sample_with_fusion",
]
