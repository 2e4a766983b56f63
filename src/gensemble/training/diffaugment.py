"""Differentiable augmentation of everything the discriminator sees (DiffAugment, Zhao et al. 2020,
"Differentiable Augmentation for Data-Efficient GAN Training"), for members that train on a few
thousand images: the discriminator then cannot memorise the training set, which is what saturates it
(d_real → 1, d_fake → 0) and leaves the generator without a gradient.

The three transforms of the paper's default policy "color,translation,cutout", written here from its
description and the authors' reference code (mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py),
on images in [-1, 1]:

* color: brightness + U(-0.5, 0.5), saturation × U(0, 2) about the pixel's channel mean, contrast
  × U(0.5, 1.5) about the image mean;
* translation: a shift of up to 1/8 of the side in each direction, zero-filled;
* cutout: a zeroed square of half the side at a uniform position (it may run off the edge).

Real and generated batches are augmented alike, in the D step and in the G step, and every transform
is differentiable in the images, so the generator learns through it. The random parameters are drawn
on the CPU from the member's own RNG (saved in its checkpoints), for the whole batch before sharding,
so a resumed or data-parallel run draws exactly what an uninterrupted one does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from gensemble.errors import ConfigError

POLICIES = ("color", "translation", "cutout")


def check_policy(policy: str, path: str) -> None:
    """A comma-separated subset of POLICIES ("" for none), or a one-line error."""
    unknown = [p for p in policy.split(",") if p and p not in POLICIES]
    if unknown:
        raise ConfigError(
            f"config key '{path}.augment' takes a comma-separated subset of {', '.join(POLICIES)} "
            f"(DiffAugment; the paper's default is all three), got {unknown[0]!r}"
        )


@dataclass(frozen=True)
class AugmentDraw:
    """One batch's random parameters (one row per image); None for a transform not in the policy."""

    color: Tensor | None  # (B, 3): brightness shift, saturation factor, contrast factor
    shift: Tensor | None  # (B, 2) integer shifts (rows, columns)
    cut: Tensor | None  # (B, 2) integer cutout centres (rows, columns)

    def take(self, rows: Callable[[Tensor], Tensor]) -> AugmentDraw:
        """The draws of this process's rows of the batch (`rows`: a shard's take)."""
        return AugmentDraw(*(None if t is None else rows(t) for t in (self.color, self.shift, self.cut)))


def draw(policy: str, n: int, size: tuple[int, int], rng: torch.Generator) -> AugmentDraw:
    """The random parameters of n images of size (H, W) under `policy`, from `rng` (CPU)."""
    parts = set(policy.split(","))
    h, w = size
    color = None
    if "color" in parts:
        u = torch.rand(n, 3, generator=rng)
        color = torch.stack([u[:, 0] - 0.5, u[:, 1] * 2.0, u[:, 2] + 0.5], dim=1)
    shift = None
    if "translation" in parts:
        sh, sw = int(h * 0.125 + 0.5), int(w * 0.125 + 0.5)
        shift = torch.stack(
            [
                torch.randint(-sh, sh + 1, (n,), generator=rng),
                torch.randint(-sw, sw + 1, (n,), generator=rng),
            ],
            1,
        )
    cut = None
    if "cutout" in parts:
        ch, cw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
        cut = torch.stack(
            [
                torch.randint(0, h + (1 - ch % 2), (n,), generator=rng),
                torch.randint(0, w + (1 - cw % 2), (n,), generator=rng),
            ],
            1,
        )
    return AugmentDraw(color, shift, cut)


def apply(x: Tensor, d: AugmentDraw) -> Tensor:
    """Images (B, C, H, W) augmented by the draws `d`; differentiable in x."""
    if d.color is not None:
        c = d.color.to(x.device, x.dtype)
        x = x + c[:, 0].view(-1, 1, 1, 1)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * c[:, 1].view(-1, 1, 1, 1) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * c[:, 2].view(-1, 1, 1, 1) + mean
    if d.shift is not None:
        x = translate(x, d.shift.to(x.device))
    if d.cut is not None:
        x = x * cutout_mask(x, d.cut.to(x.device))
    return x


def translate(x: Tensor, shift: Tensor) -> Tensor:
    """Each image moved by its (rows, columns) shift, the uncovered border zero."""
    b, _, h, w = x.shape
    ph, pw = int(shift[:, 0].abs().max()), int(shift[:, 1].abs().max())
    padded = F.pad(x, (pw, pw, ph, ph))
    rows = torch.arange(h, device=x.device)[None, :] + ph - shift[:, :1]  # (B, H)
    cols = torch.arange(w, device=x.device)[None, :] + pw - shift[:, 1:]  # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def cutout_mask(x: Tensor, centre: Tensor) -> Tensor:
    """(B, 1, H, W): 0 inside each image's square of half the side about its centre, else 1."""
    _, _, h, w = x.shape
    ch, cw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
    top, left = centre[:, :1] - ch // 2, centre[:, 1:] - cw // 2
    r = torch.arange(h, device=x.device)[None, :]
    c = torch.arange(w, device=x.device)[None, :]
    inside_r = (r >= top) & (r < top + ch)  # (B, H)
    inside_c = (c >= left) & (c < left + cw)  # (B, W)
    return (~(inside_r[:, :, None] & inside_c[:, None, :]))[:, None].to(x.dtype)
