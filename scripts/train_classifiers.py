"""Train the domain classifiers gensemble ships, or check that the shipped ones reproduce.

    python scripts/train_classifiers.py [DATASET ...]          # rewrite src/gensemble/metrics/weights/
    python scripts/train_classifiers.py --check [DATASET ...]  # retrain and compare with what ships

Each is trained with its recipe (gensemble.metrics.classifier.RECIPES), seed 0, one intra-op thread.
The folder holds weights.safetensors and meta.json: the data and its fingerprint, the seed, the
recipe, the held-out accuracy, the torch version, the CPU kernels (torch's cpu capability) and the
weights' SHA-256. --check retrains and compares: on the torch version and CPU capability the
shipped file records, the SHA-256 must be identical; elsewhere float kernels differ in their last
bits and training amplifies that, so the check is then the held-out accuracy, within 0.01 of the
shipped one. Exit code 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys

from gensemble.metrics.classifier import RECIPES, _train
from gensemble.metrics.classifier_store import SHIPPED_DIR, load_classifier, save_classifier

SHIPPED = ("fashion-mnist", "mnist-5k", "digits")
ACCURACY_TOLERANCE = 0.01


def check(dataset: str) -> bool:
    _, shipped = load_classifier(SHIPPED_DIR / dataset)
    model, acc, meta = _train(dataset, None, seed=0)
    tmp = SHIPPED_DIR.parent / f".check-{dataset}"
    save_classifier(model, meta, tmp)
    fresh = json.loads((tmp / "meta.json").read_text())
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    same_build = (shipped.get("torch"), shipped.get("cpu_capability")) == (
        meta["torch"],
        meta["cpu_capability"],
    )
    if same_build:
        ok = fresh["weights_sha256"] == shipped["weights_sha256"]
        how = (
            f"SHA-256 {'identical' if ok else 'differs'} on torch {meta['torch']} / {meta['cpu_capability']}"
        )
    else:
        ok = abs(acc - shipped["heldout_accuracy"]) <= ACCURACY_TOLERANCE
        how = (
            f"another build ({meta['torch']} / {meta['cpu_capability']} vs {shipped.get('torch')} / "
            f"{shipped.get('cpu_capability')}): held-out accuracy {acc:.4f} vs {shipped['heldout_accuracy']:.4f}"
        )
    print(f"{dataset}: {'ok' if ok else 'FAILED'}: {how}")
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("datasets", nargs="*", default=list(SHIPPED), help=f"of {', '.join(RECIPES)}")
    ap.add_argument("--check", action="store_true", help="retrain and compare with the shipped files")
    args = ap.parse_args(argv)
    if args.check:
        return 0 if all([check(d) for d in args.datasets]) else 1
    for dataset in args.datasets:
        model, acc, meta = _train(dataset, None, seed=0)
        save_classifier(model, meta, SHIPPED_DIR / dataset)
        print(f"{dataset}: held-out accuracy {acc:.4f}, {meta['train_seconds']} s -> {SHIPPED_DIR / dataset}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
