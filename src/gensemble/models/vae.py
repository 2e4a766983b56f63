"""vae: convolutional encoder/decoder with a Gaussian latent (Kingma & Welling 2014), β-ELBO."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from gensemble.config import check_ranges
from gensemble.models.base import MODELS, GenerativeModel, ModelEntry
from gensemble.models.blocks import Norm, Reshape, conv_plan, norm_2d


@dataclass(frozen=True)
class VAEConfig:
    z_dim: int = 32
    width: int = 32  # encoder channels at the first stage; the decoder mirrors them
    norm: Norm = "batch"
    beta: float = 1.0  # β-VAE weight on the KL term (Higgins et al. 2017)
    reconstruction: Literal["bce", "mse"] = "bce"
    image_size: int | None = None  # the image size and channels this member expects; None: the data's
    channels: int | None = None

    def validate(self, path: str = "") -> None:

        check_ranges(
            self, path, z_dim=(1, 4096), width=(1, 1024), beta=(0, 1e6), image_size=(4, 1024), channels=(1, 3)
        )


class GaussianVAE(GenerativeModel):
    """What every VAE family shares: a Gaussian posterior from `encoder`, the reparameterised pass,
    and samples decoded from the prior. Subclasses build `encoder` (x -> 2·z_dim) and `decoder`."""

    family = "vae"
    encoder: nn.Module
    decoder: nn.Module

    def networks(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoder": self.decoder}

    def generator_net(self) -> nn.Module:
        return self.decoder

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-20.0, 10.0)  # clamp keeps exp(logvar) finite early in training

    def decoder_output(self, z: Tensor) -> Tensor:
        """Raw decoder output: Bernoulli logits (bce) or the Gaussian mean (mse), as the ELBO needs."""
        return self.decoder(z)

    def forward(
        self, x: Tensor, generator: torch.Generator | None = None, eps: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Reparameterised pass: (decoder output, mu, logvar). `eps` (N, z_dim) is drawn when not given."""
        mu, logvar = self.encode(x)
        if eps is None:
            # Drawn on the generator's device (members' RNGs live on the CPU), then moved: a GPU run
            # draws the same noise as a CPU run.
            where = generator.device if generator is not None else mu.device
            eps = torch.randn(mu.shape, generator=generator, device=where).to(mu.device)
        return self.decoder_output(mu + eps * (0.5 * logvar).exp()), mu, logvar


class VAE(GaussianVAE):
    def __init__(self, cfg: VAEConfig, shape: tuple[int, ...]) -> None:
        super().__init__()
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ValueError(f"vae needs square images (C, H, W), got data of shape {shape}")
        channels, size = shape[0], shape[1]
        base, stages = conv_plan(size)
        self.cfg, self.z_dim = cfg, cfg.z_dim
        enc: list[nn.Module] = []
        c_in, c = channels, cfg.width
        for i in range(stages):
            enc += [nn.Conv2d(c_in, c, 4, 2, 1), norm_2d(cfg.norm if i else "none", c), nn.LeakyReLU(0.2)]
            c_in, c = c, c * 2
        enc += [nn.Flatten(), nn.Linear(c_in * base * base, 2 * cfg.z_dim)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [
            nn.Linear(cfg.z_dim, c_in * base * base),
            Reshape(c_in, base, base),
            nn.ReLU(),
        ]
        for i in range(stages):
            last = i == stages - 1
            out = channels if last else c_in // 2
            dec.append(nn.ConvTranspose2d(c_in, out, 4, 2, 1))
            if not last:
                dec += [norm_2d(cfg.norm, out), nn.ReLU()]
            c_in = out
        self.decoder = nn.Sequential(*dec)

    def decode(self, z: Tensor) -> Tensor:
        out = self.decoder(z)
        if self.cfg.reconstruction == "bce":
            return torch.sigmoid(out) * 2.0 - 1.0
        return out.clamp(-1.0, 1.0)


MODELS.register("vae", "convolutional VAE with a Gaussian latent, β-ELBO (BCE or MSE)")(
    ModelEntry(VAEConfig, lambda cfg, shape: VAE(cfg, shape), "vae")
)
