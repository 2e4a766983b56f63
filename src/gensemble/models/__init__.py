"""Generative model families, one file each, registered by name.

Every model exposes ``sample(n, generator=None) -> Tensor`` and ``networks()``, the named
sub-networks that checkpoints save and optimisers train (GANs: "G", "D"; VAEs: "encoder", "decoder").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from gensemble.models.base import GAN, GenerativeModel
from gensemble.registry import Registry


@dataclass(frozen=True)
class ModelEntry:
    """How to configure and build one registered model family."""

    config: type  # a frozen dataclass of the family's hyper-parameters
    build: Callable[[Any, tuple[int, ...]], GenerativeModel]  # (config, data shape) -> model
    family: Literal["gan", "vae"]
    doc: str = ""


MODELS: Registry[ModelEntry] = Registry("model")


def get_model(name: str) -> ModelEntry:
    from gensemble.models import dcgan, mlp, vae  # noqa: F401  (registration side effects)

    return MODELS.get(name)


def model_names() -> list[str]:
    get_model("mlp-gan")
    return MODELS.names()


__all__ = ["GAN", "MODELS", "GenerativeModel", "ModelEntry", "get_model", "model_names"]
