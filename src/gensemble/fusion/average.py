"""Weight averaging: one generator whose weights are an average over training, not over members.

Two sources, both written during training by gensemble.run.hooks:

* ``ema``: the exponential moving average of a generator's weights ("<member>.G_ema", kept when
  train.ema_halflife_kimg or train.ema_decay > 0; Karras et al. 2018 and Yazıcı et al. 2019 show it smooths GAN training).
* ``snapshots``: a uniform "soup" of the generator's snapshots (RUN/snapshots/<member>/step-*.
  safetensors, kept when train.snapshot_every > 0; Wortsman et al. 2022).

Averaging weights only makes sense along one training trajectory, or across networks that started
from the same initial weights: independently seeded networks hold their hidden units in unrelated
orders, and the average of two of them is a third network that is neither. So several members are
averaged only if they share an architecture *and* a seed; otherwise the error says to pick one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from gensemble.checkpoint import read_tensors
from gensemble.ensemble.state import ema_key
from gensemble.errors import CheckpointError, ConfigError
from gensemble.fusion.base import FusionContext, register_fusion
from gensemble.safepath import files
from gensemble.sampling import Samples


@dataclass(frozen=True)
class AverageParams:
    source: Literal["auto", "ema", "snapshots"] = "auto"  # auto: EMA where kept, else the snapshots
    members: tuple[str, ...] = ()  # which members' weights to average; () = every member of the run
    last: int = 0  # snapshots: average only the last k (0: all of them)
    fit_seed: int = 0  # nothing here is fitted or drawn at build time; accepted so every method takes it

    def validate(self, path: str = "") -> None:
        if self.last < 0:
            raise ConfigError(f"config key '{path}.last' must be non-negative, got {self.last}")


def average_state_dicts(states: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Uniform average of floating-point entries; integer buffers (BN's step count) come from the last."""
    if not states:
        raise ConfigError("nothing to average: no weights were given")
    keys = list(states[-1])
    for s in states:
        if list(s) != keys or any(s[k].shape != states[-1][k].shape for k in keys):
            raise ConfigError("the weights to average do not share an architecture (their tensors differ)")
    return {
        k: torch.stack([s[k].float() for s in states]).mean(0).to(states[-1][k].dtype)
        if states[-1][k].is_floating_point()
        else states[-1][k].clone()
        for k in keys
    }


def snapshot_files(run_dir: Path | None, member: str) -> list[Path]:
    """RUN/snapshots/MEMBER/step-*.safetensors, regular files only (a linked folder is refused)."""
    if run_dir is None:
        return []
    return list(files(run_dir, f"snapshots/{member}", "step-*.safetensors"))


def check_averageable(ens: Any, names: list[str]) -> None:
    """Members can be averaged together only if they share an architecture and an initial seed."""
    first = ens.member(names[0])
    for name in names[1:]:
        m = ens.member(name)
        shapes = {k: v.shape for k, v in m.model.generator_net().state_dict().items()}
        first_shapes = {k: v.shape for k, v in first.model.generator_net().state_dict().items()}
        if m.cfg.model != first.cfg.model or shapes != first_shapes:
            a, b = first.cfg.model, m.cfg.model
            keys = (
                ["name"]
                if a.get("name") != b.get("name")
                else [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
            )
            diff = [f"{k} {a.get(k)} vs {b.get(k)}" for k in keys]
            raise ConfigError(
                f"fusion 'average' needs members that share an architecture, but {first.name} and {name} differ "
                f"({', '.join(diff[:3]) or 'in their weights'}); average one member with --set fusion.members=[{first.name}]"
            )
        if m.cfg.seed != first.cfg.seed:
            raise ConfigError(
                f"fusion 'average' cannot average {first.name} and {name}: they were seeded independently "
                f"(seeds {first.cfg.seed} and {m.cfg.seed}), so their weights do not correspond; "
                f"average one member's EMA or snapshots with --set fusion.members=[{first.name}]"
            )


def ingredients(ens: Any, names: list[str], p: AverageParams) -> tuple[list[dict[str, Tensor]], str]:
    """The state dicts to average and a label naming them ("m0:ema", "m0:soup(8)")."""
    has_ema = all(ema_key(n) in ens.aux for n in names)
    has_snaps = all(snapshot_files(ens.run_dir, n) for n in names)
    source = p.source
    if source == "auto":
        source = "ema" if has_ema else "snapshots" if has_snaps else ""
        if not source:
            raise ConfigError(
                f"fusion 'average' found neither EMA weights nor snapshots for {', '.join(names)}; "
                "train with train.ema_halflife_kimg (e.g. 10), train.ema_decay (e.g. 0.999) or train.snapshot_every (e.g. 500)"
            )
    if source == "ema":
        if not has_ema:
            raise ConfigError(
                f"fusion 'average' with source=ema needs EMA weights, but {', '.join(names)} kept none; "
                "train with train.ema_halflife_kimg > 0 (e.g. 10) or train.ema_decay > 0 (e.g. 0.999)"
            )
        states = [{k: v.detach().cpu() for k, v in ens.aux[ema_key(n)].state_dict().items()} for n in names]
        return states, f"{'+'.join(names)}:ema"
    if not has_snaps:
        raise ConfigError(
            f"fusion 'average' with source=snapshots found no snapshots for {', '.join(names)} "
            f"under {str(ens.run_dir)!r}/snapshots; train with train.snapshot_every > 0"
        )
    files = [
        f
        for n in names
        for f in (snapshot_files(ens.run_dir, n)[-p.last :] if p.last else snapshot_files(ens.run_dir, n))
    ]
    try:
        states = [read_tensors(ens.run_dir, f) for f in files]
    except Exception as exc:  # a truncated or foreign file
        raise CheckpointError(f"could not read snapshot {exc}") from None
    return states, f"{'+'.join(names)}:soup({len(files)})"


class AveragedSampler:
    """Samples from one generator holding the averaged weights."""

    acceptance_rate: float | None = None

    def __init__(self, model: nn.Module, label: str) -> None:
        self.model = model
        self.members = [label]

    def sample(self, n: int, generator: torch.Generator | None = None) -> Samples:
        x = self.model.sample(n, generator).cpu()
        return Samples(x, torch.zeros(n, dtype=torch.long), list(self.members))


@register_fusion("average", AverageParams, False)
def fuse_by_weight_averaging(ctx: FusionContext, p: AverageParams) -> AveragedSampler:
    """weight averaging of one generator: its EMA, or a soup of its snapshots"""
    ens = ctx.ens
    names = list(p.members) or [m.name for m in ens.members]
    for n in names:
        ens.member(n)  # unknown names fail here, listing the members
    check_averageable(ens, names)
    states, label = ingredients(ens, names, p)
    model = copy.deepcopy(ens.member(names[0]).model)
    try:
        model.generator_net().load_state_dict(average_state_dicts(states))
    except RuntimeError:
        raise CheckpointError(f"averaged weights for {label} do not fit the member's generator") from None
    return AveragedSampler(model.eval(), label)
