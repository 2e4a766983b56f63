"""snapshots: a free ensemble from one training run (a snapshot, or self-, ensemble).

A run trained with `train.snapshot_every > 0` keeps its generators' weights along the way
(RUN/snapshots/<member>/step-*.safetensors). Those snapshots, with the final generator, form a
uniform mixture that costs no extra training: early snapshots cover modes the final generator may
have dropped, late ones draw sharper samples. With `refine: rejection` (the default) the mixture is
filtered by the run's own discriminators, calibrated on held-out real data against this mixture,
with discriminator rejection sampling (DRS), so the poor snapshots' samples are mostly rejected.

Unlike `average`, which blends the snapshots' weights into one generator, this keeps every snapshot
as a generator of its own: the member ids of the samples name the snapshot each came from.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch

from gensemble.checkpoint import read_tensors
from gensemble.errors import CheckpointError, ConfigError
from gensemble.fusion.average import snapshot_files
from gensemble.fusion.base import FusionContext, register_fusion
from gensemble.fusion.critic import fit_ensemble_critic
from gensemble.fusion.params import RejectionParams
from gensemble.fusion.proposal import MixtureSampler
from gensemble.fusion.rejection import DRSSampler, drs_sampler
from gensemble.tournament import make_judges
from gensemble.tournament.judges import JudgeKind


@dataclass(frozen=True)
class SnapshotParams(RejectionParams):
    # The snapshots' critic: one feature judge fitted against their mixture. On the benchmark's single
    # Fashion-MNIST model (one run, as snapshots are) DRS with the feature judge reached FID 11.1 on the
    # choice quarter against 15.7 for the model and 16.5 at best for its fine-tuned D, and it costs
    # seconds where fine-tuning copies of every D costs about 15 s in the demo.
    judges: JudgeKind = "features"
    members: tuple[str, ...] = ()  # whose snapshots; () = every member that kept snapshots
    last: int = 0  # only the last k snapshots of each member (0: all of them)
    refine: Literal["rejection", "none"] = "rejection"  # filter the mixture with the run's critics, or not

    def _check(self, path: str) -> None:
        if self.last < 0:
            raise ConfigError(f"config key '{path}.last' must be non-negative, got {self.last}")


def snapshot_generators(ctx: FusionContext, p: SnapshotParams) -> dict[str, torch.nn.Module]:
    """label -> a frozen copy of the member's model holding that snapshot's generator weights; every
    member's final generator is included as "<member>@final"."""
    ens = ctx.ens
    names = list(p.members) or [m.name for m in ens.members if snapshot_files(ens.run_dir, m.name)]
    if not names:
        raise ConfigError(
            "fusion 'snapshots' found no snapshots in this run; train with train.snapshot_every > 0 "
            "(e.g. train.snapshot_every=250)"
        )
    out: dict[str, torch.nn.Module] = {}
    for name in names:
        member = ens.member(name)
        # The final generator stands for the snapshot at its own step, so that one is not doubled.
        files = [f for f in snapshot_files(ens.run_dir, name) if f.stem != f"step-{member.step:08d}"]
        files = files[-p.last :] if p.last else files
        for f in files:
            model = copy.deepcopy(member.model).eval().requires_grad_(False)
            try:
                model.generator_net().load_state_dict(read_tensors(ens.run_dir, f))
            except Exception as exc:  # a truncated or foreign file
                raise CheckpointError(
                    f"could not read snapshot {f} ({type(exc).__name__}); delete it or retrain"
                ) from None
            out[f"{name}@{f.stem.removeprefix('step-').lstrip('0') or '0'}"] = model
        out[f"{name}@final"] = member.model
    return out


@register_fusion("snapshots", SnapshotParams, True)
def fuse_snapshots(ctx: FusionContext, p: SnapshotParams) -> MixtureSampler | DRSSampler:
    """a free ensemble: the generators saved along one run, mixed and filtered by the run's own critics (DRS)"""
    gens = snapshot_generators(ctx, p)
    proposal = MixtureSampler(gens, torch.ones(len(gens)), list(gens))
    if p.refine == "none":
        return proposal
    # Judges made for this mixture: fine-tuned (or a feature judge) against the snapshots' samples.
    cfg = p.judge_config
    key = ("snapshot-judges", tuple(gens), *cfg.record().values())
    discs = ctx.memo(key, lambda: make_judges(ctx.ens, ctx.cal_real, cfg, ctx.seed, generators=gens).nets)
    real = ctx.calib_real[: p.n_calibration]
    fake, _ = proposal.draw(len(real), torch.Generator().manual_seed(p.fit_seed + 1))
    key = ("snapshot-critic", tuple(gens), len(real), p.fit_seed, p.calibration, *cfg.record().values())
    critic = ctx.memo(key, lambda: fit_ensemble_critic(discs, real, fake, p.calibration))
    return drs_sampler(ctx, proposal, {"judges": critic}, p, "snapshots")
