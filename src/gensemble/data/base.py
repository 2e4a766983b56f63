"""The dataset registry and its types (see the package for `load_dataset`). Each dataset yields float tensors in [-1, 1] of shape (C, H, W) (or (2,) for 2-D toys),
labels where they exist, and fixed train / held-out ("test") splits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch

from gensemble.config import SEED_RANGE, check_ranges
from gensemble.errors import ConfigError, shown
from gensemble.registry import Registry

Split = Literal["train", "test"]


# Scoring, fusing and evaluating halve the held-out split (calibration, evaluation) and need this many.
MIN_HELDOUT = 4


@dataclass(frozen=True)
class DataConfig:
    """Which dataset to load and how to preprocess it."""

    name: str = "grid25"
    root: str | None = (
        None  # folder holding the files (fashion-mnist IDX, folder:, npz:) when not the default
    )
    image_size: int | None = None  # resize to this square size (bilinear); None keeps the native size
    channels: int | None = None  # 1 or 3; None keeps the native channel count
    hflip: bool = False  # random horizontal flip, applied per batch during training
    skip_bad: bool = False  # folder: skip unreadable images with a warning instead of failing
    limit: int | None = None  # use only the first `limit` training examples (quick runs)
    seed: int = 0  # seed for synthetic data (2-D toys, stacked-mnist composition)
    test_fraction: float = 0.1  # folder: and npz: without a test key: the share held out for evaluation
    # folder: images with more pixels than this are refused (a 97 KB PNG can decode to 1 GB);
    # None: 64 × image_size² (at least 1024²). Raise it to load large photos on purpose.
    max_pixels: int | None = None

    def validate(self, path: str = "") -> None:

        p = f"{path}." if path else ""
        if self.channels not in (None, 1, 3):
            raise ConfigError(f"config key '{p}channels' must be 1 or 3, got {self.channels}")
        if self.image_size is not None and self.image_size < 4:
            raise ConfigError(f"config key '{p}image_size' must be at least 4, got {self.image_size}")
        check_ranges(
            self,
            path,
            test_fraction=(0.01, 0.9),
            limit=(1, 10**9),
            seed=SEED_RANGE,
            image_size=(4, 1024),
            max_pixels=(1, None),
        )
        if self.root is not None and not reads_root(self.name):
            raise ConfigError(
                f"config key '{p}root' is set, but dataset {shown(self.name)} never reads it; drop data.root "
                "(it is for fashion-mnist, folder: and npz:)"
            )


# Datasets that read `data.root`; the rest are built in or synthetic and would silently ignore it.
ROOT_READERS = ("fashion-mnist", "folder:", "npz:")


def reads_root(name: str) -> bool:
    return any(name == r or (r.endswith(":") and name.startswith(r)) for r in ROOT_READERS)


@dataclass
class Dataset:
    """One split of a dataset, fully in memory (our datasets are small)."""

    x: torch.Tensor  # float32 in [-1, 1]; (N, C, H, W) for images, (N, 2) for 2-D toys
    y: torch.Tensor | None = None  # int64 labels (N,), or None
    num_classes: int | None = None
    # 2-D mixtures expose their true modes for evaluation (PacGAN protocol).
    modes: torch.Tensor | None = None  # (K, 2) mode centres
    sigma: float | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def is_image(self) -> bool:
        return self.x.dim() == 4


# A loader takes the config and the split name and returns the *raw* Dataset (before resize and
# channel conversion, which `load_dataset` applies uniformly).
DatasetLoader = Callable[[DataConfig, Split], Dataset]
DATASETS: Registry[DatasetLoader] = Registry("dataset")
