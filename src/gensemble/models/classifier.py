"""A small CNN domain classifier, trained on a dataset's labels, for features and class probabilities.

Evaluation on small grey-scale datasets is more telling with a classifier of the domain than with
ImageNet's Inception: its 128-d penultimate features feed FID/KID/PRDC, and its softmax feeds the
Inception Score and the label-mode statistics. Stacked-MNIST reuses the mnist-5k classifier on each
channel. Trained classifiers are cached on disk as a folder (weights.safetensors + meta.json).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import Tensor, nn

from gensemble.checkpoint import atomic_write_bytes, atomic_write_text
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
    }
    return model.eval(), acc, meta


def default_cache_dir() -> Path:
    """$GENSEMBLE_CACHE, else ~/.cache/gensemble."""
    return Path(os.environ.get("GENSEMBLE_CACHE") or Path.home() / ".cache" / "gensemble").expanduser()


def _cache_folder(root: Path, dataset: str) -> Path:
    # Dataset names may carry paths (npz:/data/x.npz); keep the folder name safe and unique.
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", dataset)
    if safe != dataset:
        safe += "-" + hashlib.sha256(dataset.encode()).hexdigest()[:8]
    return root / "classifiers" / safe


def save_classifier(model: DomainClassifier, meta: dict, folder: str | Path) -> None:
    """Write weights.safetensors then meta.json (with the weights' sha256), each atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(folder / WEIGHTS_FILE, save(state))
    # meta.json goes last and names the weights' hash: a half-written pair is detected on load.
    meta = {**meta, "weights_sha256": hashlib.sha256((folder / WEIGHTS_FILE).read_bytes()).hexdigest()}
    atomic_write_text(folder / META_FILE, json.dumps(meta, indent=2))


def load_classifier(folder: str | Path) -> tuple[DomainClassifier, dict]:
    """Read a classifier folder (json + safetensors only, never pickle); raise GensembleError if it is damaged."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / META_FILE).read_text())
        raw = (folder / WEIGHTS_FILE).read_bytes()
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format version {meta.get('format_version')} != {FORMAT_VERSION}")
        if hashlib.sha256(raw).hexdigest() != meta.get("weights_sha256"):
            raise ValueError("weights do not match the hash in meta.json (truncated or overwritten)")
        model = DomainClassifier(ClassifierConfig(**meta["config"]))
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
        raise GensembleError(
            f"classifier cache {str(folder)!r} is unreadable: {str(exc).splitlines()[0]}"
        ) from None
    return model.eval(), meta


def load_or_train_classifier(
    dataset_name: str, cache_dir: str | Path | None = None, epochs: int | None = None
) -> DomainClassifier:
    """The cached domain classifier of a dataset, training (and caching) it first if needed or if the cache is bad."""
    dataset = per_channel_source(dataset_name) or dataset_name
    folder = _cache_folder(Path(cache_dir).expanduser() if cache_dir else default_cache_dir(), dataset)
    if (folder / META_FILE).exists() or (folder / WEIGHTS_FILE).exists():
        try:
            model, meta = load_classifier(folder)
            train, _ = _load_labelled(dataset)
            if meta.get("data_fingerprint") != data_fingerprint(train.x, train.y):
                raise GensembleError(
                    f"classifier cache {str(folder)!r} was trained on different {dataset} data"
                )
            # A cache of another width is another labeller (the recipe changed): retrain. Caches from
            # before `width` existed were 32 wide.
            same_net = meta.get("recipe", {}).get("width", 32) == RECIPES.get(dataset, TrainRecipe()).width
            if epochs is None and same_net:
                return model
            if epochs is not None and meta.get("recipe", {}).get("epochs") == epochs:
                return model
        except GensembleError as exc:
            warnings.warn(f"{exc}; retraining", stacklevel=2)
    model, _, meta = _train(dataset, epochs, seed=0)
    save_classifier(model, meta, folder)
    return model
