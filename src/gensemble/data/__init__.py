"""Named datasets. Each yields float tensors in [-1, 1] of shape (C, H, W) (or (2,) for 2-D toys),
labels where they exist, and fixed train / held-out ("test") splits. Types and the registry live in
base.py; the loaders register themselves from images.py and toy.py."""

from __future__ import annotations

import math

from gensemble.data import images, toy  # noqa: F401  (registration side effects)
from gensemble.data.base import DATASETS, MIN_HELDOUT, DataConfig, Dataset, DatasetLoader, Split, reads_root
from gensemble.data.transforms import preprocess
from gensemble.errors import DataError

__all__ = [
    "DATASETS",
    "MIN_HELDOUT",
    "DataConfig",
    "Dataset",
    "DatasetLoader",
    "Split",
    "load_dataset",
    "reads_root",
]


def load_dataset(cfg: DataConfig, split: Split = "train") -> Dataset:
    """Load a registered dataset split, apply resize / channel conversion, and apply `limit`."""
    ds = preprocess(DATASETS.get(cfg.name)(cfg, split), cfg, split)
    ds.meta["config"] = cfg  # the trainer reads augmentation settings (hflip) from here
    return ds


def check_heldout(cfg: DataConfig, n_train: int) -> None:
    """Refuse, before training, data whose held-out split is too small to score, fuse or evaluate."""
    try:
        n_test = len(load_dataset(cfg, "test"))
    except DataError:
        n_test = 0
    if n_test >= MIN_HELDOUT:
        return
    total = n_train + n_test
    need = math.ceil((MIN_HELDOUT - 0.5) / cfg.test_fraction)
    raise DataError(
        f"{cfg.name} holds {total} example(s), of which {n_test} would be held out (data.test_fraction="
        f"{cfg.test_fraction}); scoring, fusing and evaluating a run need at least {MIN_HELDOUT} held out: "
        f"add images (at least {need} at this test_fraction) or raise data.test_fraction"
    )
