"""Throw thousands of bad inputs at gensemble and count what comes back.

    python benchmarks/bad_inputs.py [--examples 1000]

Uses the fuzzing strategies of tests/test_fuzz.py (config mappings, `--set` strings, image files,
checkpoint folders) with many more examples than the test suite, and counts each outcome: success,
a clean GensembleError (the CLI's one-line error, exit 2), or any other exception (a bug). Prints
the table and writes docs/results/bad_inputs.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import traceback
import warnings
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import test_fuzz as fz  # noqa: E402  (the strategies live with the tests)

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
        for part in outcome.split("/"):
            counts[name]["success" if part == "ok" else "clean error"] += 1

    run()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", type=int, default=1000, help="examples per kind of input")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "bad_inputs.json"))
    args = ap.parse_args(argv)
    set_quiet(True)
    warnings.simplefilter("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="gensemble-bad-inputs-"))
    run = Path(train_run(fz.write_config(tmp / "c.yaml"), tmp / "R"))
    counter = iter(range(10**9))
    counts: dict[str, Counter] = {}
    bugs: list[str] = []
    tally("config mappings", fz.configs(), fz.check_parse, args.examples, counts, bugs)
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
    result = {"rows": rows, "total": total, "examples_per_kind": args.examples, "first_bugs": bugs[:20]}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    sys.exit(0 if main()["total"]["other exception"] == 0 else 1)
