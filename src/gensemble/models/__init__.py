"""Generative model families, one file each, registered by name.

Every model exposes ``sample(n, generator=None) -> Tensor`` and ``networks()``, the named
sub-networks that checkpoints save and optimisers train (GANs: "G", "D"; VAEs: "encoder", "decoder").
"""

from __future__ import annotations

# The families register themselves on import.
from gensemble.models import dcgan, mlp, mlp_vae, vae  # noqa: F401
from gensemble.models.base import GAN, MODELS, GenerativeModel, ModelEntry


def get_model(name: str) -> ModelEntry:
    return MODELS.get(name)


def model_names() -> list[str]:
    get_model("mlp-gan")
    return MODELS.names()


__all__ = ["GAN", "MODELS", "GenerativeModel", "ModelEntry", "get_model", "model_names"]
