"""`gensemble demo`: the main job end to end — train a heterogeneous ensemble on Fashion-MNIST,
run the tournament, fuse, evaluate on features nothing in the ensemble steers by (and, beside them,
on the domain classifier's, which steer it), and write the HTML report."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TypeVar

from gensemble.checkpoint import atomic_write_text
from gensemble.editing.complete import CompletionConfig
from gensemble.editing.files import complete_heldout
from gensemble.evaluation.evaluate import evaluate_run
from gensemble.report import gather_report, report_run
from gensemble.run import train_run
from gensemble.tournament import score_run

T = TypeVar("T")
# The demo's fusions: `auto` first (it chooses a mixture and a DRS setting on held-out data and is
# what the report leads with), then the plain mixture, a selection and DRS with the judges. Every row
# is graded on EfficientNet-Lite0 as well as the classifier, which costs about 3 s a row here, so
# the demo keeps these four. On the demo's run `weighted` came within 2% of the best member and
# `snapshots` 30% above it on EfficientNet-Lite0 FID; they, MH, vote, stacked and ddls are one
# `gensemble evaluate RUN --fusion NAME` away.
DEMO_FUSIONS = ("auto", "uniform", "best", "rejection")
# The demo's stages after training are held to a quarter of its training time, so `auto` considers
# only candidates that draw at most 10 proposals per sample (MH chains of 10, DRS keeping ≥ 10%).
# On the demo's own run, chosen on the choice quarter: MH with chains of 10 scored 19.5 against 17.8
# for chains of 40 and 25.0 for the best member (docs/fusion.md, "What auto costs").
DEMO_FUSION_SETTINGS = {"auto": {"max_cost": 10, "pool": 4, "critics": ("features",)}}
# --fast: auto compares its candidates on fewer images, from a smaller pool (a smoke test).
FAST_FUSION_SETTINGS = {"auto": {"max_cost": 10, "n_choose": 300, "pool": 4}}
# The demo grades on the default spaces: first one that nothing in the ensemble steers by, then the
# domain classifier (which steers the feature judge, auto's choice and best), its figures beside.
DEMO_FEATURES = None
# The completion cost model is fitted on 32 calibration images (128 by default): the demo completes 8.
DEMO_COMPLETION = CompletionConfig(n_cost_fit=32)

# --fast: a smoke test of the same pipeline in about a minute (not a meaningful result).
FAST_OVERRIDES = [
    "train.steps=30",
    "train.checkpoint_every=30",
    "train.log_every=10",
    "train.snapshot_every=10",
    "data.limit=2000",
]


def demo_config() -> Path:
    """The embedded default config, shipped inside the package."""
    return Path(str(resources.files("gensemble") / "configs" / "demo.yaml"))


def say(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


class Stages:
    """One numbered line as each stage starts and one with its time as it ends: the stages differ too
    much in length (training is most of the demo) for a per-stage rate to predict the rest."""

    def __init__(self, total: int) -> None:
        self.total, self.timings = total, {}

    def run(self, name: str, what: str, fn: Callable[[], T]) -> T:
        say(f"{len(self.timings) + 1}/{self.total} {what}")
        start = time.perf_counter()
        result = fn()
        self.timings[name] = round(time.perf_counter() - start, 2)
        say(f"    {name} took {self.timings[name]:.0f} s")
        return result


def run_demo(out: str | Path = "demo-out", inception: bool = False, fast: bool = False) -> str:
    """Run the whole pipeline into `out`; return the summary to print (table and report path).

    Each stage after training reads what the one before saved in the run folder: `score` writes
    tournament.json, `evaluate` reuses it for every fusion (one tournament, one fitted critic) and
    saves evaluation.json and a sample grid per row, and the report only renders those files.
    Stage times go to OUT/timings.json, the printed summary to OUT/summary.txt."""
    out = Path(out)
    run_dir = out / "run"
    overrides = FAST_OVERRIDES if fast else []
    # The FID/KID reference size. 1,000 keeps the stages after training within a quarter of training;
    # the margins the report states are several times the seed noise at this n (docs/evaluation.md).
    # --fast is a smoke test, not a result.
    n = 200 if fast else 1000
    stages = Stages(6 if inception else 5)
    stage, timings = stages.run, stages.timings

    # A finished run is resumed (a no-op), so re-running the demo continues instead of failing.
    resume = (run_dir / "config.yaml").exists()
    stage(
        "train",
        f"training 3 DCGANs + 1 VAE on Fashion-MNIST into {run_dir}",
        lambda: train_run(demo_config(), run_dir, overrides, resume=resume),
    )
    table = stage(
        "score",
        "tournament: every discriminator scores every generator (saved as tournament.json)",
        lambda: score_run(run_dir, n_samples=2000),  # the fusions' n_score: reused
    )
    metrics = ("fid", "kid", "prdc", "modes")
    result = stage(
        "evaluate",
        f"fusing ({', '.join(DEMO_FUSIONS)}) and evaluating {n} samples per row on EfficientNet-Lite0 "
        "features (nothing steers by them) and on the classifier's (which steer the critics: shown beside)",
        lambda: evaluate_run(
            run_dir,
            metrics=metrics,
            features=DEMO_FEATURES,
            n=n,
            fusions=DEMO_FUSIONS,
            fusion_settings=FAST_FUSION_SETTINGS if fast else DEMO_FUSION_SETTINGS,
        ),
    )
    inception_text = ""
    if inception:
        inc = stage(
            "inception",
            "Inception features too (slow on a CPU: 500 samples per row)",
            lambda: evaluate_run(
                run_dir, metrics=("fid", "kid"), features="inception", n=100 if fast else 500, write=False
            ),
        )
        inception_text = "\n\nInception-feature FID/KID:\n" + inc.format()

    completion = stage(
        "complete",
        "completing 8 held-out images with a centre hole (every member proposes, the critics choose)",
        lambda: complete_heldout(run_dir, 8, cfg=DEMO_COMPLETION),
    )
    report = stage(
        "report",
        "writing the HTML report from the saved results",
        lambda: report_run(run_dir, out / "report.html"),
    )
    after = sum(v for k, v in timings.items() if k != "train")
    timings["after_training"] = round(after, 2)
    atomic_write_text(out / "timings.json", json.dumps(timings, indent=1) + "\n")
    summary = summary_text(
        table.format(), result.format() + inception_text, completion, report, run_dir, timings
    )
    first = gather_report(run_dir).verdict
    summary = (first + "\n\n" if first else "") + summary
    atomic_write_text(out / "summary.txt", summary + "\n")
    return summary


def summary_text(
    table: str, evaluation: str, completion: dict, report: Path, run_dir: Path, timings: dict[str, float]
) -> str:
    """What the demo prints at the end (and saves as summary.txt)."""
    total = sum(v for k, v in timings.items() if k != "after_training")
    return "\n".join(
        [
            "Tournament (rows: generators, columns: discriminators):",
            table,
            "",
            "Evaluation against held-out Fashion-MNIST:",
            evaluation,
            "",
            f"Completion of 8 held-out images (hole MSE, lower is better): {completion['hole_mse']}",
            "",
            f"report: {report}",
            f"run folder: {run_dir}  (TensorBoard: tensorboard --logdir {run_dir / 'tb'})",
            f"done in {total / 60:.1f} min "
            f"(training {timings['train']:.0f} s, everything after it {timings['after_training']:.0f} s)",
        ]
    )
