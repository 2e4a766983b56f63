"""Per-class (or per-cluster) coverage: which share of each row's samples falls in each class of the
reference, against the reference's own share, and the class each row serves worst.

With a domain classifier the classes are its predicted labels. Without one (an unlabelled folder on
Inception or pixel features) the reference's features are clustered with k-means, and each sample
is assigned to its nearest centre: the modes-like view the toys have, for any folder.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gensemble.evaluation.labels import ImageClassifier, Labeller, ReferenceLabels
from gensemble.metrics import FeatureOutput, feature_stats, frechet_distance
from gensemble.metrics.clusters import kmeans, nearest
from gensemble.metrics.fid import histogram_matched

# The datasets whose label indices have names (Fashion-MNIST's, in the order of its IDX labels).
CLASS_NAMES = {
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
}
MAX_CLASSES = 100  # above this (stacked-MNIST's 1,000 modes) a table per class is not readable
CLUSTERS = 10  # k of the k-means view of an unlabelled reference
EXEMPLARS = 8  # reference images shown per class (cluster) in the report


def shares(labels: np.ndarray, k: int) -> np.ndarray:
    """(k,) the share of `labels` in each class."""
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=k)[:k] / max(len(labels), 1)


def worst_class(row: np.ndarray, reference: np.ndarray) -> tuple[int, float]:
    """(class, row share / reference share) of the class the row under-serves most, among the
    classes that hold at least 1% of the reference."""
    present = reference >= 0.01
    ratio = np.where(present, row / np.maximum(reference, 1e-12), np.inf)
    worst = int(ratio.argmin())
    return worst, float(ratio[worst])


@dataclass
class Coverage:
    """Collects each row's class shares against the reference's."""

    by: str  # what the classes are, in words
    names: list[str]
    reference: np.ndarray
    centres: np.ndarray | None = None  # k-means centres (None: the classifier's labels)
    rows: dict[str, np.ndarray] = field(default_factory=dict)
    labeller: Any = None  # with the user's labels: classes of samples from their features (labels.Labeller)
    # The class (cluster) of each reference image, in the reference's order: what `exemplars` shows.
    reference_index: np.ndarray | None = None

    @classmethod
    def prepare(
        cls, ref: FeatureOutput, dataset: str, features: str, seed: int = 0, use_probs: bool = True
    ) -> Coverage | None:
        """From the reference's features and (with `use_probs`, if any) probabilities; None when there
        is no readable table (more than MAX_CLASSES classes, or fewer reference rows than clusters).
        Without `use_probs` the classes are k-means clusters of the features even where a labeller
        gave probabilities: coverage on the space itself, not on the labeller's classes."""
        if ref.probs is not None and use_probs:
            k = int(np.asarray(ref.probs).shape[1])
            if k > MAX_CLASSES:
                return None
            names = CLASS_NAMES.get(dataset, [str(i) for i in range(k)])
            names = names if len(names) == k else [str(i) for i in range(k)]
            index = np.asarray(ref.labels, dtype=np.int64)
            return cls(f"classes predicted by {features}", names, shares(index, k), reference_index=index)
        x = np.asarray(ref.features, dtype=np.float64)
        if len(x) < 2 * CLUSTERS:
            return None
        centres = kmeans(x, CLUSTERS, seed)
        names = [f"cluster {i}" for i in range(CLUSTERS)]
        by = f"k-means clusters (k = {CLUSTERS}) of the reference's {features} features: clusters, not classes (--labels brings yours)"
        index = nearest(x, centres)
        return cls(by, names, shares(index, CLUSTERS), centres, reference_index=index)

    @classmethod
    def from_labels(
        cls, ref: FeatureOutput, labels: ReferenceLabels, features: str, seed: int = 0
    ) -> Coverage:
        """The user's classes of the reference (`--labels`), and a labeller fitted on its features."""
        labeller = Labeller(ref.features, labels.index, seed)
        by = (
            f"your labels ({labels.source}); samples classed by a logistic regression on {features} features, "
            f"{100 * labeller.accuracy:.1f}% accurate on the reference (5-fold cross-validated)"
        )
        index = np.asarray(labels.index, dtype=np.int64)
        return cls(
            by, list(labels.names), shares(index, len(labels.names)), labeller=labeller, reference_index=index
        )

    @classmethod
    def from_classifier(cls, classifier: ImageClassifier, reference: ReferenceLabels) -> Coverage:
        """Your classifier's classes of the reference, and of every sample from its images."""
        by = f"classes your classifier ({classifier.source}) predicts, on the reference and on every sample"
        index = np.asarray(reference.index, dtype=np.int64)
        return cls(
            by,
            list(reference.names),
            shares(index, len(reference.names)),
            labeller=classifier,
            reference_index=index,
        )

    def labels(self, feats: FeatureOutput, x: Any = None) -> np.ndarray | None:
        """Each sample's class (or nearest cluster); None without probabilities to read classes from.
        `x`, the samples themselves, is what an image classifier (--labels CLASSIFIER.pt) reads."""
        if getattr(self.labeller, "needs_images", False):
            return None if x is None else self.labeller.predict(x)
        if self.labeller is not None:
            return self.labeller.predict(feats.features)
        if self.centres is None:
            return None if feats.probs is None else np.asarray(feats.probs).argmax(1)
        return nearest(np.asarray(feats.features, dtype=np.float64), self.centres)

    def exemplars(self, images: Any, per: int = EXEMPLARS) -> Tensor | None:
        """(classes · per, C, H, W): the first `per` reference images of each class (cluster), class 0
        first, blank (-1) where a class holds fewer, so a grid of `per` a line shows one class a line
        and a reader can see what "cluster 3" is. None without images (2-D points, feature files)."""
        if self.reference_index is None or not hasattr(images, "dim") or images.dim() != 4:
            return None
        index = torch.as_tensor(self.reference_index[: len(images)])
        blank = -torch.ones(per, *images.shape[1:], dtype=images.dtype)
        lines = []
        for k in range(len(self.names)):
            mine = images[: len(index)][index == k][:per]
            lines.append(torch.cat([mine, blank[len(mine) :]]))
        return torch.cat(lines)

    def add(self, row: str, feats: FeatureOutput, x: Any = None) -> None:
        labels = self.labels(feats, x)
        if labels is not None:
            self.rows[row] = shares(labels, len(self.names))

    def matched_fid(
        self,
        row: str,
        feats: FeatureOutput,
        real_stats: tuple[np.ndarray, np.ndarray],
        seed: int = 0,
        x: Any = None,
    ) -> float | None:
        """FID after the row's samples are resampled to the reference's class (cluster) histogram
        (metrics.fid.histogram_matched): what is left of a gain once the class mix is matched."""
        labels = self.labels(feats, x)
        if labels is None:
            return None
        idx = histogram_matched(labels, self.reference, seed=seed)
        return fid_to(np.asarray(feats.features, dtype=np.float64)[idx], real_stats)

    def to_json(self) -> dict[str, Any]:
        """What evaluation.json keeps under 'per_class'."""
        worst = {}
        for row, s in self.rows.items():
            c, ratio = worst_class(s, self.reference)
            if np.isfinite(ratio):  # (no class holds 1% of the reference: nothing to name)
                worst[row] = {"class": self.names[c], "ratio": round(ratio, 4)}
        return {
            "by": self.by,
            "classes": list(self.names),
            "reference": [round(float(v), 4) for v in self.reference],
            "rows": {row: [round(float(v), 4) for v in s] for row, s in self.rows.items()},
            "worst": worst,
        }


def fid_to(fake: np.ndarray, real_stats: tuple[np.ndarray, np.ndarray]) -> float:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="feature_stats:")
        return frechet_distance(*real_stats, *feature_stats(fake))  # the reference first: its sqrt is kept


def coverage_notes(table: dict[str, Any]) -> list[str]:
    """One line naming the class most rows serve worst, when any row serves a class at under half of
    its share in the reference."""
    worst = {r: w for r, w in table["worst"].items() if not r.startswith("real:") and w["ratio"] < 0.5}
    if not worst:
        return []
    counts: dict[str, int] = {}
    for w in worst.values():
        counts[w["class"]] = counts.get(w["class"], 0) + 1
    top = max(counts, key=counts.get)
    rows = [r for r, w in worst.items() if w["class"] == top]
    return [
        f"{top!r} ({table['by']}) is the class served worst: {len(rows)} of {len(table['worst']) - 1} rows "
        f"draw it at under half its share of the reference ({', '.join(rows[:4])}{', ...' if len(rows) > 4 else ''})"
    ]
