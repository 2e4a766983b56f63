"""dcgan: convolutional generator and discriminator (Radford et al. 2016) for 28, 32 and 64 px."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from gensemble.config import check_ranges
from gensemble.models.base import GAN, MODELS, ModelEntry
from gensemble.models.blocks import Norm, Reshape, conv_plan, init_dcgan_weights, maybe_spectral, norm_2d


@dataclass(frozen=True)
class DCGANConfig:
    """Widths are per stage at the smallest resolution and halve as images grow."""

    z_dim: int = 64
    ngf: int = 32  # G channels at the last stage (DCGAN used 64; 32 trains ~3× faster on a CPU)
    ndf: int = 32
    g_norm: Norm = "batch"
    d_norm: Norm = "batch"  # use "layer" or "none" with wgan-gp
    spectral_norm: bool = False  # spectral normalisation on every D layer (Miyato et al. 2018)
    # The image size and channel count this member expects; None takes the data's. Stating them makes a
    # mismatch with the data a clear error naming the member, not a shape error deep in a layer.
    image_size: int | None = None
    channels: int | None = None

    def validate(self, path: str = "") -> None:

        check_ranges(
            self, path, z_dim=(1, 4096), ngf=(1, 1024), ndf=(1, 1024), image_size=(4, 1024), channels=(1, 3)
        )


def build_generator(cfg: DCGANConfig, channels: int, size: int) -> nn.Sequential:
    base, stages = conv_plan(size)
    width = cfg.ngf * 2 ** (stages - 1)
    layers: list[nn.Module] = [
        nn.Linear(cfg.z_dim, width * base * base, bias=cfg.g_norm == "none"),
        Reshape(width, base, base),
        norm_2d(cfg.g_norm, width),
        nn.ReLU(),
    ]
    for i in range(stages):
        last = i == stages - 1
        out = channels if last else width // 2
        layers.append(nn.ConvTranspose2d(width, out, 4, 2, 1, bias=last or cfg.g_norm == "none"))
        layers += [nn.Tanh()] if last else [norm_2d(cfg.g_norm, out), nn.ReLU()]
        width = out
    return nn.Sequential(*layers)


def build_discriminator(cfg: DCGANConfig, channels: int, size: int, out_features: int = 1) -> nn.Sequential:
    base, stages = conv_plan(size)
    layers: list[nn.Module] = []
    width_in, width = channels, cfg.ndf
    for i in range(stages):
        conv = nn.Conv2d(width_in, width, 4, 2, 1)
        # DCGAN leaves the first D layer unnormalised.
        layers += [maybe_spectral(conv, cfg.spectral_norm), norm_2d(cfg.d_norm if i else "none", width)]
        layers.append(nn.LeakyReLU(0.2))
        width_in, width = width, width * 2
    layers += [
        nn.Flatten(),
        maybe_spectral(nn.Linear(width_in * base * base, out_features), cfg.spectral_norm),
    ]
    if out_features == 1:
        layers.append(nn.Flatten(0))
    return nn.Sequential(*layers)


def build_dcgan(cfg: DCGANConfig, shape: tuple[int, ...]) -> GAN:
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ValueError(f"dcgan needs square images (C, H, W), got data of shape {shape}")
    channels, size = shape[0], shape[1]
    G = build_generator(cfg, channels, size)
    D = build_discriminator(cfg, channels, size)
    init_dcgan_weights(G)
    init_dcgan_weights(D)
    return GAN(G, D, cfg.z_dim)


MODELS.register("dcgan", "convolutional GAN (DCGAN) for 28/32/64 px, 1 or 3 channels")(
    ModelEntry(DCGANConfig, build_dcgan, "gan")
)
