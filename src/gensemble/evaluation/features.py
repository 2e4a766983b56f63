"""How samples become the feature arrays the metrics take, and the on-disk cache of real features.

Real features are cached on disk (safetensors + json), keyed by a hash of the images and of the
extractor's weights. `resolve_features` picks the extractor for a run's data: its domain
classifier when it has one, Inception (the standard) for an unlabelled image folder, the raw
points for 2-D toys.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gensemble.checkpoint import atomic_write_bytes, atomic_write_text
from gensemble.data.toy import TOY_MIXTURES, toy_modes
from gensemble.errors import ConfigError, shown
from gensemble.metrics import FeatureOutput, get_extractor
from gensemble.metrics.classifier import PER_CHANNEL_SOURCES, RECIPES, per_channel_source
from gensemble.metrics.classifier_store import default_cache_dir, shipped_fitting
from gensemble.metrics.extractor import FeatureExtractor
from gensemble.metrics.modes import mode_kernel_features
from gensemble.progress import progress

FEATURE_KINDS = (
    "classifier",
    "classifier:DATASET",
    "effnet-lite0",
    "effnet-lite0:SIZE",
    "inception",
    "inception-fp32",
    "pixels",
    "points",
    "modes",
)
# On raw 2-D points FID and KID compare only low-order moments (a mean and a 2x2 covariance cannot
# tell 25 modes from one blob), so toys default to mode coverage and the k-NN manifold metrics; on
# the mode-kernel features (`--features modes`) FID and KID see mass between the modes.
DEFAULT_TOY_METRICS = ("modes", "prdc")
DEFAULT_MODE_FEATURE_METRICS = ("fid", "kid", "modes")
CACHE_FORMAT = 1


# --- features, and the on-disk cache of real ones ---------------------------------------------
def as_saved_images(x: Tensor) -> Tensor:
    """Clamp to [-1, 1] and round to 8-bit levels, as saving a PNG would: real and generated images
    reach the extractor through the same pipeline (real ones come from 8-bit files, then resizing)."""
    x = (x.to(torch.float32).clamp(-1.0, 1.0) + 1.0) * 127.5
    return torch.round(x) / 127.5 - 1.0


def extract_features(ext: FeatureExtractor, images: Tensor, desc: str) -> FeatureOutput:
    """Features (and probs) of images, batch by batch, with a progress bar."""

    bs = ext.default_batch_size
    parts: list[FeatureOutput] = []
    bar = progress(len(images), desc, unit="img")
    try:
        for i in range(0, len(images), bs):
            chunk = images[i : i + bs]
            parts.append(ext.extract(chunk))
            bar.update(len(chunk))
    finally:
        bar.close()
    features = np.concatenate([p.features for p in parts]) if parts else np.zeros((0, ext.dim), np.float32)
    probs = np.concatenate([p.probs for p in parts]) if parts and parts[0].probs is not None else None
    return FeatureOutput(features, probs)


_FINGERPRINTS: weakref.WeakKeyDictionary[FeatureExtractor, str] = weakref.WeakKeyDictionary()


def extractor_fingerprint(ext: FeatureExtractor) -> str:
    """sha256 of what decides an extractor's output: its class, name, settings and network weights."""
    if ext in _FINGERPRINTS:
        return _FINGERPRINTS[ext]
    h = hashlib.sha256()
    # input_size too: effnet-lite0 once meant 96 px, and cached features at 96 px must not answer for 64
    settings = [getattr(ext, a, None) for a in ("quantize", "dtype", "channels_last", "input_size")]
    h.update(f"{type(ext).__qualname__}|{ext.name}|{ext.dim}|{settings}".encode())
    for attr, value in sorted(vars(ext).items()):
        if isinstance(value, torch.nn.Module):
            for key, t in value.state_dict().items():
                h.update(f"{attr}.{key}|{t.dtype}|{tuple(t.shape)}".encode())
                h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    _FINGERPRINTS[ext] = h.hexdigest()
    return _FINGERPRINTS[ext]


def default_feature_cache() -> Path:
    """$GENSEMBLE_CACHE/features, else ~/.cache/gensemble/features."""

    return default_cache_dir() / "features"


def cached_features(
    ext: FeatureExtractor, images: Tensor, label: str, cache_dir: Path, desc: str
) -> FeatureOutput:
    """Features of images (real, or generated with a fixed seed) from the cache, or extracted and cached.

    The key hashes the images themselves (so any change to the dataset, its preprocessing, the split
    or n is a new entry) and the extractor's weights. Files: <label>-<key>.safetensors, then
    <label>-<key>.json naming its sha256; a damaged pair is recomputed with a one-line warning.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load, save

    x = images.detach().cpu().to(torch.float32).contiguous()
    h = hashlib.sha256(f"{CACHE_FORMAT}|{ext.name}|{extractor_fingerprint(ext)}|{tuple(x.shape)}".encode())
    h.update(x.numpy().tobytes())
    key = h.hexdigest()[:24]
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", f"{label}-{ext.name}")[:120] + f"-{key}"
    data_path, meta_path = cache_dir / f"{stem}.safetensors", cache_dir / f"{stem}.json"
    if meta_path.exists() or data_path.exists():
        try:
            meta = json.loads(meta_path.read_text())
            raw = data_path.read_bytes()
            if meta.get("format") != CACHE_FORMAT or hashlib.sha256(raw).hexdigest() != meta.get("sha256"):
                raise ValueError("the file does not match the hash in its .json (truncated or overwritten)")
            arrays = load(raw)
            feats, probs = arrays["features"], arrays.get("probs")
            if feats.shape != (len(x), ext.dim) or (probs is None) == ext.has_probs:
                raise ValueError(f"features of shape {feats.shape} where ({len(x)}, {ext.dim}) was expected")
            return FeatureOutput(feats, probs)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, SafetensorError) as exc:
            warnings.warn(
                f"feature cache {str(data_path)!r} is unreadable ({str(exc).splitlines()[0]}); recomputing",
                stacklevel=2,
            )
    out = extract_features(ext, x, desc)
    arrays = {"features": np.ascontiguousarray(out.features, np.float32)}
    if out.probs is not None:
        arrays["probs"] = np.ascontiguousarray(out.probs, np.float32)
    raw = save(arrays)
    meta = {
        "format": CACHE_FORMAT,
        "label": label,
        "extractor": ext.name,
        "extractor_sha256": extractor_fingerprint(ext),
        "images_shape": list(x.shape),
        "sha256": hashlib.sha256(raw).hexdigest(),
    }
    try:
        # Data first, then the .json naming its hash: a crash between the two reads as a mismatch.
        atomic_write_bytes(data_path, raw)
        atomic_write_text(meta_path, json.dumps(meta, indent=2))
    except OSError as exc:  # a read-only or full cache costs time, not the evaluation
        warnings.warn(
            f"could not write feature cache {str(data_path)!r} ({exc.strerror or exc})", stacklevel=2
        )
    return out


# --- what a run is evaluated with -------------------------------------------------------------
def classifier_datasets() -> list[str]:
    """Datasets with a domain classifier (a training recipe, or another dataset's per channel)."""

    return sorted({*RECIPES, *PER_CHANNEL_SOURCES})


@dataclass
class Featurizer:
    """How samples become the arrays the metrics take: an extractor (None: the raw 2-D points),
    and a classifier for labels (``is``, ``modes``) when the extractor gives no probabilities."""

    name: str
    extractor: FeatureExtractor | None = None
    labeller: FeatureExtractor | None = None
    uniform_kl: bool = False  # KL against uniform labels (the stacked-MNIST protocol)
    centres: np.ndarray | None = None  # "modes": the mixture's centres and σ the kernel sits on
    sigma: float = 0.0

    @property
    def dim(self) -> int:
        if self.centres is not None:
            return len(self.centres)
        return 2 if self.extractor is None else self.extractor.dim

    def __call__(self, x: Tensor, desc: str, cache: tuple[Path, str] | None = None) -> FeatureOutput:
        """Features and probs of samples x; `cache` = (folder, label) to read and keep them on disk,
        keyed by the images' hash."""
        if self.extractor is None:
            points = x.detach().cpu().numpy().astype(np.float64)
            if self.centres is None:
                return FeatureOutput(points)
            return FeatureOutput(mode_kernel_features(points, self.centres, self.sigma), points=points)
        x = as_saved_images(x.cpu())

        def run(ext: FeatureExtractor) -> FeatureOutput:
            if cache is None:
                return extract_features(ext, x, f"{desc}: {ext.name} features")
            return cached_features(ext, x, cache[1], cache[0], f"{desc}: {ext.name} features")

        out = run(self.extractor)
        if out.probs is None and self.labeller is not None:
            out = FeatureOutput(out.features, run(self.labeller).probs)
        return out


def check_features_name(features: str | None) -> None:
    """A one-line error for a feature name that is not classifier, classifier:DATASET, inception or points."""
    if features is None or features in (
        "classifier",
        "effnet-lite0",
        "inception",
        "inception-fp32",
        "pixels",
        "points",
        "modes",
    ):
        return
    for prefix in ("classifier:", "effnet-lite0:"):
        if features.startswith(prefix) and len(features) > len(prefix):
            return
    raise ConfigError(f"unknown feature extractor {shown(features, 40)}; known: {', '.join(FEATURE_KINDS)}")


def resolve_features(
    features: str | None,
    dataset: str,
    is_image: bool,
    metrics: tuple[str, ...],
    explicit: bool,
    device: str = "cpu",
) -> tuple[Featurizer, tuple[str, ...], list[str]]:
    """The featurizer for a run's data, the metrics that apply, and notes on any defaults dropped."""

    check_features_name(features)
    notes: list[str] = []
    if not is_image:
        if features not in (None, "points", "modes"):
            raise ConfigError(
                f"{dataset} is 2-D points: use --features points (the raw coordinates) or modes; "
                f"drop --features {features}"
            )
        if "is" in metrics:
            raise ConfigError("'is' needs class probabilities, and 2-D toy data have no classifier; drop it")
        if features == "modes":
            if dataset not in TOY_MIXTURES:
                raise ConfigError(
                    f"--features modes needs a mixture with known centres ({', '.join(TOY_MIXTURES)})"
                )
            centres, sigma = toy_modes(dataset)
            feat = Featurizer("modes", centres=centres.double().numpy(), sigma=sigma)
            return feat, metrics if explicit else DEFAULT_MODE_FEATURE_METRICS, notes
        return Featurizer("points"), metrics if explicit else DEFAULT_TOY_METRICS, notes
    if features in ("points", "modes"):
        raise ConfigError(f"{features!r} features are for 2-D toy data; {dataset} is images")
    has_clf = dataset in classifier_datasets()
    if features is None and not has_clf:
        # An unlabelled folder: Inception, the field's standard, and say so in the result.
        features = "inception"
        notes.append(
            f"features: inception by default ({dataset} has no domain classifier); ImageNet features, "
            "the standard for FID; --features pixels is faster and cruder"
        )
    if features in (None, "classifier"):
        if not has_clf:
            raise ConfigError(
                f"{dataset!r} has no domain classifier (those with one: {', '.join(classifier_datasets())}); "
                "use --features inception or pixels"
            )
        features = f"classifier:{dataset}"
    if features.startswith("inception") and "is" in metrics:  # before loading 100 MB of weights
        raise ConfigError(
            "'is' needs class probabilities, and inception features have none (the TorchScript file "
            "ends at pool3, no logits); use --features classifier for IS"
        )
    ext = get_extractor(features, device)
    featurizer = Featurizer(features, ext)
    if not ext.has_probs:
        if "is" in metrics:
            raise ConfigError(f"'is' needs class probabilities, and {features} features have none")
        if "modes" in metrics:
            if has_clf:
                featurizer.labeller = get_extractor(f"classifier:{dataset}", device)
            elif explicit:
                raise ConfigError(
                    f"'modes' counts labels predicted by a domain classifier, and {dataset!r} has none; drop it"
                )
            else:
                metrics = tuple(m for m in metrics if m != "modes")
                notes.append(f"modes skipped: {dataset} has no domain classifier")
    labeller = featurizer.labeller or (ext if ext.has_probs else None)
    if labeller is not None:
        source = labeller.name.split(":", 1)[1] if ":" in labeller.name else ""
        featurizer.uniform_kl = per_channel_source(source) is not None
    return featurizer, metrics, notes


# An evaluation whose feature extraction is estimated to take longer than this says so first.
ANNOUNCE_SECONDS = 60.0


def fitting_classifiers(shape: tuple[int, ...]) -> list[str]:
    """A note for every shipped domain classifier whose input is images of `shape` (C, H, W): the
    cheap alternative to Inception for an unlabelled folder of such images."""
    c, h, w = shape
    if h != w:
        return []
    return [
        f"these are {c}×{h}×{w} images, the input of the shipped {name} classifier ({100 * acc:.1f}% held-out "
        f"accuracy on {name}): --features classifier:{name} takes seconds where Inception takes minutes, "
        "and ranks well if the folder resembles that data"
        for name, acc in shipped_fitting(c, h)
    ]


def announce_cost(featurizer: Featurizer, images: int, shape: tuple[int, ...]) -> float:
    """Time 8 images through the extractor and, when `images` would take over a minute, say how
    long (stderr) before starting. Returns the measured images per second."""
    probe = torch.zeros(8, *shape)
    featurizer.extractor.extract(probe[:2])  # the first call builds kernels; it is not typical
    start = time.perf_counter()
    featurizer.extractor.extract(probe)
    rate = 8 / max(time.perf_counter() - start, 1e-6)
    seconds = images / rate
    if seconds > ANNOUNCE_SECONDS:
        print(
            f"[evaluate] {featurizer.name} features for about {images} images at {rate:.1f} img/s here: "
            f"about {seconds / 60:.0f} min; a domain classifier (--features classifier:DATASET, where one "
            "fits) or --features pixels is far faster",
            file=sys.stderr,
            flush=True,
        )
    return rate
