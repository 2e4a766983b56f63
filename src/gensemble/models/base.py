"""The interface shared by all generative models, the GAN wrapper that mlp-gan and dcgan use, and the
registry of model families."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from gensemble.registry import Registry

SAMPLE_CHUNK = 512  # sample in chunks so that large n does not need one giant batch


class GenerativeModel(nn.Module):
    """A model that can draw samples. Subclasses set `family` and implement `decode` / `networks`."""

    family: ClassVar[Literal["gan", "vae"]]
    z_dim: int

    def networks(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def decode(self, z: Tensor) -> Tensor:
        """Map latent codes to samples (images in [-1, 1], or raw 2-D points)."""
        raise NotImplementedError

    def generator_net(self) -> nn.Module:
        """The sub-network that maps z to samples: what EMA and weight averaging act on."""
        raise NotImplementedError

    def latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        device = next(self.parameters()).device
        if generator is not None and generator.device != device:
            # Draw on the generator's device, then move: keeps CPU-seeded sampling reproducible on GPU.
            return torch.randn(n, self.z_dim, generator=generator, device=generator.device).to(device)
        return torch.randn(n, self.z_dim, generator=generator, device=device)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw n samples from the prior, in evaluation mode (running BN statistics)."""
        was_training = self.training
        self.eval()
        try:
            out = [
                self.decode(self.latent(min(SAMPLE_CHUNK, n - i), generator))
                for i in range(0, n, SAMPLE_CHUNK)
            ]
        finally:
            self.train(was_training)
        return torch.cat(out) if out else torch.empty(0)


class GAN(GenerativeModel):
    """A generator G(z) and a discriminator D(x) -> logits of shape (N,)."""

    family = "gan"

    def __init__(self, generator: nn.Module, discriminator: nn.Module, z_dim: int) -> None:
        super().__init__()
        self.G = generator
        self.D = discriminator
        self.z_dim = z_dim

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    def generator_net(self) -> nn.Module:
        return self.G

    def decode(self, z: Tensor) -> Tensor:
        return self.G(z)


@dataclass(frozen=True)
class ModelEntry:
    """How to configure and build one registered model family."""

    config: type  # a frozen dataclass of the family's hyper-parameters
    build: Callable[[Any, tuple[int, ...]], GenerativeModel]  # (config, data shape) -> model
    family: Literal["gan", "vae"]
    doc: str = ""


MODELS: Registry[ModelEntry] = Registry("model")
