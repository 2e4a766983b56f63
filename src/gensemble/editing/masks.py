"""Holes to fill: masks from a box or a mask image, checked against the image they belong to.

A mask is a float tensor (1, H, W) with 1 on the pixels to fill (the hole) and 0 on the known
ones. In a mask *file*, white (or any pixel brighter than mid-grey) marks the hole, as in most
inpainting tools.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import Tensor

from gensemble.errors import ConfigError, DataError, shown


def box_mask(box: str | tuple[int, int, int, int], height: int, width: int) -> Tensor:
    """A rectangular hole from "x,y,w,h" (pixels, origin top left), which must lie inside the image."""
    if isinstance(box, str):
        if not re.fullmatch(r"\s*\d+\s*,\s*\d+\s*,\s*\d+\s*,\s*\d+\s*", box):
            raise ConfigError(f"--box must be four whole numbers x,y,w,h, got {shown(box)}")
        box = tuple(int(v) for v in box.split(","))  # type: ignore[assignment]
    x, y, w, h = box  # type: ignore[misc]
    if w < 1 or h < 1 or x + w > width or y + h > height:
        raise ConfigError(
            f"--box {x},{y},{w},{h} does not fit a {width}×{height} image; it must lie inside it, with w and h ≥ 1"
        )
    mask = torch.zeros(1, height, width)
    mask[:, y : y + h, x : x + w] = 1.0
    return check_mask(mask, f"--box {x},{y},{w},{h}")


def mask_from_image(mask_image: Tensor, path: str | Path, height: int, width: int) -> Tensor:
    """A hole from a mask image (C, H, W) in [-1, 1]: pixels brighter than mid-grey are the hole."""
    if tuple(mask_image.shape[1:]) != (height, width):
        raise DataError(
            f"mask {shown(str(path))} is {mask_image.shape[2]}×{mask_image.shape[1]} px but the image is "
            f"{width}×{height}; give a mask of the image's size"
        )
    return check_mask((mask_image.mean(0, keepdim=True) > 0).float(), f"mask {shown(str(path))}")


def check_mask(mask: Tensor, what: str) -> Tensor:
    holes = int(mask.sum())
    if holes == 0:
        raise DataError(f"{what} marks no pixel to fill (white marks the hole); draw the hole in white")
    if holes == mask.numel():
        raise DataError(
            f"{what} covers the whole image, so nothing is known to complete from; leave some pixels black"
        )
    return mask
