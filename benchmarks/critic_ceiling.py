"""How far can any reweighting of the free Fashion-MNIST ensemble's proposals go on Inception FID? A
diagnostic, not a fusion: the critic here is fitted on Inception features themselves, the features
the goal is confirmed on, so it bounds what a better critic of the same proposals could buy.

    python benchmarks/critic_ceiling.py [--run RUN] [--per-member 3000] [--cache DIR]

The run is the quality benchmark's 3-member ensemble (trained by `benchmarks/quality.py`). Proposals
are the first `--per-member` of each member's share of `auto`'s own pool (fusion/choice.py); every
candidate is scored on the choice quarter of the calibration half (n = 1250), never the evaluation
half. Critics:

* `features (default)`: the default feature judge on the domain classifier's features;
* `inception, pca D, C c`: a logistic regression on standardised, PCA-reduced Inception pool3
  features, real (2,500 training images) against the proposals, cross-fitted in two folds so that no
  proposal is scored by a critic that saw it; MH chains start from 500 more training images;
* `features + inception`: both critics at once, their log-ratios summed or averaged.

Inception features are cached under --cache (they are minutes per thousand images on a CPU without
bfloat16 kernels). Writes docs/results/critic_ceiling.json and prints the table.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from critic_features import RUN, Pool, write_table
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from gensemble.data import load_dataset
from gensemble.evaluation.features import as_saved_images
from gensemble.fusion.choose import Candidate, simulate, simulate_mh
from gensemble.fusion.critic import critics_of
from gensemble.metrics import feature_stats, frechet_distance, get_extractor

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "results" / "critic_ceiling.json"
N_FIT, N_START = 2500, 500  # training images the Inception critic is fitted on / MH chains start from
SETTINGS = ((32, 1.0), (128, 1.0), (128, 0.01), (512, 0.01))  # (PCA dimensions, inverse L2 strength)
BOTH = (512, 0.01)  # the Inception critic combined with the default


def inception_critic(real: np.ndarray, fake: np.ndarray, start: np.ndarray, dim: int, c: float):
    """Cross-fitted logits of a real-vs-fake logistic regression: (one per fake, mean over folds per
    start image). The logit of a balanced classifier estimates log p_data / p_proposals."""
    fold = np.random.default_rng(0).integers(0, 2, len(fake))
    out, out_start = np.zeros(len(fake)), np.zeros(len(start))
    for f in (0, 1):
        x = np.concatenate([real, fake[fold == f]])
        y = np.r_[np.ones(len(real)), np.zeros(int((fold == f).sum()))]
        project = make_pipeline(StandardScaler(), PCA(dim, random_state=0)).fit(x).transform
        clf = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(project(x), y)
        out[fold != f] = clf.decision_function(project(fake[fold != f]))
        out_start += clf.decision_function(project(start)) / 2
    return out, out_start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=RUN)
    ap.add_argument("--per-member", type=int, default=3000, help="proposals per member (of the pool's)")
    ap.add_argument("--cache", type=Path, default=ROOT / "runs" / "critic-ceiling-cache")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    # n = 1250 < 2048 dims: every Inception FID here is biased upwards alike (said in docs/fusion.md).
    warnings.filterwarnings("ignore", message="feature_stats: ")
    started = time.perf_counter()
    pl = Pool(args.run)
    k, m = min(args.per_member, pl.size), len(pl.names)
    inception = get_extractor("inception", "cpu")
    args.cache.mkdir(parents=True, exist_ok=True)

    def features(name: str, images) -> np.ndarray:
        path = args.cache / f"inc-{name}.npy"
        if not path.exists():
            x = images()
            parts = [
                inception.extract(as_saved_images(x[i : i + 250])).features for i in range(0, len(x), 250)
            ]
            np.save(path, np.concatenate(parts).astype(np.float32))
        return np.load(path)

    ref = feature_stats(features("choose", lambda: pl.ctx.choose_real[: pl.n]).astype(np.float64))
    train = features("train", lambda: load_dataset(pl.ens.cfg.data, "train").x[: N_FIT + N_START])
    inc = np.concatenate(
        [features(f"pool{i}-{k}", lambda i=i: pl.images(np.arange(k) + i * pl.size)) for i in range(m)]
    )
    rows = [np.arange(k)[:, None] + i * k for i in range(m)]  # rows of `inc`
    pool_row = np.concatenate([np.arange(k) + i * pl.size for i in range(m)])  # -> rows of pl.feats
    table: dict[str, dict] = {}

    def add(label: str, kept: np.ndarray) -> None:
        r = np.asarray(kept).reshape(-1).astype(int)
        table[label] = {
            "fid": round(pl.crit(pl.feats[pool_row[r]]), 3),
            "inception_fid": round(
                float(frechet_distance(*feature_stats(inc[r].astype(np.float64)), *ref)), 2
            ),
            "kept": int(len(r)),
        }
        print(
            f"{label:52s} classifier FID {table[label]['fid']:7.3f}  Inception FID {table[label]['inception_fid']:7.2f}",
            flush=True,
        )

    def fusions(tag: str, ratios: list[np.ndarray], start: np.ndarray) -> None:
        # One MH chain per start, so n starts: the N_START start images' ratios are reused in turn.
        start = np.resize(start, pl.n)
        add(f"MH (chains of 40), {tag}", simulate_mh(rows, ratios, start, 40, pl.p.fit_seed + 440))
        for g in (80.0, 90.0):
            kept = simulate(Candidate("drs", (1 / m,) * m, g, "c"), rows, {"c": ratios}, pl.n, pl.p, 3)
            if kept is not None:  # None: the pool ran out before n samples were kept
                add(f"DRS (γ at p{g:.0f}), {tag}", kept[0])

    best = int(np.argmin([pl.crit(pl.feats[pool_row[r[: pl.n, 0]]]) for r in rows]))
    best_label = f"best member ({pl.names[best]})"
    add(best_label, rows[best][: pl.n, 0])
    add("uniform mixture", simulate(Candidate("u", (1 / m,) * m, None), rows, {}, pl.n, pl.p, 1)[0])
    critic = critics_of(pl.ctx, "critic_ceiling")["features"]
    ratios = [pl.pool.ratios(n, g, pl.size, critic)[:k] for n, g in pl.items()]
    start = critic.log_ratio(pl.ctx.calib_real[: pl.n]).double().numpy()
    fusions("features (default)", ratios, start)
    for dim, c in SETTINGS:
        logits, inc_start = inception_critic(train[:N_FIT], inc, train[N_FIT:], dim, c)
        fusions(f"inception, pca {dim}, C {c}", [logits[i * k : (i + 1) * k] for i in range(m)], inc_start)
    # Both critics at once (a product of experts: their log-ratios added, or averaged): can one
    # reweighting improve both FIDs by 15%? The default's MH starts are its own real images'.
    logits, inc_start = inception_critic(train[:N_FIT], inc, train[N_FIT:], *BOTH)
    for w, name in ((1.0, "sum"), (0.5, "mean")):
        both = [w * (r + logits[i * k : (i + 1) * k]) for i, r in enumerate(ratios)]
        fusions(
            f"features + inception (pca {BOTH[0]}), log-ratios' {name}",
            both,
            w * (start + np.resize(inc_start, pl.n)),
        )
    write_table(OUT, args.run, pl.n, table, best_label, started, proposals_per_member=k)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
