"""2-D Gaussian mixtures (ring8, grid25) used to count mode coverage, as in the PacGAN protocol.

Toy data are raw coordinates, not images: grid25 spans about [-4, 4]², so the values are *not*
in [-1, 1], and `preprocess` leaves them untouched apart from `limit`.
"""

from __future__ import annotations

import math

import torch

from gensemble.data.base import DATASETS, DataConfig, Dataset, Split
from gensemble.errors import UnknownNameError

TOY_SIZES = {"train": 50_000, "test": 10_000}
TOY_MIXTURES = ("grid25", "ring8")  # the mixtures with known centres (toy_modes)
# An offset far from typical seeds, so that the test draw never repeats the train draw.
_TEST_SEED_OFFSET = 1_000_003


def split_generator(seed: int, split: Split) -> torch.Generator:
    """A CPU generator for synthetic data: `seed` for train, a derived seed for test."""
    return torch.Generator().manual_seed(seed + (_TEST_SEED_OFFSET if split == "test" else 0))


def toy_modes(name: str) -> tuple[torch.Tensor, float]:
    """The true mode centres (K, 2) and the standard deviation of a named 2-D mixture."""
    if name == "ring8":
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        centres = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
        return centres.to(torch.float32), 0.01
    if name == "grid25":
        values = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
        # Mode k sits at (values[k // 5], values[k % 5]).
        centres = torch.cartesian_prod(values, values)
        return centres, 0.05
    raise UnknownNameError(f"unknown 2-D toy dataset {name!r}; known: grid25, ring8")


def sample_mixture(name: str, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw `n` points (n, 2) and their mode indices (n,) from a named mixture."""
    centres, sigma = toy_modes(name)
    labels = torch.randint(len(centres), (n,), generator=generator)
    noise = torch.randn(n, 2, generator=generator)
    return centres[labels] + sigma * noise, labels


def _load_toy(name: str, cfg: DataConfig, split: Split) -> Dataset:
    x, y = sample_mixture(name, TOY_SIZES[split], split_generator(cfg.seed, split))
    centres, sigma = toy_modes(name)
    return Dataset(x=x, y=y, num_classes=len(centres), modes=centres, sigma=sigma, meta={"source": name})


@DATASETS.register("ring8")
def load_ring8(cfg: DataConfig, split: Split) -> Dataset:
    """8 Gaussians (σ=0.01) on the unit circle; raw 2-D coordinates, 50k train / 10k test."""
    return _load_toy("ring8", cfg, split)


@DATASETS.register("grid25")
def load_grid25(cfg: DataConfig, split: Split) -> Dataset:
    """25 Gaussians (σ=0.05) on the grid {-4,-2,0,2,4}²; raw 2-D coordinates, 50k train / 10k test."""
    return _load_toy("grid25", cfg, split)
