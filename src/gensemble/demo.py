"""`gensemble demo`: the main job end to end — train a heterogeneous ensemble on Fashion-MNIST,
run the tournament, fuse, evaluate with domain-classifier features, and write the HTML report."""

from __future__ import annotations

import sys
import time
from importlib import resources
from pathlib import Path

from gensemble.progress import progress

DEMO_FUSIONS = ("uniform", "weighted", "best", "rejection", "vote", "stacked", "mh")
# --fast: a smoke test of the same pipeline in about a minute (not a meaningful result).
FAST_OVERRIDES = ["train.steps=30", "train.checkpoint_every=30", "train.log_every=10", "data.limit=2000"]


def demo_config() -> Path:
    """The embedded default config, shipped inside the package."""
    return Path(str(resources.files("gensemble") / "configs" / "demo.yaml"))


def say(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


def run_demo(out: str | Path = "demo-out", inception: bool = False, fast: bool = False) -> str:
    """Run the whole pipeline into `out`; return the summary to print (table and report path)."""
    from gensemble.evaluation.run import evaluate_run
    from gensemble.report import report_run
    from gensemble.run import train_run
    from gensemble.tournament import score_run

    out = Path(out)
    run_dir = out / "run"
    overrides = FAST_OVERRIDES if fast else []
    start = time.perf_counter()
    stages = progress(5 if inception else 4, "demo", unit="stage")

    say(f"1/4 training 3 DCGANs + 1 VAE on Fashion-MNIST into {run_dir}")
    # A finished run is resumed (a no-op), so re-running the demo continues instead of failing.
    train_run(demo_config(), run_dir, overrides, resume=(run_dir / "config.yaml").exists())
    stages.update(1)

    say("2/4 tournament: every discriminator scores every generator")
    table = score_run(run_dir, n_samples=500 if fast else 2000)
    stages.update(1)

    n = 500 if fast else 2000  # 2,000 per row keeps rejection and MH sampling inside the time budget
    say(f"3/4 fusing ({', '.join(DEMO_FUSIONS)}) and evaluating {n} samples per row with classifier features")
    result = evaluate_run(
        run_dir,
        metrics=("fid", "kid", "is", "prdc", "modes"),
        features="classifier",
        n=n,
        fusions=DEMO_FUSIONS,
    )
    stages.update(1)
    inception_text = ""
    if inception:
        say("   Inception features too (slow on a CPU: 500 samples per row)")
        inc = evaluate_run(
            run_dir, metrics=("fid", "kid"), features="inception", n=100 if fast else 500, write=False
        )
        inception_text = "\n\nInception-feature FID/KID:\n" + inc.format()
        stages.update(1)

    say("   completing 8 held-out images with a centre hole (every member proposes, the critics choose)")
    from gensemble.editing.files import complete_heldout

    completion = complete_heldout(run_dir, 8)

    say("4/4 writing the HTML report")
    report = report_run(run_dir, out / "report.html", fusions=DEMO_FUSIONS)
    stages.update(1)
    stages.close()
    minutes = (time.perf_counter() - start) / 60
    return "\n".join(
        [
            "Tournament (rows: generators, columns: discriminators):",
            table.format(),
            "",
            "Evaluation against held-out Fashion-MNIST:",
            result.format() + inception_text,
            "",
            f"Completion of 8 held-out images (hole MSE, lower is better): {completion['hole_mse']}",
            "",
            f"report: {report}",
            f"run folder: {run_dir}  (TensorBoard: tensorboard --logdir {run_dir / 'tb'})",
            f"done in {minutes:.1f} min",
        ]
    )
