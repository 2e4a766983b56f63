"""A small CNN domain classifier, trained on a dataset's labels, for features and class probabilities.

Evaluation on small grey-scale datasets is more telling with a classifier of the domain than with
ImageNet's Inception: its 128-d penultimate features feed FID/KID/PRDC, and its softmax feeds the
Inception Score and the label-mode statistics. Stacked-MNIST reuses the mnist-5k classifier on each
channel. Where the weights come from (shipped with the package, or trained on request) is
classifier_store.py's business.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gensemble.data import DataConfig, load_dataset
from gensemble.errors import GensembleError

if TYPE_CHECKING:
    from gensemble.data import Dataset

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
META_FILE = "meta.json"
# Datasets whose classifier is another dataset's, applied per channel.
PER_CHANNEL_SOURCES = {"stacked-mnist": "mnist-5k"}


@dataclass(frozen=True)
class ClassifierConfig:
    """Architecture of the domain classifier (saved in meta.json)."""

    in_channels: int = 1
    image_size: int = 28
    num_classes: int = 10
    width: int = 32  # channels of the first conv; the second has twice as many
    feature_dim: int = 128


@dataclass(frozen=True)
class TrainRecipe:
    """How long and how to train on one dataset; chosen so that each fits a 2-core CPU budget."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    augment: bool = False  # small random affine jitter; lifts mnist-5k (4.5k images) past 97%
    width: int = 32  # ClassifierConfig.width: channels of the first conv


RECIPES = {
    "fashion-mnist": TrainRecipe(epochs=3),
    # The stacked-MNIST labeller (applied per channel): 1.5x wider and longer-trained than the
    # first version (width 32, 12 epochs, 98.4% held out), so mode counts depend less on the labeller.
    "mnist-5k": TrainRecipe(epochs=16, augment=True, width=48),
    "digits": TrainRecipe(epochs=20, batch_size=64),
}


class DomainClassifier(nn.Module):
    """Two conv blocks (conv-maxpool-BN-ReLU) and a 128-d BN-ReLU penultimate layer before the logits."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        w, s = config.width, config.image_size // 4
        self.body = nn.Sequential(
            # Pool before BN-ReLU: the same kind of block at a quarter of the BN/ReLU cost on a CPU.
            nn.Conv2d(config.in_channels, w, 3, padding=1, bias=False),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(w),
            nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, padding=1, bias=False),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2 * w * s * s, config.feature_dim, bias=False),
            nn.BatchNorm1d(config.feature_dim),
            nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(config.feature_dim, config.num_classes)

    def logits_and_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits (N, classes) and penultimate features (N, feature_dim) of images in [-1, 1]."""
        feats = self.body(x)
        return self.head(self.dropout(feats)), feats

    def forward(self, x: Tensor) -> Tensor:
        return self.logits_and_features(x)[0]


def has_classifier(dataset: str) -> bool:
    """Whether `dataset` has a domain classifier (a training recipe, or another dataset's per channel)."""
    return dataset in RECIPES or dataset in PER_CHANNEL_SOURCES


def per_channel_source(dataset: str) -> str | None:
    """The dataset whose classifier `dataset` applies per channel (stacked-mnist -> mnist-5k), else None."""
    return PER_CHANNEL_SOURCES.get(dataset)


def _load_labelled(dataset: str) -> tuple[Dataset, Dataset]:

    train, test = (load_dataset(DataConfig(name=dataset), split) for split in ("train", "test"))
    if train.y is None or not train.is_image or test.y is None or len(test) == 0:
        raise GensembleError(
            f"a domain classifier needs a labelled image dataset with a held-out split; {dataset!r} is not one"
        )
    return train, test


def data_fingerprint(x: Tensor, y: Tensor) -> str:
    """Short sha256 of the training images and labels: a cached classifier is reused only for the same data."""
    h = hashlib.sha256()
    h.update(str(tuple(x.shape)).encode())
    h.update(x.contiguous().numpy().tobytes())
    h.update(y.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _jitter(x: Tensor, generator: torch.Generator) -> Tensor:
    """Random rotation (±10°), scale (0.9-1.1) and shift (±2 px) per image; the background stays -1."""
    n, size = x.shape[0], x.shape[-1]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(10)
    scale = 1 + (torch.rand(n, generator=generator) * 2 - 1) * 0.1
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (4.0 / size)  # 2 px in [-1, 1] coords
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Sample x + 1 with zero padding so that pixels pulled in from outside are background (-1).
    return F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1


@torch.no_grad()
def accuracy(model: DomainClassifier, x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
    """Share of images whose argmax logit is the label."""
    model.eval()
    correct = sum(
        int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
        for i in range(0, len(x), batch_size)
    )
    return correct / len(x)


def train_classifier(
    dataset_name: str, epochs: int | None = None, seed: int = 0
) -> tuple[DomainClassifier, float]:
    """Train the domain classifier of a labelled dataset (deterministic given seed); return it and its held-out accuracy."""
    model, acc, _ = _train(per_channel_source(dataset_name) or dataset_name, epochs, seed)
    return model, acc


def _fit(train: Dataset, config: ClassifierConfig, recipe: TrainRecipe, seed: int) -> DomainClassifier:
    """The training loop: Adam with a one-cycle schedule, cross-entropy, optional jitter."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = DomainClassifier(config)
        steps_per_epoch = math.ceil(len(train) / recipe.batch_size)
        opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
        # One-cycle: a short warm-up then cosine decay gets most of the accuracy in few epochs.
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch
        )
        for _ in range(recipe.epochs):
            model.train()
            order = torch.randperm(len(train), generator=gen)
            for i in range(0, len(train), recipe.batch_size):
                idx = order[i : i + recipe.batch_size]
                if len(idx) < 2:
                    continue  # BatchNorm needs two samples
                x = train.x[idx]
                if recipe.augment:
                    x = _jitter(x, gen)
                loss = F.cross_entropy(model(x), train.y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    return model


def _train(dataset: str, epochs: int | None, seed: int) -> tuple[DomainClassifier, float, dict]:
    train, test = _load_labelled(dataset)
    recipe = RECIPES.get(dataset, TrainRecipe())
    if epochs is not None:
        recipe = dataclasses.replace(recipe, epochs=epochs)
    config = ClassifierConfig(
        width=recipe.width,
        in_channels=train.x.shape[1],
        image_size=train.x.shape[-1],
        num_classes=int(train.num_classes or int(train.y.max()) + 1),
    )
    if train.x.shape[-1] != train.x.shape[-2] or config.image_size % 4:
        raise GensembleError(
            f"the domain classifier needs square images with a side divisible by 4, got {tuple(train.x.shape[1:])}"
        )
    start = time.perf_counter()
    threads = torch.get_num_threads()
    # One intra-op thread: these small convs gain little from more, a shared 2-core machine ran
    # fashion-mnist 2x faster this way, and a fixed reduction order keeps training deterministic
    # across machines. fork_rng seeds init and dropout without touching the caller's global RNG.
    torch.set_num_threads(1)
    try:
        model = _fit(train, config, recipe, seed)
    finally:
        torch.set_num_threads(threads)
    acc = accuracy(model, test.x, test.y)
    meta = {
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "config": dataclasses.asdict(config),
        "recipe": dataclasses.asdict(recipe),
        "seed": seed,
        "heldout_accuracy": acc,
        "heldout_size": len(test),
        "train_seconds": round(time.perf_counter() - start, 1),
        "data_fingerprint": data_fingerprint(train.x, train.y),
        # What a bit-exact retrain needs: the same torch build and CPU kernels (scripts/train_classifiers.py).
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "train_size": len(train),
    }
    return model.eval(), acc, meta
