"""Labels you bring: `evaluate --reference FOLDER --labels FILE.csv` names the class of each
reference image, so per-class coverage and class-matched FID use your classes instead of k-means
clusters of features (which, on colour data, follow the background rather than the content).
`evaluate --labels CLASSIFIER.pt` brings your own classifier instead, as TorchScript (with any
reference): it gives the class of every reference image and of every sample, from the images.

The CSV has one row per image: its path relative to the folder (or its file name, where that is
unique in the folder), a comma, its class; a first row `file,label` is a header. Generated samples
get classes from a multinomial logistic regression fitted on the reference's features (the grading
space's) and your labels; its accuracy, cross-validated on the reference, is stated beside every
figure it labels, since a per-class table is only as good as the labeller behind it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gensemble.errors import ConfigError

MAX_LABEL_BYTES = 50_000_000  # a labels file larger than this is not a labels file
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".jit", ".torchscript")
MAX_CLASSIFIER_BYTES = 2_000_000_000
HEADERS = {"file", "filename", "path", "image"}


@dataclass(frozen=True)
class ReferenceLabels:
    """The class index of every reference image, in the order the folder is read, and the names."""

    source: str  # the CSV, as given
    index: np.ndarray  # (N,) class per reference image
    names: list[str]


def read_labels(csv_path: str | Path, root: str | Path, paths: list[Path]) -> ReferenceLabels:
    """Labels of the folder `root`'s images `paths` from CSV rows `file,label`; a one-line error for
    a missing, unreadable or malformed file, a row naming no image, or an image without a label."""
    csv_path, root = Path(csv_path), Path(root)
    try:
        if csv_path.stat().st_size > MAX_LABEL_BYTES:
            raise ConfigError(f"--labels {str(csv_path)!r} is over 50 MB; give a CSV of file,label rows")
        text = csv_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"--labels {str(csv_path)!r} cannot be read ({type(exc).__name__}); give a CSV of file,label rows"
        ) from None
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if rows and rows[0][0].strip().lower() in HEADERS:
        rows = rows[1:]
    bad = next((i for i, r in enumerate(rows) if len(r) != 2 or not r[0].strip() or not r[1].strip()), None)
    if bad is not None or not rows:
        where = f"row {bad + 1} ({','.join(rows[bad])[:80]!r})" if bad is not None else "no rows"
        raise ConfigError(
            f"--labels {str(csv_path)!r}: {where} is not 'file,label'; write one 'file,label' row per image"
        )
    relative = {p.relative_to(root).as_posix(): i for i, p in enumerate(paths)}
    by_name: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        by_name.setdefault(p.name, []).append(i)
    labels: dict[int, str] = {}
    for file, label in ((r[0].strip(), r[1].strip()) for r in rows):
        i = relative.get(file.removeprefix("./"))
        if i is None:
            hits = by_name.get(Path(file).name, [])
            if len(hits) != 1:
                why = (
                    "matches no image"
                    if not hits
                    else f"matches {len(hits)} images (give its path in the folder)"
                )
                raise ConfigError(f"--labels {str(csv_path)!r}: {file!r} {why} in {str(root)!r}")
            i = hits[0]
        labels[i] = label
    missing = [paths[i].relative_to(root).as_posix() for i in range(len(paths)) if i not in labels]
    if missing:
        raise ConfigError(
            f"--labels {str(csv_path)!r} gives no class for {len(missing)} of the {len(paths)} reference images "
            f"(first: {missing[0]!r}); label every image of the folder"
        )
    names = sorted(set(labels.values()))
    if len(names) < 2:
        raise ConfigError(f"--labels {str(csv_path)!r} names one class only; coverage needs at least two")
    lookup = {n: k for k, n in enumerate(names)}
    return ReferenceLabels(str(csv_path), np.array([lookup[labels[i]] for i in range(len(paths))]), names)


class Labeller:
    """Classes for generated samples: a multinomial logistic regression on standardised features,
    fitted on the reference's features and labels; `accuracy` is its 5-fold cross-validated accuracy
    on the reference."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, seed: int = 0) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_score
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        def model():
            return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))

        x = np.asarray(features, dtype=np.float64)
        folds = min(5, int(np.bincount(labels).min()))
        self.accuracy = (
            float(
                cross_val_score(
                    model(), x, labels, cv=StratifiedKFold(folds, shuffle=True, random_state=seed)
                ).mean()
            )
            if folds >= 2
            else float("nan")
        )
        self.model = model().fit(x, labels)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.model.predict(np.asarray(features, dtype=np.float64))


def is_classifier_file(path: str | Path) -> bool:
    """Whether `--labels` names a TorchScript classifier (by its suffix) rather than a CSV."""
    return Path(path).suffix.lower() in TORCHSCRIPT_SUFFIXES


class ImageClassifier:
    """Your TorchScript classifier: images (N, C, H, W) in [-1, 1], at the run's size and channels,
    to class logits (N, K). Loading TorchScript runs the code it holds: bring only files you trust
    (a run folder's checkpoints, by contrast, are safetensors and JSON and never run code)."""

    needs_images = True

    def __init__(self, path: str | Path, shape: tuple[int, ...]) -> None:
        import torch

        path = Path(path)
        try:
            if path.stat().st_size > MAX_CLASSIFIER_BYTES:
                raise ConfigError(f"--labels {str(path)!r} is over 2 GB; give a TorchScript classifier")
            self.net = torch.jit.load(str(path), map_location="cpu").eval()
            with torch.no_grad():
                out = self.net(torch.zeros(2, *shape))
        except ConfigError:
            raise
        except Exception as exc:  # not TorchScript, or a network that cannot take the run's images
            raise ConfigError(
                f"--labels {str(path)!r} is not a TorchScript classifier of {'×'.join(map(str, shape))} images "
                f"({type(exc).__name__}); save one with torch.jit.save(torch.jit.script(model), PATH)"
            ) from None
        if not (isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[0] == 2 and out.shape[1] >= 2):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ConfigError(
                f"--labels {str(path)!r} returns {got} for 2 images; a classifier must return logits (N, classes ≥ 2)"
            )
        self.source, self.k = str(path), int(out.shape[1])

    def predict(self, x) -> np.ndarray:
        """The class of every image (argmax of the logits), in batches, without gradients."""
        import torch

        with torch.no_grad():
            return torch.cat(
                [self.net(x[i : i + 500].float()).argmax(1) for i in range(0, len(x), 500)]
            ).numpy()

    def reference_labels(self, x) -> ReferenceLabels:
        """The reference images' classes, named by index."""
        return ReferenceLabels(self.source, self.predict(x), [f"class {k}" for k in range(self.k)])
