"""Named datasets. Each yields float tensors in [-1, 1] of shape (C, H, W) (or (2,) for 2-D toys),
labels where they exist, and fixed train / held-out ("test") splits. Types and the registry live in
base.py; the loaders register themselves from images.py and toy.py."""

from __future__ import annotations

from gensemble.data import images, toy  # noqa: F401  (registration side effects)
from gensemble.data.base import DATASETS, DataConfig, Dataset, DatasetLoader, Split, reads_root
from gensemble.data.transforms import preprocess

__all__ = ["DATASETS", "DataConfig", "Dataset", "DatasetLoader", "Split", "load_dataset", "reads_root"]


def load_dataset(cfg: DataConfig, split: Split = "train") -> Dataset:
    """Load a registered dataset split, apply resize / channel conversion, and apply `limit`."""
    ds = preprocess(DATASETS.get(cfg.name)(cfg, split), cfg, split)
    ds.meta["config"] = cfg  # the trainer reads augmentation settings (hflip) from here
    return ds
