"""Can any fusion of the free Fashion-MNIST ensemble's members cover every cluster (goal free_coverage)?
A bound, not a fusion: it counts where each member's samples fall among the 10 k-means clusters of
the evaluation half's EfficientNet-Lite0 features (the clusters the goal grades on), and how many
proposals a mixture, DRS or MH chain would have to draw per kept sample to keep half of each
cluster's share, even with a critic that knew the clusters perfectly.

    python benchmarks/cluster_bound.py [--runs RUN ...] [--per-member 3000] [--n 2000]

The runs are the quality benchmark's 3-member ensembles (`benchmarks/quality.py`, one per training
seed). Every fusion that keeps or moves between proposals draws each kept sample from the members'
proposals, so a cluster the proposals hit c times in P draws needs P·k/c proposals to keep k there;
a cluster no proposal hit cannot be filled at all. Writes docs/results/cluster_bound.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality_jobs import image_scorer  # noqa: E402

from gensemble.evaluation.coverage import Coverage  # noqa: E402
from gensemble.progress import set_quiet  # noqa: E402
from gensemble.run import load_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "bench-quality-full" / "fashion" / "fashion"
OUT = ROOT / "docs" / "results" / "cluster_bound.json"
SHARE = 0.5  # the goal: every cluster at half its share of the reference or more


def proposals_needed(pooled: np.ndarray, reference: np.ndarray, n: int, share: float = SHARE) -> np.ndarray:
    """Per cluster, the proposals per kept sample a row of n needs to keep `share` of the cluster's
    reference share, when the proposals fall in it at the frequency `pooled` shows (inf: never hit)."""
    pooled = np.asarray(pooled, dtype=np.float64)
    wanted = share * np.asarray(reference, dtype=np.float64) * n
    with np.errstate(divide="ignore"):
        return np.where(pooled > 0, wanted * pooled.sum() / np.maximum(pooled, 1) / n, np.inf)


def cluster_counts(run: Path, per_member: int, n: int, seed: int) -> dict:
    """Each member's proposals per cluster, and the proposals per kept sample the goal would need."""
    _, ev = image_scorer("fashion-mnist", n, "effnet-lite0", ("fid",))
    assert ev.reference is not None
    view = Coverage.prepare(ev.reference, "fashion-mnist", "effnet-lite0", use_probs=False)
    assert view is not None and view.centres is not None
    k = len(view.names)
    members = {}
    for i, (name, model) in enumerate(load_run(run).generators().items()):
        x = model.sample(per_member, torch.Generator().manual_seed(seed + i)).cpu()
        members[name] = np.bincount(view.labels(ev.featurizer(x, name, None)), minlength=k)[:k]
    pooled = np.sum(list(members.values()), axis=0)
    per_kept = proposals_needed(pooled, view.reference, n)
    return {
        "run": str(run.relative_to(ROOT) if run.is_relative_to(ROOT) else run),
        "reference_share": [round(float(v), 4) for v in view.reference],
        "members": {m: [int(v) for v in c] for m, c in members.items()},
        "pooled": [int(v) for v in pooled],
        "ratio_pooled": [round(float(v), 3) for v in pooled / pooled.sum() / view.reference],
        "kept_needed": [int(np.ceil(v)) for v in SHARE * view.reference * n],
        # null: some cluster no proposal hit, so no number of proposals would do
        "proposals_per_kept_needed": float(per_kept.max()) if np.isfinite(per_kept.max()) else None,
        "hardest_cluster": int(per_kept.argmax()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="*", default=[str(RUNS / "fashion-mnist-s1-ensemble")])
    ap.add_argument("--per-member", type=int, default=3000)
    ap.add_argument("--n", type=int, default=2000, help="samples a graded row holds (the goal's n)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    set_quiet(True)
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    rows = [cluster_counts(Path(r), args.per_member, args.n, args.seed) for r in args.runs]
    print("| run | proposals per cluster (pooled) | ratio to the reference | proposals per kept needed |")
    print("|---|---|---|---|")
    for r in rows:
        need = r["proposals_per_kept_needed"]
        need_text = "none would do" if need is None else f"{need:.0f}"
        cells = [
            Path(r["run"]).name,
            r["pooled"],
            r["ratio_pooled"],
            f"{need_text} (cluster {r['hardest_cluster']})",
        ]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    body = {
        "what": __doc__.split("\n\n")[0],
        "features": "effnet-lite0 (10 k-means clusters of the evaluation half, n reference images)",
        "per_member": args.per_member,
        "n": args.n,
        "seed": args.seed,
        "rows": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }
    Path(args.out).write_text(json.dumps(body, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
