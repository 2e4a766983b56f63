"""What every feature extractor is (FeatureExtractor: images -> features (N, D) and class
probabilities) and the registry they register in; features.py and inception.py hold the extractors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gensemble.errors import GensembleError
from gensemble.registry import Registry

ArrayLike = np.ndarray | Tensor


def as_feature_array(x: ArrayLike, name: str = "features", min_rows: int = 1) -> np.ndarray:
    """A numpy array or tensor of shape (N, D) -> float64 numpy, with a one-line error when it is not."""
    if isinstance(x, Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise GensembleError(f"{name} must be a 2-D array (N, D), got shape {tuple(arr.shape)}")
    if arr.shape[0] < min_rows:
        raise GensembleError(f"{name} needs at least {min_rows} rows, got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise GensembleError(f"{name} contains NaN or infinite values; check the generator's output")
    return arr


@dataclass(frozen=True)
class FeatureOutput:
    """What an extractor returns: features (N, D) and, where the network classifies, probs (N, classes)."""

    features: np.ndarray
    probs: np.ndarray | None = None
    points: np.ndarray | None = None  # 2-D samples whose features were computed from them (toys)

    @property
    def labels(self) -> np.ndarray | None:
        """Predicted class per image (argmax of probs), or None without probs."""
        return None if self.probs is None else self.probs.argmax(axis=1)


class FeatureExtractor:
    """Batches images through a network; subclasses set name, dim, has_probs and implement _forward."""

    name: str
    dim: int
    has_probs: bool = False
    default_batch_size: int = 256

    def _forward(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """One batch (B, C, H, W) in [-1, 1] -> features (B, D) and probs (B, classes) or None."""
        raise NotImplementedError

    def features(self, images: Tensor) -> Tensor:
        """Features (B, D) of one batch as a torch function of the images (gradients flow through it)."""
        return self._forward(images)[0]

    def _check(self, images: Tensor) -> None:
        if not isinstance(images, Tensor) or images.dim() != 4:
            shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
            raise GensembleError(f"{self.name} features need images (N, C, H, W) in [-1, 1], got {shape}")

    @torch.inference_mode()
    def extract(self, images: Tensor, batch_size: int | None = None, progress: bool = False) -> FeatureOutput:
        """Features (N, dim) and probs (N, classes) or None for images (N, C, H, W) in [-1, 1]."""
        self._check(images)
        bs = batch_size or self.default_batch_size
        starts = range(0, images.shape[0], bs)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc=f"{self.name} features", unit="batch")
        feats, probs = [], []
        for i in starts:
            f, p = self._forward(images[i : i + bs].to(torch.float32))
            feats.append(f.to("cpu", torch.float32).numpy())
            if p is not None:
                probs.append(p.to("cpu", torch.float32).numpy())
        features = np.concatenate(feats) if feats else np.zeros((0, self.dim), np.float32)
        if not self.has_probs:
            return FeatureOutput(features, None)
        return FeatureOutput(features, np.concatenate(probs) if probs else None)


# A factory takes the full registered name ("classifier:fashion-mnist") and a device.
ExtractorFactory = Callable[[str, str], FeatureExtractor]
FEATURES: Registry[ExtractorFactory] = Registry("feature extractor")
