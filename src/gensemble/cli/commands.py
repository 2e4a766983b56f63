"""The command line's subcommands. Thin: each parses arguments, calls one public function, prints."""

from __future__ import annotations

import argparse
import signal
import sys
import warnings
from pathlib import Path

from gensemble.calibration import CALIBRATION_METHODS
from gensemble.catalog import CATALOG, list_components
from gensemble.catalog_cache import write_catalog
from gensemble.cli import tools  # noqa: F401  (registers its subcommands)
from gensemble.cli.base import (
    COMMANDS,
    DEVICE_HELP,
    EXTRA_PARSERS,
    RUN_HELP,
    STEP_HELP,
    catalog_snapshot,
    command,
    device_arg,
    print_json,
)
from gensemble.demo import run_demo
from gensemble.errors import GensembleError, shown
from gensemble.evaluation.evaluate import evaluate_run
from gensemble.progress import set_quiet
from gensemble.report import report_run
from gensemble.run import train_run
from gensemble.sample_job import SampleRequest, sample_to_file
from gensemble.threads import set_threads
from gensemble.tournament import SCORINGS, score_run
from gensemble.tournament.judges import JUDGE_KINDS, JudgeConfig


@command("train")
def cmd_train(args: argparse.Namespace) -> int:
    if args.ddp and not args.dry_run:
        if args.backend != "local":
            raise GensembleError("--ddp trains each member data-parallel under torchrun; drop --backend")
        out = train_run(
            args.config, args.out, args.set, resume=args.resume, device=args.device, backend="ddp"
        )
        print(f"run saved to {out}")
        return 0
    if args.address is not None and args.backend == "local":
        raise GensembleError("--address names a Ray cluster; add --backend ray")
    out = train_run(
        args.config,
        args.out,
        args.set,
        resume=args.resume,
        dry_run=args.dry_run,
        device=args.device,
        backend=args.backend,
        address=args.address,
    )
    print(out if args.dry_run else f"run saved to {out}")
    return 0


@command("sample")
def cmd_sample(args: argparse.Namespace) -> int:
    request = SampleRequest(
        args.n, args.seed, args.member, args.fusion, tuple(args.set), args.device, args.step
    )
    path, samples = sample_to_file(args.run, args.output, request)
    print(f"wrote {path} ({samples.summary()})")
    return 0


@command("score")
def cmd_score(args: argparse.Namespace) -> int:
    table = score_run(
        args.run,
        scoring=args.scoring,
        n_samples=args.n,
        calibration=args.calibration,
        seed=args.seed,
        device=args.device,
        step=args.step,
        judges=JudgeConfig(args.judges),
    )
    if args.json:
        print_json(table.to_json())
    else:
        print(table.format())
    return 0


@command("evaluate")
def cmd_evaluate(args: argparse.Namespace) -> int:
    result = evaluate_run(
        args.run,
        metrics=args.metrics,
        features=args.features,
        n=args.n,
        fusions=args.fusion,
        seed=args.seed,
        device=args.device,
        step=args.step,
        reference=args.reference,
        fusion_settings=args.set,
        labels=args.labels,
    )
    if args.json:
        print_json(result.to_cli_json())
    else:
        print(result.format())
    return 0


@command("list")
def cmd_list(args: argparse.Namespace) -> int:
    for name, doc in list_components(args.what):
        print(f"{name:<22} {doc}")
    write_catalog(catalog_snapshot(build_parser()))  # the next listing needs no torch
    return 0


@command("report")
def cmd_report(args: argparse.Namespace) -> int:
    fusions = tuple(args.fusion) if args.fusion else None
    path = report_run(args.run, args.output, fusions=fusions)
    print(f"wrote {path}")
    return 0


@command("demo")
def cmd_demo(args: argparse.Namespace) -> int:
    summary = run_demo(args.out, inception=args.inception, fast=args.fast)
    print(summary)
    return 0


def build_parser() -> argparse.ArgumentParser:

    # Choices come from the modules that own the names, never copied here.

    p = argparse.ArgumentParser(prog="gensemble", description="Ensembles of generative image models.")
    p.add_argument("--quiet", action="store_true", help="one line per stage instead of progress bars")
    p.add_argument(
        "--threads",
        default="auto",
        metavar="N|auto",
        help="PyTorch CPU threads (anywhere on the line). auto (default): measured while training and "
        "re-chosen every 30 s, since a busy neighbour can make 2 threads slower than 1",
    )
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model or an ensemble from a YAML config")
    t.add_argument("config", help="YAML config file (see 'gensemble configs list')")
    t.add_argument("--out", help="run folder (default runs/<config name>)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    t.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    t.add_argument("--device", type=device_arg, default=None, help=DEVICE_HELP)
    t.add_argument(
        "--backend",
        default="local",
        help="executor for the members (gensemble list backends): local (stacks same-config members where "
        "that pays), batched (always stacks), loop (one at a time), ray",
    )
    t.add_argument(
        "--address", default=None, help="Ray cluster address (auto or HOST:PORT); default: local Ray"
    )
    t.add_argument("--ddp", action="store_true", help="data-parallel training under torchrun")

    s = sub.add_parser("sample", help="draw samples from a run (one member, its mixture, or a fusion)")
    s.add_argument("run", help=RUN_HELP)
    s.add_argument("-n", type=int, default=64, help="how many samples")
    s.add_argument("-o", "--output", required=True, help="FILE.png (a grid) or FILE.npz")
    s.add_argument("--seed", type=int, default=0, help="seed of the samples")
    s.add_argument("--member", default=None, help="sample one member by name")
    s.add_argument("--fusion", default=None, help="a fusion method (see 'gensemble list fusions')")
    s.add_argument(
        "--set", action="append", default=[], metavar="fusion.KEY=VALUE", help="a fusion parameter"
    )
    s.add_argument("--device", type=device_arg, default="cpu", help=DEVICE_HELP)
    s.add_argument("--step", type=int, default=None, help=STEP_HELP)

    sc = sub.add_parser("score", help="tournament: every discriminator scores every generator")
    sc.add_argument("run", help=RUN_HELP)
    sc.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sc.add_argument("--scoring", choices=SCORINGS, default="matrix", help="how scores are aggregated")
    sc.add_argument(
        "--judges",
        choices=JUDGE_KINDS,
        default="default",
        help="default (features on a dataset with a domain classifier, finetuned elsewhere), finetuned "
        "(copies of every D trained against all members' samples), features (a two-sample classifier "
        "on frozen features), raw (the Ds as trained)",
    )
    sc.add_argument(
        "--calibration", choices=CALIBRATION_METHODS, default="platt", help="how each critic is calibrated"
    )
    sc.add_argument("-n", type=int, default=2000, help="samples per generator (and held-out real) to score")
    sc.add_argument("--seed", type=int, default=0, help="seed of the generated samples")
    sc.add_argument("--device", type=device_arg, default="cpu", help=DEVICE_HELP)
    sc.add_argument("--step", type=int, default=None, help=STEP_HELP)

    ev = sub.add_parser("evaluate", help="FID/KID/IS/PRDC/modes of members and fusions vs held-out real data")
    ev.add_argument("run", help=RUN_HELP)
    ev.add_argument(
        "--metrics",
        default=None,
        help="comma-separated, of fid,kid,is,prdc,modes (default fid,kid,prdc,modes)",
    )
    ev.add_argument(
        "--features",
        default=None,
        help="comma-separated spaces, the first graded in full: effnet-lite0 (ImageNet features nothing steers "
        "by), classifier (the dataset's domain classifier, which steers critics and choices), classifier:DATASET, "
        "or inception (~0.3 s per image on a CPU, so n defaults to 500); default for images: effnet-lite0, then "
        "the classifier where the dataset has one. 2-D toys: points (the raw coordinates; default) or modes "
        "(a Gaussian kernel at each mixture centre, so that FID and KID see mass between the modes)",
    )
    ev.add_argument(
        "-n",
        "--n",
        type=int,
        default=None,
        help="samples per row (default: the held-out evaluation half, at most 5000; 2500 for 2-D toys; "
        "500 with inception)",
    )
    ev.add_argument(
        "--fusion",
        action="extend",
        nargs="+",
        default=[],
        metavar="NAME",
        help="also evaluate these fusion methods (see 'gensemble list fusions')",
    )
    ev.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="fusion.KEY=VALUE",
        help="a fusion parameter, applied to each --fusion that has it (e.g. fusion.gamma_percentile=80)",
    )
    ev.add_argument("--seed", type=int, default=0, help="seed of the generated samples")
    ev.add_argument("--device", type=device_arg, default="cpu", help=DEVICE_HELP)
    ev.add_argument("--step", type=int, default=None, help=STEP_HELP)
    ev.add_argument(
        "--reference",
        default=None,
        metavar="FOLDER|train",
        help="real images to compare against instead of the run's held-out evaluation half: a folder of "
        "PNG/JPEG, or 'train' for the training split (large n without retraining; the members saw it)",
    )
    ev.add_argument(
        "--labels",
        default=None,
        metavar="FILE.csv|CLASSIFIER.pt",
        help="classes of the --reference folder's images, one 'file,label' row each: per-class coverage "
        "and class-matched FID use them (samples are classed by a logistic regression on the features); "
        "or your TorchScript classifier (.pt, .ts), which classes the reference and every sample itself "
        "(it runs the code it holds: only a file you trust)",
    )
    ev.add_argument(
        "--json", action="store_true", help='print {"<row>": {"<metric>": value}} instead of a table'
    )

    ls = sub.add_parser("list", help="list registered components")
    ls.add_argument("what", choices=CATALOG, help="which kind of registered component to list")

    r = sub.add_parser("report", help="write a self-contained HTML report of a run")
    r.add_argument("run", help=RUN_HELP)
    r.add_argument("-o", "--output", default=None, help="HTML file (default RUN/report.html)")
    r.add_argument(
        "--fusion",
        nargs="*",
        default=None,
        help="fusion grids to show (default: every one the latest evaluation saved)",
    )

    d = sub.add_parser("demo", help="the main job end to end on Fashion-MNIST")
    d.add_argument("--out", default="demo-out", help="folder for the run and the report")
    d.add_argument(
        "--inception", action="store_true", help="also compute Inception-feature FID (slow on a CPU)"
    )
    d.add_argument("--fast", action="store_true", help="a much smaller demo, for smoke tests")

    for extra in EXTRA_PARSERS:
        extra(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # --quiet is accepted anywhere on the line, not only before the subcommand.
    quiet = "--quiet" in argv
    argv, thread_arg = take_option(argv, "--threads")
    parser = build_parser()
    if "-h" in argv or "--help" in argv:
        write_catalog(catalog_snapshot(parser))  # the next help page needs no torch
    args = parser.parse_args([a for a in argv if a != "--quiet"])

    set_quiet(quiet)
    # A scheduler's or `timeout`'s SIGTERM stops a command the way Ctrl-C does: the same cleanup,
    # one line about what was kept, and the shell's exit code for the signal.
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (an embedding program): leave its handlers alone
        previous = None
    try:
        set_threads(thread_arg or "auto", from_user=thread_arg is not None)
        with warnings.catch_warnings():
            # Warnings (a skipped image, a small n, a damaged cache entry) as one line each,
            # not Python's two-line form with a source excerpt.
            warnings.showwarning = lambda msg, *a, **k: print(
                f"gensemble: warning: {one_line(str(msg))}", file=sys.stderr
            )
            return COMMANDS[args.command](args)
    except GensembleError as exc:
        print(f"gensemble: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:
        # The file system refused (full disk, permissions, a path that vanished): one line, no traceback.
        where = f" {shown(str(exc.filename))}" if getattr(exc, "filename", None) else ""
        reason = "the disk is full" if exc.errno == 28 else (exc.strerror or str(exc))
        print(
            f"gensemble: error: cannot read or write{where}: {reason}; check the path and free space",
            file=sys.stderr,
        )
        return 2
    except MemoryError:
        print(
            "gensemble: error: out of memory; reduce the batch size, -n or the models' widths",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt as exc:
        term = isinstance(exc, Terminated)
        what = "terminated (SIGTERM)" if term else "interrupted"
        print(f"gensemble: {what}; {kept_after_interrupt(args)}", file=sys.stderr)
        return 143 if term else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that every `finally` runs as for Ctrl-C."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


MAX_MESSAGE = 400


def one_line(text: str) -> str:
    """A message as one bounded line: a value echoed whole (a 5,000-character name) is cut in the
    middle, so the problem and the fix at either end stay readable."""
    text = " ".join(text.split("\n"))
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 120] + " … " + text[-117:]


def kept_after_interrupt(args: argparse.Namespace) -> str:
    """What an interrupted command left, in its own terms (every writer writes all or nothing)."""
    run = getattr(args, "run", None) or getattr(args, "out", None) or "the run"
    if args.command == "train" and not (Path(str(run)) / "latest.json").is_file():
        # Stopped before its first checkpoint: there is nothing to resume (the folder may be gone).
        return f"no checkpoint was written yet; start it again with 'gensemble train CONFIG --out {run}'"
    return {
        "train": f"the last checkpoint in {run} is intact; continue with 'gensemble train CONFIG --out {run} --resume'",
        "evaluate": f"{run}'s evaluation.json, evaluations/ and samples/ are as they were; nothing was half-written",
        "score": f"{run}'s tournament.json is as it was",
        "complete": "earlier completion outputs are as they were; nothing was half-written",
        "export": "no new export was written; an earlier one is as it was",
        "sample": "the output file was not written (an earlier one is as it was)",
        "report": "the report file is as it was",
        "demo": "finished stages are kept; run 'gensemble demo' again to continue (training resumes)",
    }.get(args.command, "nothing was half-written")


def take_option(argv: list[str], name: str) -> tuple[list[str], str | None]:
    """Remove `name VALUE` or `name=VALUE` from anywhere on the line (like --quiet); return the value."""
    out, value, i = [], None, 0
    while i < len(argv):
        a = argv[i]
        if a == name and i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
            continue
        if a.startswith(name + "="):
            value = a.split("=", 1)[1]
        else:
            out.append(a)
        i += 1
    return out, value


if __name__ == "__main__":
    sys.exit(main())
