"""Named datasets. Each yields float tensors in [-1, 1] of shape (C, H, W) (or (2,) for 2-D toys),
labels where they exist, and fixed train / held-out ("test") splits. Types and the registry live in
base.py; the loaders register themselves from images.py and toy.py."""

from __future__ import annotations

import math

import torch

from gensemble.data import images, toy  # noqa: F401  (registration side effects)
from gensemble.data.base import DATASETS, MIN_HELDOUT, DataConfig, Dataset, DatasetLoader, Split, reads_root
from gensemble.data.transforms import preprocess
from gensemble.errors import ConfigError, DataError

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


def heldout_halves(real: Dataset | torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out real data shuffled with a fixed seed and halved: (calibration half, evaluation half).
    The calibration half is what judges, critics and `auto` fit and choose on; the evaluation half
    is what `evaluate` scores and `complete --heldout` completes."""
    x = real if isinstance(real, torch.Tensor) else real.x
    if len(x) < MIN_HELDOUT:
        raise ConfigError(f"held-out real data has {len(x)} examples; scoring needs at least {MIN_HELDOUT}")
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    half = len(x) // 2
    return x[perm[:half]], x[perm[half:]]


HELDOUT_FILE = "heldout.txt"


def heldout_listing(cfg: DataConfig) -> str | None:
    """RUN/heldout.txt for data read from files (folder:): every held-out file and its half, so a
    user can pick images the run never trained on (`complete --image`). None for other datasets."""
    test = load_dataset(cfg, "test")
    paths = test.meta.get("paths")
    if not paths:
        return None
    cal, ev = heldout_halves(torch.arange(len(paths)), 0)
    half = {int(i): "calibration" for i in cal} | {int(i): "evaluation" for i in ev}
    lines = [
        f"# The {len(paths)} images of {cfg.name} this run holds out (data.test_fraction={cfg.test_fraction});",
        "# no member trains on them. 'calibration': judges, critics and auto fit on these; 'evaluation': what",
        "# evaluate scores and complete --heldout completes. Either is unseen by training (complete --image).",
        *(f"{half[i]}\t{p}" for i, p in enumerate(paths)),
    ]
    return "\n".join(lines) + "\n"


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
