"""What is registered: `gensemble list datasets|models|losses|schemes|fusions|metrics|features|backends`."""

from __future__ import annotations

from gensemble.data import DATASETS, images, load_dataset, toy  # noqa: F401
from gensemble.ensemble import scheme_names
from gensemble.execution import EXECUTORS
from gensemble.fusion import fusion_names
from gensemble.losses import GAN_LOSSES
from gensemble.metrics import FEATURES, METRICS
from gensemble.models import MODELS, model_names

# The kinds `gensemble list` knows: the one source of its choices.
CATALOG = ("datasets", "models", "losses", "schemes", "fusions", "metrics", "features", "backends")


def list_components(what: str) -> list[tuple[str, str]]:
    """(name, one-line description) for every registered component of a kind."""
    if what == "datasets":
        return DATASETS.describe()
    if what == "models":
        model_names()
        return MODELS.describe()
    if what == "losses":
        return GAN_LOSSES.describe() + [("elbo", "VAE: negative β-ELBO with BCE or MSE reconstruction")]
    if what == "schemes":
        return scheme_names()
    if what == "fusions":
        return fusion_names()
    if what == "metrics":
        return METRICS.describe()
    if what == "features":
        return FEATURES.describe()
    if what == "backends":
        return EXECUTORS.describe()
    raise ValueError(what)
