"""Where domain classifiers come from: shipped with the package, or trained into a cache on request.

The classifiers of fashion-mnist, mnist-5k (the stacked-MNIST labeller) and digits ship inside the
package (gensemble/metrics/weights/<dataset>/: weights.safetensors + meta.json), the way
torch-fidelity and clean-fid pin their Inception weights: a fixed feature network, so FIDs agree
across machines and no first run spends minutes training one. meta.json records the data, the
seed, the recipe, the held-out accuracy, the torch version and the SHA-256 of the weights;
`scripts/train_classifiers.py` writes them and checks that they reproduce. Loading checks the
hash, and a mismatch is a one-line error. Training happens only when asked for (`epochs=`), or
for a dataset that ships none, into $GENSEMBLE_CACHE/classifiers/.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save

from gensemble.checkpoint import atomic_write_bytes, atomic_write_text
from gensemble.errors import GensembleError
from gensemble.metrics.classifier import (
    FORMAT_VERSION,
    META_FILE,
    RECIPES,
    WEIGHTS_FILE,
    ClassifierConfig,
    DomainClassifier,
    TrainRecipe,
    _load_labelled,
    _train,
    data_fingerprint,
    per_channel_source,
)

SHIPPED_DIR = Path(__file__).parent / "weights"


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
    atomic_write_text(folder / META_FILE, json.dumps(meta, indent=2) + "\n")


def load_classifier(folder: str | Path) -> tuple[DomainClassifier, dict]:
    """Read a classifier folder (json + safetensors only, never pickle); raise GensembleError if it is damaged."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / META_FILE).read_text())
        raw = (folder / WEIGHTS_FILE).read_bytes()
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format version {meta.get('format_version')} != {FORMAT_VERSION}")
        if hashlib.sha256(raw).hexdigest() != meta.get("weights_sha256"):
            raise ValueError("weights do not match the SHA-256 in meta.json (truncated or overwritten)")
        model = DomainClassifier(ClassifierConfig(**meta["config"]))
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
        raise GensembleError(
            f"classifier {str(folder)!r} is unreadable: {str(exc).splitlines()[0]}"
        ) from None
    return model.eval(), meta


def shipped_folder(dataset: str) -> Path | None:
    """The package's own classifier of `dataset` (per-channel datasets: their source's), if it ships one."""
    folder = SHIPPED_DIR / (per_channel_source(dataset) or dataset)
    return folder if (folder / META_FILE).is_file() else None


def shipped_fitting(channels: int, size: int) -> list[tuple[str, float]]:
    """(dataset, held-out accuracy) of every shipped classifier whose input is `channels` × `size`²:
    a domain classifier an unlabelled folder of such images could be evaluated with."""
    out = []
    for meta_path in sorted(SHIPPED_DIR.glob(f"*/{META_FILE}")):
        try:
            meta = json.loads(meta_path.read_text())
            cfg = meta["config"]
            if cfg["in_channels"] == channels and cfg["image_size"] == size:
                out.append((str(meta["dataset"]), float(meta.get("heldout_accuracy", float("nan")))))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a damaged file is refused where it is loaded, not here
    return out


def load_shipped(dataset: str) -> DomainClassifier:
    folder = shipped_folder(dataset)
    if folder is None:
        raise GensembleError(f"gensemble ships no classifier of {dataset!r}")
    try:
        return load_classifier(folder)[0]
    except GensembleError as exc:
        raise GensembleError(
            f"{exc}; the shipped file is damaged: reinstall gensemble, or rebuild it with "
            "'python scripts/train_classifiers.py'"
        ) from None


def load_or_train_classifier(
    dataset_name: str, cache_dir: str | Path | None = None, epochs: int | None = None
) -> DomainClassifier:
    """The domain classifier of a dataset: the shipped one, unless `epochs` asks for a trained one
    (cached, and reused while the data and recipe match) or the dataset ships none."""
    dataset = per_channel_source(dataset_name) or dataset_name
    if epochs is None and shipped_folder(dataset) is not None:
        return load_shipped(dataset)
    folder = _cache_folder(Path(cache_dir).expanduser() if cache_dir else default_cache_dir(), dataset)
    if (folder / META_FILE).exists() or (folder / WEIGHTS_FILE).exists():
        try:
            model, meta = load_classifier(folder)
            train, _ = _load_labelled(dataset)
            if meta.get("data_fingerprint") != data_fingerprint(train.x, train.y):
                raise GensembleError(
                    f"classifier cache {str(folder)!r} was trained on different {dataset} data"
                )
            # A cache of another width is another labeller (the recipe changed): retrain.
            same_net = meta.get("recipe", {}).get("width", 32) == RECIPES.get(dataset, TrainRecipe()).width
            if (epochs is None and same_net) or (
                epochs is not None and meta.get("recipe", {}).get("epochs") == epochs
            ):
                return model
        except GensembleError as exc:
            warnings.warn(f"{exc}; retraining", stacklevel=2)
    model, _, meta = _train(dataset, epochs, seed=0)
    save_classifier(model, meta, folder)
    return model
