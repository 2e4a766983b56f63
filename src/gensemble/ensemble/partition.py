"""partition: members that specialise by construction. The training data is split into as many
k-means clusters as there are members, on a feature space (the dataset's domain classifier where it
has one, else 16×16 pixels), and member i trains only on cluster i. The run's mixture weights are
the clusters' shares of the data, so sampling the run draws each specialist as often as its part
of the data occurs (the fusion `shares` does the same under selection).

In the spirit of partition-guided and self-conditioned GANs (Armandpour et al. 2021; Liu et al.,
CVPR 2020): each generator faces a simpler, narrower distribution, and together they cover every
cluster by construction. Unlike those, members stay independent (no shared trunk), so they train
stacked like the independent scheme's.

The space that draws the clusters steers the members; an evaluation that grades this scheme should
use another one (`gensemble evaluate --features effnet-lite0`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from gensemble.config import check_ranges
from gensemble.ensemble.base import SCHEMES, Executor, MemberTask, Scheme
from gensemble.ensemble.state import SchemeState
from gensemble.errors import ConfigError
from gensemble.metrics.clusters import kmeans, nearest
from gensemble.metrics.extractor import FEATURES
from gensemble.metrics.features import feature_map, feature_source, features_of

if TYPE_CHECKING:
    from torch import Tensor

    from gensemble.data import Dataset
    from gensemble.ensemble.state import Ensemble
    from gensemble.training.loop import StepHook


@dataclass(frozen=True)
class PartitionConfig:
    # The space the clusters are drawn on: "auto" (the domain classifier where the dataset has one,
    # 16×16 pixels for other images, the coordinates of 2-D data), or any `gensemble list features` name.
    features: str = "auto"
    fit_images: int = 10_000  # images (a seeded subset) the k-means centres are fitted on
    seed: int = 0  # seed of the subset and of k-means++
    min_share: float = 0.02  # a cluster with less of the data than this is refused (a member would starve)

    def validate(self, path: str = "") -> None:
        check_ranges(self, path, fit_images=(10, 10**7), min_share=(0.0, 0.5))
        if self.features in ("auto", "raw") or self.features.startswith("modes:"):
            return
        try:
            FEATURES.get(self.features)
        except Exception:  # an unknown name: the registry's own error is not one line for a config key
            raise ConfigError(
                f"config key '{path}.features': unknown feature space {self.features!r}; "
                "use auto or a name from 'gensemble list features'"
            ) from None


@dataclass
class PartitionState(SchemeState):
    data_weights: dict[str, torch.Tensor] = field(default_factory=dict)  # 1 on a member's cluster, else 0
    centres: torch.Tensor | None = None  # (members, D) k-means centres on the partition's space


def partition_space(features: str, dataset: str, x: Tensor) -> str:
    """The feature space `features` names for this data ("auto" resolved)."""
    if features != "auto":
        return features
    source = feature_source(dataset)
    if source.startswith("classifier:"):
        return source
    # (Not a 2-D mixture's mode-kernel features: every mode is as far from every other there, so
    # k-means on them lumps most modes into one cluster; the coordinates split the plane fairly.)
    return "pixels" if x.dim() == 4 else "raw"


def cluster_features(space: str, x: Tensor) -> np.ndarray:
    return features_of(feature_map(space), x.float().cpu()).double().numpy()


def assign(ens: Ensemble, x: Tensor) -> np.ndarray:
    """Which member's cluster each of x falls in (the partition's centres, its space): how held-out
    images are matched to the specialist trained on their part of the data."""
    centres = ens.state.centres
    if centres is None:
        raise ConfigError("this run's partition has not been drawn yet; train it first")
    p = ens.cfg.scheme.params
    space = partition_space(p.features, ens.cfg.data.name, x)
    return nearest(cluster_features(space, x), centres.double().numpy())


@SCHEMES.register(
    "partition",
    "members specialise: each trains on one k-means cluster of the data; mixed by the clusters' shares",
)
class Partition(Scheme):
    config = PartitionConfig
    runs_as_tasks = True
    state_type = PartitionState

    def build(self, ens: Ensemble) -> None:
        # Uniform until the clusters are drawn (the first call of `train`, which sees the data).
        ens.state.mixture_weights = torch.full((len(ens.members),), 1.0 / len(ens.members))

    def draw(self, ens: Ensemble, data: Dataset) -> None:
        """Fit the centres on a seeded subset, assign every training image, keep both in the state."""
        p, k = self.params, len(ens.members)
        space = partition_space(p.features, ens.cfg.data.name, data.x)
        rng = np.random.default_rng(p.seed)
        subset = rng.permutation(len(data))[: p.fit_images]
        centres = kmeans(cluster_features(space, data.x[subset]), k, p.seed)
        labels = nearest(cluster_features(space, data.x), centres)
        counts = np.bincount(labels, minlength=k)
        if counts.min() < p.min_share * len(data):
            raise ConfigError(
                f"scheme 'partition': one of the {k} clusters on {space} holds {counts.min()} of {len(data)} "
                "images; use fewer members or set scheme.features to another space"
            )
        ens.state.centres = torch.from_numpy(centres).float()
        ens.state.data_weights = {
            m.name: torch.from_numpy((labels == i).astype(np.float32)) for i, m in enumerate(ens.members)
        }
        ens.state.mixture_weights = torch.from_numpy(counts / counts.sum()).float()

    def train(self, ens: Ensemble, data: Dataset, hooks: StepHook, executor: Executor) -> None:
        if not ens.state.data_weights:  # drawn once; a resumed run reads it from the checkpoint
            self.draw(ens, data)
        tasks = [
            MemberTask(m, ens.cfg.train.steps, ens.state.data_weights[m.name].to(data.x.device))
            for m in ens.members
        ]
        executor.run(ens, tasks, data, hooks)
