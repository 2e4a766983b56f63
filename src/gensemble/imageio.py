"""Reading and writing image files: PNG grids, .npz sample dumps, single images.

This is the only module that writes images; compute code returns tensors and leaves disk to it.
Every write is atomic (temporary file in the same folder, then os.replace), so an interrupted run
never leaves a half-written file under the final name.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from gensemble.checkpoint import atomic_write_bytes
from gensemble.errors import DataError, shown


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


def check_output(path: str | Path, suffixes: tuple[str, ...]) -> Path:
    """Refuse an output path that cannot be written, before any work is done for it.

    Checks the suffix, that the path is not a folder and its parent not a file, and that a file can
    actually be created in the parent (permissions, read-only or pseudo file systems such as /proc).
    """
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise DataError(f"output {shown(str(path))} must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise DataError(f"output {shown(str(path))} is a folder; name a file inside it")
    parent = path.parent
    for up in (parent, *parent.parents):
        if up.exists():
            if not up.is_dir():
                raise DataError(
                    f"output {shown(str(path))} cannot be written: {shown(str(up))} is a file, not a folder"
                )
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DataError(
            f"output {shown(str(path))} cannot be written ({exc.strerror}); choose another path"
        ) from None
    return path


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


def labelled_sheet_png(
    columns: list[tuple[str, torch.Tensor]], captions: list[str] | None = None, cell: int = 112
) -> bytes:
    """A table of images as a PNG: one column per (label, images (B, C, H, W) in [-1, 1]), one row per
    image, every image scaled up (nearest) to `cell` px so small images stay readable, the labels
    above their columns and an optional caption beside each row."""
    b = len(columns[0][1])
    pad, head = 6, 22
    side = 150 if captions else 0
    sheet = Image.new(
        "RGB", (side + len(columns) * (cell + pad) + pad, head + b * (cell + pad) + pad), "white"
    )
    draw = ImageDraw.Draw(sheet)
    for j, (label, images) in enumerate(columns):
        x0 = side + pad + j * (cell + pad)
        draw.text((x0, 4), label[: cell // 6], fill="black")
        for i in range(b):
            img = _one_image(images[i]).convert("RGB").resize((cell, cell), Image.NEAREST)
            sheet.paste(img, (x0, head + i * (cell + pad)))
    for i, text in enumerate(captions or []):
        draw.text((pad, head + i * (cell + pad) + cell // 2 - 6), text[:24], fill="black")
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()


def _one_image(x: torch.Tensor) -> Image.Image:
    arr = _to_uint8(x)
    return Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0))


def save_image(x: torch.Tensor, path: str | Path) -> Path:
    """Save one image (C, H, W) in [-1, 1] as a PNG of exactly its size (grey or RGB), atomically."""
    img = _one_image(x)
    return _atomic_write(path, lambda f: img.save(f, format="PNG"))


def png_bytes(x: torch.Tensor) -> bytes:
    """`save_image`'s PNG as bytes."""
    buf = io.BytesIO()
    _one_image(x).save(buf, format="PNG")
    return buf.getvalue()


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


# What each extension promises. A file whose content is another format (a GIF renamed .png) is
# refused rather than decoded by whatever PIL recognises: the folder then holds what it claims to.
FORMATS_BY_SUFFIX = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
DEFAULT_MAX_PIXELS = 1024 * 1024


def max_pixels_for(size: int | None, max_pixels: int | None = None) -> int:
    """The largest image (in pixels) read for a dataset of `size` px: 64 × size², at least 1024²."""
    if max_pixels is not None:
        return max_pixels
    return max(DEFAULT_MAX_PIXELS, 64 * (size or 0) ** 2)


def load_image(
    path: str | Path, size: int | None = None, channels: int | None = None, max_pixels: int | None = None
) -> torch.Tensor:
    """Read one image file as a float tensor (C, H, W) in [-1, 1].

    `channels` 1 or 3 converts (None keeps grey as 1, anything else as 3); `size` centre-crops to a
    square and resizes bilinearly to (size, size). 16-bit images are scaled from 0..65535. Unreadable,
    truncated, animated, mislabelled (content not the format its suffix names) or oversized files
    raise DataError; the size is checked from the header, before anything is decoded.
    """
    path = Path(path)
    limit = max_pixels_for(size, max_pixels)
    try:
        with warnings.catch_warnings():
            # PIL warns of "decompression bombs" on open; the pixel limit below is our own, and stricter.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img_file = Image.open(path)
        with img_file as img:
            expected = FORMATS_BY_SUFFIX.get(path.suffix.lower())
            if expected is not None and img.format != expected:
                raise DataError(
                    f"image {shown(str(path))} is a {img.format or 'non-image'} file named {path.suffix}; "
                    f"convert it to {expected} or give it its real extension"
                )
            if getattr(img, "n_frames", 1) > 1:
                raise DataError(
                    f"image {shown(str(path))} is animated ({img.n_frames} frames); save one frame as a still image"
                )
            w, h = img.size
            if w * h > limit:
                raise DataError(
                    f"image {shown(str(path))} is {w}×{h} px, far larger than this dataset needs; shrink it, "
                    f"or raise data.max_pixels above {w * h} to read it anyway"
                )
            img.load()  # decoding happens here, so truncated files fail here
            img = _unit_image(img, channels)
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read image {shown(str(path))}: {shown(reason, 80)}") from None
    if size is not None:
        w, h = img.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        img = img.crop((left, top, left + side, top + side))
        if side != size:
            img = img.resize((size, size), Image.Resampling.BILINEAR)
    if img.mode == "F":  # wide grey, already scaled to [0, 1]
        arr = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)[:, :, None]
        if channels == 3:
            arr = np.repeat(arr, 3, axis=2)
        x = torch.from_numpy(arr.transpose(2, 0, 1).copy())
        return x * 2.0 - 1.0
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.transpose(2, 0, 1).copy()).to(torch.float32) / 127.5 - 1.0


WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _unit_image(img: Image.Image, channels: int | None) -> Image.Image:
    """8-bit images as L or RGB; 16- and 32-bit grey as mode F scaled to [0, 1] by its own range
    (PIL's convert("L") would clip 0..65535 at 255, saturating almost every pixel)."""
    if img.mode in WIDE_MODES:
        arr = np.asarray(img, dtype=np.float64)
        top = 1.0 if img.mode == "F" else 65535.0
        if img.mode == "I" and arr.size and arr.max() > 65535:
            top = float(2**31 - 1)
        return Image.fromarray((arr / top).astype(np.float32), mode="F")
    if channels is None:
        channels = 1 if img.mode in ("1", "L", "LA") else 3
    return img.convert("L" if channels == 1 else "RGB")
