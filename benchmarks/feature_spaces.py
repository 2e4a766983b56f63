"""Which feature spaces can grade independently on a CPU: speed and agreement with Inception.

    python benchmarks/feature_spaces.py --demo-run demo-out/run [--demo-out demo-out] [--n 1000]

For every image space in the registry (the domain classifier, Inception, EfficientNet-Lite0 at
three input sizes (the default, 64 px, then 96 and 128), pixels) it measures:

* images per second on this machine's 2 cores (512 Fashion-MNIST test images, after a warm-up);
* agreement with Inception over the judges benchmark's Fashion population (10 generators of clearly
  different quality, benchmarks/configs/judges-fashion.yaml, trained once into runs/bench-judges/):
  the Spearman correlation of the generators' FIDs with their Inception FIDs, n per generator
  against the evaluation half;
* the FIDs of the demo's rows (its members and fusions, the same samples on every space, through
  `evaluate_run`) and their Spearman with Inception's, and auto's margin over the best member.

Nothing here steers anything: it reads the spaces' numbers. It writes
docs/results/feature_spaces.json, with a `goals` list (independent_default: evaluate's default
space is one no fusion steers by; demo_headline_independent: the demo report's first sentence is
graded on such a space).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import judges as judges_bench  # noqa: E402  (its population: the same 10 generators)

from gensemble.data import heldout_halves, load_dataset  # noqa: E402
from gensemble.demo import DEMO_FUSION_SETTINGS, DEMO_FUSIONS  # noqa: E402
from gensemble.evaluation.evaluate import evaluate_run  # noqa: E402
from gensemble.evaluation.evaluator import Evaluator  # noqa: E402
from gensemble.evaluation.features import resolve_features  # noqa: E402
from gensemble.evaluation.plan import grading_spaces  # noqa: E402
from gensemble.fusion import FUSIONS, parse_fusion_params  # noqa: E402
from gensemble.fusion.base import steered_by  # noqa: E402
from gensemble.metrics import get_extractor  # noqa: E402

OUT = ROOT / "docs" / "results" / "feature_spaces.json"
SPACES = (
    "classifier:fashion-mnist",
    "inception",
    "effnet-lite0",  # the default: 64 px
    "effnet-lite0:96",
    "effnet-lite0:128",
    "pixels",
)


def speed(name: str, images: torch.Tensor, repeats: int = 2) -> float:
    ext = get_extractor(name, "cpu")
    ext.extract(images[:16])  # the first call builds kernels
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        ext.extract(images)
        best = max(best, len(images) / (time.perf_counter() - start))
    return best


def population_fids(n: int) -> dict[str, dict[str, float]]:
    """space -> generator -> FID against the evaluation half (n each), the judges' population."""
    ens, heldout, gens = judges_bench.population("judges-fashion.yaml", "fashion")
    _, eval_half = heldout_halves(heldout.x, 0)
    samples = {
        name: g.sample(n, torch.Generator().manual_seed(900 + i)).float().cpu()
        for i, (name, g) in enumerate(gens.items())
    }
    out = {}
    for space in SPACES:
        feat, _, _ = resolve_features(space, "fashion-mnist", True, ("fid",), True, "cpu")
        ev = Evaluator.prepare(feat, eval_half[:n], ("fid",), 0)
        out[space] = {name: float(ev.score(x)["fid"]) for name, x in samples.items()}
        print(
            f"population on {space}: " + ", ".join(f"{k} {v:.1f}" for k, v in out[space].items()), flush=True
        )
    return out


def demo_fids(run: Path, n: int) -> dict[str, dict[str, float]]:
    """space -> demo row -> FID: every space grades the same samples of each row."""
    result = evaluate_run(
        run,
        features=list(SPACES),
        metrics=("fid",),
        n=n,
        fusions=DEMO_FUSIONS,
        fusion_settings=DEMO_FUSION_SETTINGS,
        write=False,
    )
    out = {result.features: {r: v["fid"] for r, v in result.rows.items()}}
    for space, rows in result.graded.items():
        out[space] = {r: v["fid"] for r, v in rows.items()}
    return {space: out[space] for space in SPACES if space in out}


def agreement(fids: dict[str, dict[str, float]], drop_floor: bool = True) -> dict[str, float]:
    ref = fids["inception"]
    names = [k for k in ref if not (drop_floor and k.startswith("real:"))]
    return {
        space: float(spearmanr([v[k] for k in names], [ref[k] for k in names]).statistic)
        for space, v in fids.items()
    }


def auto_margin(rows: dict[str, float]) -> dict[str, float | str]:
    members = {k: v for k, v in rows.items() if ":" not in k}
    best = min(members, key=members.get)
    auto = rows.get("fusion:auto")
    return {
        "best_member": best,
        "best_member_fid": round(members[best], 3),
        "auto_fid": None if auto is None else round(auto, 3),
        "auto_gain_pct": None if auto is None else round(100 * (members[best] - auto) / members[best], 1),
        "uniform_fid": None if "fusion:uniform" not in rows else round(rows["fusion:uniform"], 3),
    }


def goals(demo_out: Path | None) -> list[dict]:
    default = grading_spaces(None, "fashion-mnist", True)[0][0]
    steering = {
        s for n in FUSIONS.names() for s in steered_by(n, parse_fusion_params(n, {}), "fashion-mnist")
    }
    out = [
        {
            "name": "independent_default",
            "target": "evaluate's default (first) space on an image run is one that no fusion steers by",
            "value": default,
            "met": default is not None and default not in steering,
        }
    ]
    if demo_out is not None and (demo_out / "run" / "evaluation.json").exists():
        saved = json.loads((demo_out / "run" / "evaluation.json").read_text())
        auto_self = "fusion:auto" in saved.get("self_graded", [])
        out.append(
            {
                "name": "demo_headline_independent",
                "target": "the demo report's first sentence is graded on a space that did not steer fusion:auto",
                "value": f"{saved.get('features')}; fusion:auto self-graded there: {auto_self}",
                "met": saved.get("features") not in steering and not auto_self,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo-run", type=Path, help="a finished demo's run folder (demo-out/run)")
    ap.add_argument("--demo-out", type=Path, help="the demo's output folder, for the headline goal")
    ap.add_argument("--n", type=int, default=1000, help="samples per generator and reference images")
    ap.add_argument("--skip-population", action="store_true")
    ap.add_argument(
        "--only-demo",
        action="store_true",
        help="re-measure only the demo's rows and the goals; keep the speeds and the population from OUT",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    start = time.perf_counter()
    if args.only_demo:
        return finish(json.loads(OUT.read_text()), args, start, "demo_seconds")
    images = load_dataset_images()
    result: dict = {"n": args.n, "threads": torch.get_num_threads(), "spaces": {}}
    for space in SPACES:
        ext = get_extractor(space, "cpu")
        result["spaces"][space] = {
            "img_per_s": round(speed(space, images), 1),
            "dim": ext.dim,
            "input_size": getattr(ext, "input_size", None),
            "weights_sha256": getattr(ext, "weights_sha256", None),
        }
        print(f"{space}: {result['spaces'][space]['img_per_s']} img/s", flush=True)
    if not args.skip_population:
        pop = population_fids(args.n)
        result["population"] = {"fids": pop, "spearman_with_inception": agreement(pop)}
    return finish(result, args, start, "seconds")


def finish(result: dict, args: argparse.Namespace, start: float, timing_key: str) -> int:
    """The demo's rows (with --demo-run) and the goals, then write OUT and print the table."""
    demo_section(result, args)
    result["goals"] = goals(args.demo_out)
    result[timing_key] = round(time.perf_counter() - start, 1)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    return 0


def demo_section(result: dict, args: argparse.Namespace) -> None:
    if args.demo_run is not None:
        demo = demo_fids(args.demo_run, args.n)
        result["demo"] = {
            "run": str(args.demo_run),
            "fusions": list(DEMO_FUSIONS),
            "fids": demo,
            "spearman_with_inception": agreement(demo),
            "auto_vs_best_member": {space: auto_margin(rows) for space, rows in demo.items()},
        }


def load_dataset_images(n: int = 512) -> torch.Tensor:
    from gensemble.data import DataConfig

    return load_dataset(DataConfig(name="fashion-mnist"), "test").x[:n]


def print_table(result: dict) -> None:
    pop = result.get("population", {}).get("spearman_with_inception", {})
    demo = result.get("demo", {})
    print(
        "\n| space | img/s | Spearman with Inception (population) | Spearman (demo rows) | auto vs best member (demo) |"
    )
    print("|---|---|---|---|---|")
    for space, s in result["spaces"].items():
        m = demo.get("auto_vs_best_member", {}).get(space, {})
        gain = (
            f"{m.get('auto_gain_pct')}% ({m.get('auto_fid')} vs {m.get('best_member_fid')}, {m.get('best_member')})"
            if m
            else "-"
        )
        print(
            f"| {space} | {s['img_per_s']} | {pop.get(space, float('nan')):.3f} | "
            f"{demo.get('spearman_with_inception', {}).get(space, float('nan')):.3f} | {gain} |"
        )
    for g in result["goals"]:
        print(f"goal {g['name']}: {'met' if g['met'] else 'NOT met'} ({g['value']})")


if __name__ == "__main__":
    sys.exit(main())
