"""Throw thousands of bad inputs at gensemble and count what comes back.

    python benchmarks/bad_inputs.py [--examples 1000] [--signal-trials 20] [--writer-trials 6]

Uses the fuzzing strategies of tests/test_fuzz.py (config mappings, `--set` strings, image files,
checkpoint folders) and tests/test_fuzz_artefacts.py (every JSON artefact of a run folder) with
many more examples than the test suite, and counts each outcome: success, a clean GensembleError
(the CLI's one-line error, exit 2), or any other exception (a bug). Then SIGTERM or SIGKILL at
random moments of `evaluate` and of `complete --heldout`, and two writers started at once
(benchmarks/interrupts.py). Prints the tables and writes docs/results/bad_inputs.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import interrupts  # noqa: E402
import test_fuzz as fz  # noqa: E402  (the strategies live with the tests)
import test_fuzz_artefacts as fa  # noqa: E402
import test_hostile_folders as hf  # noqa: E402
from test_editing import TINY_IMAGES  # noqa: E402  (two DCGANs and a VAE on 16 px digits)

from gensemble.artefacts import read_artefact  # noqa: E402
from gensemble.evaluation.evaluate import evaluate_run  # noqa: E402
from gensemble.progress import set_quiet  # noqa: E402
from gensemble.run import train_run  # noqa: E402


def tally(name: str, strategy, check, examples: int, counts: dict[str, Counter], bugs: list[str]) -> None:
    counts[name] = Counter()

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(strategy)
    def run(example):
        try:
            outcome = check(example)
        except Exception as exc:  # anything but a GensembleError is a bug: count it, keep going
            counts[name]["other exception"] += 1
            bugs.append(f"{name}: {type(exc).__name__}: {exc!s:.200}\n{traceback.format_exc(limit=3)}")
            return
        # a check returns "ok", "error" or "ok/error/..." per part, or ("ok" | "error", detail)
        text = outcome[0] if isinstance(outcome, tuple) else outcome
        for part in text.split("/"):
            counts[name]["success" if part == "ok" else "clean error"] += 1

    run()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", type=int, default=1000, help="examples per kind of input")
    ap.add_argument("--signal-trials", type=int, default=20, help="signals per command (evaluate, complete)")
    ap.add_argument("--writer-trials", type=int, default=6, help="pairs of writers started together")
    ap.add_argument(
        "--hostile", type=int, default=2000, help="hostile run folders, each opened by one command"
    )
    ap.add_argument(
        "--only-hostile",
        action="store_true",
        help="run only the hostile-folder section and merge it into the existing --out file",
    )
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "bad_inputs.json"))
    args = ap.parse_args(argv)
    set_quiet(True)
    warnings.simplefilter("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="gensemble-bad-inputs-"))
    if args.only_hostile:
        result = json.loads(Path(args.out).read_text())
        result["hostile_folders"] = hostile_folders(tmp, args.hostile)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        return result
    run = Path(train_run(fz.write_config(tmp / "c.yaml"), tmp / "R"))
    counter = iter(range(10**9))
    counts: dict[str, Counter] = {}
    bugs: list[str] = []
    tally("config mappings", fz.configs(), lambda case: fz.check_parse(case[0]), args.examples, counts, bugs)
    tally(
        "--set strings",
        fz.set_items(),
        lambda s: fz.check_parse(fz.tiny_toy(), [s]),
        args.examples,
        counts,
        bugs,
    )
    tally(
        "image files",
        st.tuples(fz.image_bytes(), st.sampled_from([None, 4, 16]), st.sampled_from([None, 1, 3])),
        lambda a: fz.check_image(tmp / f"img-{next(counter)}.png", *a),
        args.examples,
        counts,
        bugs,
    )
    tally(
        "checkpoint folders (restored twice each)",
        fz.checkpoint_damage(),
        lambda d: fz.check_checkpoint(run, tmp / f"ck-{next(counter)}" / "R", d),
        max(args.examples // 4, 1),
        counts,
        bugs,
    )
    clean = fa.build_artefact_run(tmp / "artefacts")
    tally(
        "run artefacts (JSON files read by report and fusions)",
        fa.artefact_damage(),
        lambda d: fa.check_artefact(clean, tmp / f"art-{next(counter)}" / "R", d),
        args.examples,
        counts,
        bugs,
    )
    rows = {
        k: {"tried": sum(c.values()), **{o: c[o] for o in ("success", "clean error", "other exception")}}
        for k, c in counts.items()
    }
    total = {
        o: sum(r[o] for r in rows.values()) for o in ("tried", "success", "clean error", "other exception")
    }
    print("| input | tried | success | clean error | other exception |")
    print("|---|---|---|---|---|")
    for k, r in {**rows, "all": total}.items():
        print(f"| {k} | {r['tried']} | {r['success']} | {r['clean error']} | {r['other exception']} |")
    for b in bugs[:5]:
        print(b)
    signals, writers = interruptions(tmp, args.signal_trials, args.writer_trials)
    if args.hostile:
        hostile = hostile_folders(tmp, args.hostile)
    else:  # keep the section measured before (--only-hostile runs it alone)
        old = Path(args.out)
        hostile = json.loads(old.read_text()).get("hostile_folders") if old.exists() else None
    result = {
        "rows": rows,
        "total": total,
        "examples_per_kind": args.examples,
        "first_bugs": bugs[:20],
        "signals": signals,
        "writers": writers,
        **({"hostile_folders": hostile} if hostile else {}),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


EVAL_ARGV = ["--fusion", "uniform", "weighted", "-n", "300"]


def evaluate_outputs(run: Path) -> set[str]:
    index = read_artefact("grids", run / "samples" / "index.json") or {}
    keys = {str(p.relative_to(run)) for p in (run / "evaluations").glob("*.json")}
    return {"evaluation.json", "samples/index.json", *keys, *(f"samples/{n}" for n in index.values())}


def check_evaluation(run: Path) -> None:
    read_artefact("evaluation", run / "evaluation.json", ["alpha", "beta"])
    read_artefact("grids", run / "samples" / "index.json", ["alpha", "beta"])


def check_completion(run: Path) -> None:
    read_artefact("completion", run / "completion" / "completion.json", ["g1", "g2", "v"])


def interruptions(tmp: Path, trials: int, writer_trials: int) -> tuple[dict, dict]:
    """Signals at random moments of evaluate and complete, then concurrent writers."""
    toy = tmp / "signals" / "toy"
    (tmp / "signals").mkdir()
    (tmp / "signals" / "c.yaml").write_text(fa.PAIR)
    train_run(tmp / "signals" / "c.yaml", toy)
    evaluate_run(toy, n=300, fusions=("uniform", "weighted"))
    images = tmp / "signals" / "images"
    (tmp / "signals" / "i.yaml").write_text(json.dumps(TINY_IMAGES))
    train_run(tmp / "signals" / "i.yaml", images)
    signals = {
        "evaluate": interrupts.signal_trials(
            toy, ["evaluate", str(toy), *EVAL_ARGV], evaluate_outputs, trials, 0, check_evaluation
        ),
        "complete": interrupts.signal_trials(
            images,
            ["complete", str(images), "--heldout", "8"],
            lambda r: {"completion/panel.png", "completion/completion.json"},
            trials,
            1,
            check_completion,
        ),
    }
    writers = interrupts.writer_trials(toy, ["evaluate", str(toy), *EVAL_ARGV], writer_trials)
    print("\n| command | trials | full run (s) | outcomes | problems |")
    print("|---|---|---|---|---|")
    for name, r in signals.items():
        print(f"| {name} | {r['trials']} | {r['full_run_s']} | {r['outcomes']} | {len(r['problems'])} |")
    print(f"\nconcurrent writers: {writers['outcomes']}, problems: {len(writers['problems'])}")
    for p in [*signals["evaluate"]["problems"], *signals["complete"]["problems"], *writers["problems"]][:5]:
        print(p)
    return signals, writers


PROBLEM_KINDS = {
    "writes or changes outside the folder": "outside changed",
    "outside bytes in an output": "outside bytes",
    "tracebacks": "traceback",
    "hangs over 10 s": "hang",
    "other (exit code, not one line)": "",
}


def hostile_folders(tmp: Path, n: int) -> dict:
    """`n` hostile run folders (tests/test_hostile_folders.py's strategy: forged commit records,
    links at every artefact and subfolder, FIFOs, huge integers, oversized files), each opened by
    one command drawn from every command that opens a run or writes into an output folder."""
    # One thread: the limit catches commands that block (a FIFO, a lock), and on a shared 2-core
    # machine a second OpenMP thread spinning against other jobs made a 1 s fit take 30 s.
    os.environ["GENSEMBLE_THREADS"] = "1"
    torch.set_num_threads(1)
    clean_run = (hf.build_clean_run(tmp / "hostile-clean"), hf.build_image_run(tmp / "hostile-images"))
    per_command: dict[str, Counter] = {name: Counter() for name in hf.COMMANDS}
    damage_kinds: Counter = Counter()
    problems: list[str] = []
    counter = iter(range(10**9))
    started = time.perf_counter()

    @settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(damage=st.lists(hf.DAMAGE, min_size=1, max_size=3), name=st.sampled_from(sorted(hf.COMMANDS)))
    def run(damage, name):
        found = hf.check_folder(clean_run, tmp / f"hostile-{next(counter)}", damage, [name])
        per_command[name]["folders"] += 1
        for d in damage:
            damage_kinds[d["kind"]] += 1
        for p in found:
            kind = next(
                (k for k, tag in PROBLEM_KINDS.items() if tag and tag in p), "other (exit code, not one line)"
            )
            per_command[name][kind] += 1
            problems.append(p[:600])

    run()
    totals = {k: sum(c[k] for c in per_command.values()) for k in ("folders", *PROBLEM_KINDS)}
    print("\n| command | hostile folders | " + " | ".join(PROBLEM_KINDS) + " |")
    print("|---|---|" + "---|" * len(PROBLEM_KINDS))
    for name, c in {**per_command, "all": Counter(totals)}.items():
        print(f"| {name} | {c['folders']} | " + " | ".join(str(c[k]) for k in PROBLEM_KINDS) + " |")
    for p in problems[:5]:
        print(p)
    return {
        "folders": totals["folders"],
        **{k: totals[k] for k in PROBLEM_KINDS},
        "per_command": {name: dict(c) for name, c in per_command.items()},
        "damage_kinds": dict(damage_kinds),
        "commands": {name: " ".join(argv) for name, argv in hf.COMMANDS.items()},
        "first_problems": problems[:20],
        "seconds": round(time.perf_counter() - started, 1),
        "threads": 1,
    }


def clean(result: dict) -> bool:
    problems = [p for r in result.get("signals", {}).values() for p in r["problems"]]
    problems += result.get("writers", {}).get("problems", [])
    hostile = result.get("hostile_folders", {})
    problems += hostile.get("first_problems", [])
    return result["total"]["other exception"] == 0 and not problems


if __name__ == "__main__":
    sys.exit(0 if clean(main()) else 1)
