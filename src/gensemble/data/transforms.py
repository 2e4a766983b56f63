"""Pure tensor transforms for datasets: value range, channels, size, flips, and the uniform
`preprocess` step that `load_dataset` applies after every raw loader."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from gensemble.data.base import DataConfig, Dataset, Split
from gensemble.errors import DataError

# ITU-R BT.601 luma weights, the same ones Pillow uses for RGB -> L.
_LUMA = (0.299, 0.587, 0.114)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 in [0, 255] or float in [0, 1] -> float32 in [-1, 1]."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32) / 127.5 - 1.0
    return x.to(torch.float32) * 2.0 - 1.0


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> float32 in [0, 1], clamped."""
    return ((x.to(torch.float32) + 1.0) / 2.0).clamp(0.0, 1.0)


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert images (..., C, H, W) to 1 or 3 channels (1 -> 3 by repeat, 3 -> 1 by luminance)."""
    have = x.shape[-3]
    if have == channels:
        return x
    if have == 1 and channels == 3:
        return x.expand(*x.shape[:-3], 3, *x.shape[-2:]).contiguous()
    if have == 3 and channels == 1:
        w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return (x * w).sum(dim=-3, keepdim=True)
    raise DataError(f"cannot convert images with {have} channels to {channels}; use channels 1 or 3")


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinearly resize images (N, C, H, W) or (C, H, W) to (size, size), antialiased when shrinking."""
    if tuple(x.shape[-2:]) == (size, size):
        return x
    single = x.dim() == 3
    batch = x.unsqueeze(0) if single else x
    # Antialiasing only matters when shrinking; without it small targets alias badly (28 -> 8).
    shrink = size < max(batch.shape[-2:])
    out = F.interpolate(
        batch.to(torch.float32), size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
    )
    return out[0] if single else out


def random_hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image of a batch (N, C, H, W) left-right with probability 0.5, drawn from `generator`."""
    flip = torch.rand(x.shape[0], generator=generator, device=generator.device) < 0.5
    flip = flip.to(x.device).view(-1, *([1] * (x.dim() - 1)))
    return torch.where(flip, x.flip(-1), x)


def augment(x: torch.Tensor, cfg: DataConfig, generator: torch.Generator) -> torch.Tensor:
    """Training-time augmentation of one batch; consumes no randomness when nothing applies."""
    if cfg.hflip and x.dim() == 4:
        return random_hflip(x, generator)
    return x


def preprocess(ds: Dataset, cfg: DataConfig, split: Split) -> Dataset:
    """Apply `limit` to the train split, then channel conversion, resize and clamp to image data.

    2-D toy data are raw coordinates: channels / image_size do not apply and no clamp is done.
    """
    x, y = ds.x, ds.y
    # Cutting first is equivalent (the transforms act per image) and spares resizing 60k images.
    if split == "train" and cfg.limit is not None and cfg.limit < len(x):
        # Clone so the slice does not keep the full tensor alive.
        x = x[: cfg.limit].clone()
        y = y[: cfg.limit].clone() if y is not None else None
    if ds.is_image:
        # Shrink channels before resizing and grow them after: same result, a third of the work.
        if cfg.channels is not None and cfg.channels < x.shape[1]:
            x = to_channels(x, cfg.channels)
        if cfg.image_size is not None:
            x = resize(x, cfg.image_size)
        if cfg.channels is not None:
            x = to_channels(x, cfg.channels)
        x = x.clamp(-1.0, 1.0)
    return dataclasses.replace(ds, x=x.to(torch.float32).contiguous(), y=y)
