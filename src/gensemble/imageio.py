"""Reading and writing image files: PNG grids, .npz sample dumps, single images.

This is the only module that writes images; compute code returns tensors and leaves disk to it.
Every write is atomic (temporary file in the same folder, then os.replace), so an interrupted run
never leaves a half-written file under the final name.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from PIL import Image

from gensemble.checkpoint import atomic_write_bytes
from gensemble.errors import DataError


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """float in [-1, 1] -> uint8 numpy array of the same shape (NaN maps to 0 i.e. mid-grey)."""
    x = torch.nan_to_num(x.detach().to("cpu", torch.float32), nan=0.0)
    return ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8).numpy()


def make_grid(x: torch.Tensor, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile images (N, C, H, W) in [-1, 1] into one uint8 RGB array (H', W', 3), `nrow` images a row."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"make_grid expects images (N, 1|3, H, W), got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    if n == 0:
        raise ValueError("make_grid needs at least one image")
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = min(nrow, n)
    rows = math.ceil(n / nrow)
    imgs = _to_uint8(x)
    if c == 1:
        imgs = np.repeat(imgs, 3, axis=1)
    imgs = imgs.transpose(0, 2, 3, 1)  # (N, H, W, 3)
    grid = np.zeros((rows * (h + padding) + padding, ncol * (w + padding) + padding, 3), dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[top : top + h, left : left + w] = imgs[i]
    return grid


def _atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Render through `write(buffer)` in memory, then write the bytes atomically."""
    buf = io.BytesIO()
    write(buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def save_grid(x: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """Save images (N, C, H, W) in [-1, 1] as one PNG grid, atomically; returns the path."""
    grid = Image.fromarray(make_grid(x, nrow=nrow))
    return _atomic_write(path, lambda f: grid.save(f, format="PNG"))


def save_npz(x: torch.Tensor, path: str | Path, **extra: Any) -> Path:
    """Save samples atomically: images as uint8 (N, H, W, C) under "x", 2-D points as float32."""
    if x.dim() == 4:
        arr = _to_uint8(x).transpose(0, 2, 3, 1)
    elif x.dim() == 2:
        arr = x.detach().to("cpu", torch.float32).numpy()
    else:
        raise ValueError(f"save_npz expects images (N, C, H, W) or points (N, D), got {tuple(x.shape)}")
    arrays = {"x": arr}
    for key, value in extra.items():
        arrays[key] = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    return _atomic_write(path, lambda f: np.savez(f, **arrays))


def load_image(path: str | Path, size: int | None = None, channels: int | None = None) -> torch.Tensor:
    """Read one image file as a float tensor (C, H, W) in [-1, 1].

    `channels` 1 or 3 converts (None keeps grey as 1, anything else as 3); `size` centre-crops to a
    square and resizes bilinearly to (size, size). Unreadable or truncated files raise DataError.
    """
    try:
        with Image.open(path) as img:
            img.load()  # decoding happens here, so truncated files fail here
            if channels is None:
                channels = 1 if img.mode in ("1", "L", "LA", "I", "I;16", "F") else 3
            img = img.convert("L" if channels == 1 else "RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read image {str(path)!r}: {reason}") from None
    if size is not None:
        w, h = img.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
        if side != size:
            img = img.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.transpose(2, 0, 1).copy()).to(torch.float32) / 127.5 - 1.0
