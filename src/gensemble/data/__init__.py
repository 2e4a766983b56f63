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
    "CHOICE_WANTED",
    "DATASETS",
    "EVALUATION_WANTED",
    "MIN_HELDOUT",
    "DataConfig",
    "Dataset",
    "DatasetLoader",
    "Split",
    "heldout_advice",
    "heldout_sizes",
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


# What the held-out split is cut into (heldout_halves, then judge_split, then the critics' and
# auto's halves of the rest: fusion.base.FusionContext), and how many of each a run wants.
EVALUATION_WANTED = 500  # evaluate warns below this n: FID is biased and prdc noisy
CHOICE_WANTED = 100  # auto chooses only with at least this many images to choose on


def heldout_sizes(n_test: int) -> dict[str, int]:
    """Images in each part of a held-out split of n_test (as the splits cut it)."""
    cal = n_test // 2
    judges = cal // 2 if cal >= 8 else cal
    rest = cal - cal // 2 if cal >= 8 else cal
    calibration, choice = (rest, rest) if rest < 4 else (rest // 2, rest - rest // 2)
    return {
        "evaluation": n_test - cal,
        "judges": judges,
        "critic calibration": calibration,
        "choice": choice,
    }


def heldout_advice(cfg: DataConfig, n_train: int, n_test: int) -> str | None:
    """One line when evaluation or auto's choice would get too few held-out images, with the
    data.test_fraction that gives them enough (None when they have enough)."""
    sizes = heldout_sizes(n_test)
    short = []
    if sizes["evaluation"] < EVALUATION_WANTED:
        short.append(f"evaluation {sizes['evaluation']} (wants {EVALUATION_WANTED})")
    if sizes["choice"] < CHOICE_WANTED:
        short.append(f"auto's choice {sizes['choice']} (needs {CHOICE_WANTED})")
    if not short:
        return None
    total = n_train + n_test
    # held-out images each part needs: the evaluation half, and a choice eighth of the split
    needs = {"evaluation": 2 * EVALUATION_WANTED, "auto's choice": 8 * CHOICE_WANTED}
    wanted = {k: v for k, v in needs.items() if any(s.startswith(k) for s in short)}
    fits = {k: v for k, v in wanted.items() if v <= total // 2}
    if len(fits) == len(wanted):
        need = max(wanted.values())
        fix = f"data.test_fraction={math.ceil(100 * need / total) / 100:g} would hold out {need}"
    elif fits:
        part, need = max(fits.items(), key=lambda kv: kv[1])
        fix = (
            f"data.test_fraction={math.ceil(100 * need / total) / 100:g} would give {part} enough; "
            f"the folder's {total} images are too few for the rest"
        )
    else:
        fix = f"the folder's {total} images are too few: evaluate with a smaller --n, and auto returns the uniform mixture"
    return f"{cfg.name} holds out {n_test} images, so {' and '.join(short)} get too few; {fix}"
