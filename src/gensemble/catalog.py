"""What is registered: `gensemble list datasets|models|losses|schemes|fusions|metrics|features|backends`."""

from __future__ import annotations

# The kinds `gensemble list` knows: the one source of its choices.
CATALOG = ("datasets", "models", "losses", "schemes", "fusions", "metrics", "features", "backends")


def list_components(what: str) -> list[tuple[str, str]]:
    """(name, one-line description) for every registered component of a kind."""
    if what == "datasets":
        from gensemble.data import DATASETS, images, load_dataset, toy  # noqa: F401

        return DATASETS.describe()
    if what == "models":
        from gensemble.models import MODELS, model_names

        model_names()
        return MODELS.describe()
    if what == "losses":
        from gensemble.losses import GAN_LOSSES

        return GAN_LOSSES.describe() + [("elbo", "VAE: negative β-ELBO with BCE or MSE reconstruction")]
    if what == "schemes":
        from gensemble.ensemble import scheme_names

        return scheme_names()
    if what == "fusions":
        from gensemble.fusion import fusion_names

        return fusion_names()
    if what == "metrics":
        from gensemble.metrics import METRICS

        return METRICS.describe()
    if what == "features":
        from gensemble.metrics import FEATURES

        return FEATURES.describe()
    if what == "backends":
        from gensemble.execution import EXECUTORS

        return EXECUTORS.describe()
    raise ValueError(what)
