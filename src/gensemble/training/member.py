"""An ensemble member: one registered model with its own config, seed, loss, optimisers and RNG."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from gensemble.config import SEED_RANGE, check_ranges, from_dict, to_dict
from gensemble.errors import CheckpointError, ConfigError, shown
from gensemble.losses import GAN_LOSSES, GANLoss
from gensemble.models import GenerativeModel, get_model
from gensemble.optim import OptimConfig, build_optimizer
from gensemble.state_tree import checked_rng, flatten_state, load_optimizer, state_mismatch, unflatten_state
from gensemble.training.diffaugment import check_policy

CONVOLUTIONS = (nn.Conv2d, nn.ConvTranspose2d)


# model mapping (as JSON) -> its parsed, frozen config: members' model configs are read at several
# places (building, memory estimates, shape checks), and each reads this one parse.
_PARSED_MODELS: dict[str, Any] = {}


@dataclass(frozen=True)
class MemberConfig:
    """One member. `model` is {"name": <registered model>, **its hyper-parameters}."""

    model: dict[str, Any] = field(default_factory=lambda: {"name": "mlp-gan"})
    name: str | None = None  # defaults to m0, m1, ... by position
    loss: str = "non-saturating"  # a GAN loss name; ignored by VAEs (they train on the ELBO)
    gp_weight: float = 10.0  # WGAN-GP penalty weight
    n_critic: int = 1  # D updates per G update
    # With n_critic 1, the G update reuses the D update's fake batch (one generator pass per step, as
    # pytorch/examples' dcgan/main.py does); false draws a fresh latent batch for it.
    reuse_fake: bool = True
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0
    bootstrap: bool = False  # independent scheme: train on a bootstrap resample of the data (bagging)
    # For small folders (a few thousand images), where D memorises the data and saturates: DiffAugment
    # of everything D sees (a subset of "color,translation,cutout"; training/diffaugment.py), and the
    # R1 penalty's weight γ on D's gradient at real images (0: off). Both apply to a member's own D.
    augment: str = ""
    r1: float = 0.0

    def validate(self, path: str = "") -> None:
        if self.name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", self.name):
            # Names become checkpoint keys and folder names, so keep them to a portable alphabet.
            raise ConfigError(
                f"config key '{path}.name' must be letters, digits, '-' or '_' (at most 64), got {shown(self.name, 40)}"
            )
        entry = self.entry(path)
        self.model_config(path)
        if entry.family == "gan":
            try:
                GAN_LOSSES.get(self.loss)
            except Exception as exc:
                raise ConfigError(f"config key '{path}.loss': {exc}") from None
        check_ranges(self, path, n_critic=(1, 100), seed=SEED_RANGE, gp_weight=(0, 1e6), r1=(0, 1e4))
        check_policy(self.augment, path)
        if (self.augment or self.r1) and entry.family != "gan":
            raise ConfigError(
                f"config key '{path}.augment' / '{path}.r1' apply to GAN members only; drop them here"
            )

    def entry(self, path: str = "model"):
        name = self.model.get("name")
        if not isinstance(name, str):
            raise ConfigError(f"config key '{path}.model.name' is required (e.g. mlp-gan, dcgan, vae)")
        try:
            return get_model(name)
        except Exception as exc:
            raise ConfigError(f"config key '{path}.model.name': {exc}") from None

    def model_config(self, path: str = "") -> Any:
        """The model family's typed config, from the `model` mapping minus its name: parsed once per
        distinct mapping (when the config is validated, where `path` names the member in errors)."""
        key = json.dumps(self.model, sort_keys=True, default=str)
        if key not in _PARSED_MODELS:
            params = {k: v for k, v in self.model.items() if k != "name"}
            _PARSED_MODELS[key] = from_dict(
                self.entry(path).config, params, f"{path}.model" if path else "model"
            )
        return _PARSED_MODELS[key]

    @property
    def family(self) -> str:
        return self.entry().family

    def resolved(self, index: int) -> MemberConfig:
        """A copy with the name filled in and the model's defaults written out (for config.yaml)."""
        model = {"name": self.model["name"], **to_dict(self.model_config())}
        return replace(self, model=model, name=self.name or f"m{index}")


@dataclass
class Member:
    """A built member: model, optimisers, RNG stream and progress (`step` = generator updates)."""

    name: str
    cfg: MemberConfig
    model: GenerativeModel
    optimizers: dict[str, torch.optim.Optimizer]
    rng: torch.Generator  # every random draw in training comes from here, so runs are reproducible
    step: int = 0

    @property
    def family(self) -> str:
        return self.model.family

    @property
    def loss(self) -> GANLoss:
        return GAN_LOSSES.get(self.cfg.loss)

    def weights(self) -> dict[str, torch.Tensor]:
        """Parameters and buffers of every sub-network, keyed "<member>.<net>.<param>"."""
        return {
            f"{self.name}.{net}.{k}": v
            for net, module in self.model.networks().items()
            for k, v in module.state_dict().items()
        }

    def load_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        for net, module in self.model.networks().items():
            prefix = f"{self.name}.{net}."
            sub = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            try:
                module.load_state_dict(sub)
            except RuntimeError:
                raise CheckpointError(
                    f"checkpoint weights for member {shown(self.name, 40)} ({net}) do not match its config: "
                    f"{state_mismatch(module.state_dict(), sub)}; resume with the config the run was "
                    "trained with, or train a new run"
                ) from None

    def training_state(self, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Optimiser and RNG state: tensors go into `tensors`, the rest is returned as JSON."""
        tensors[f"{self.name}.rng"] = self.rng.get_state()
        opt = {
            k: flatten_state(o.state_dict(), f"{self.name}.opt.{k}", tensors)
            for k, o in self.optimizers.items()
        }
        return {"step": self.step, "optimizers": opt}

    def load_training_state(
        self, state: dict[str, Any], tensors: dict[str, torch.Tensor], weights_only: bool = False
    ) -> None:
        self.step = int(state["step"])
        if weights_only:  # sampling and scoring need neither optimiser moments nor the RNG stream
            return
        key = f"{self.name}.rng"
        if key not in tensors:
            raise CheckpointError(f"checkpoint has no RNG state for member {self.name!r}; it is incomplete")
        self.rng.set_state(checked_rng(tensors[key], self.rng.get_state()))
        for k, o in self.optimizers.items():
            load_optimizer(o, unflatten_state(state["optimizers"][k], tensors))


def build_member(cfg: MemberConfig, shape: tuple[int, ...], device: str | torch.device = "cpu") -> Member:
    """Build a member's model and optimisers, initialised from its own seed."""
    entry = cfg.entry()
    # Initialise under the member's seed without disturbing the caller's global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        try:
            model = entry.build(cfg.model_config(), shape)
        except ValueError as exc:
            raise ConfigError(f"member {cfg.name!r}: {exc}") from None
    model.to(device)
    if torch.device(device).type == "cpu" and any(isinstance(m, CONVOLUTIONS) for m in model.modules()):
        # Channels-last convolution weights, before any optimiser state exists: on a CPU a DCGAN step
        # ran about 6% faster (benchmarks/loop_speed.py) and sampling about 1.25x (0.22 s against
        # 0.28 s per 2,000 at 48 channels). The values are the same up to float summation order.
        model.to(memory_format=torch.channels_last)
    nets = model.networks()
    if entry.family == "gan":
        optimizers = {
            "G": build_optimizer(nets["G"].parameters(), cfg.optim, "G"),
            "D": build_optimizer(nets["D"].parameters(), cfg.optim, "D"),
        }
    else:
        optimizers = {"vae": build_optimizer(model.parameters(), cfg.optim, "G")}
    # A separate stream from the init seed, so the same seed does not reuse init noise as data noise.
    rng = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 17)
    return Member(cfg.name or "m0", cfg, model, optimizers, rng)
