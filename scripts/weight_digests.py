"""SHA-256 of every scheme's final weights after a short fixed-seed run: a refactor of training that
means to change nothing must print the same digests before and after.

    python scripts/weight_digests.py                 # prints JSON: case -> digest
    python scripts/weight_digests.py --out F.json    # and writes it

Every case trains 30 steps (10 on Fashion-MNIST) on one thread (the thread count changes float
summation order, so it is pinned) into a temporary folder, then hashes each network's state (members'
and the scheme's auxiliary networks) in name order. The cases cover every scheme, the gradient
penalty (wgan-gp) where each scheme draws its interpolation weights, n_critic = 2, and the local,
loop and batched executors.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import yaml

from gensemble.run import load_run, train_run

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "src" / "gensemble" / "configs"
TRAIN = {"steps": 30, "batch_size": 64, "checkpoint_every": 30, "log_every": 10, "threads": 1}


def config(name: str, members: dict | None = None, scheme: dict | None = None, **train) -> dict:
    raw = yaml.safe_load((CONFIGS / name).read_text())
    raw["train"] = {**TRAIN, **train}
    if members:
        raw["members"] = [{**m, **members} for m in raw["members"]]
    if scheme:
        base = (
            raw["scheme"]
            if isinstance(raw.get("scheme"), dict)
            else {"name": raw.get("scheme", "independent")}
        )
        raw["scheme"] = {**base, **scheme}
    return raw


def cases() -> dict[str, tuple[dict, str]]:
    gp = {"loss": "wgan-gp"}
    fashion = {"data": {"name": "fashion-mnist", "limit": 600}}
    return {
        "independent": (config("grid25-independent.yaml"), "local"),
        "independent-loop": (config("grid25-independent.yaml"), "loop"),
        "independent-batched": (config("grid25-independent.yaml"), "batched"),
        "independent-wgan-gp": (config("grid25-independent.yaml", gp), "local"),
        "independent-wgan-gp-batched": (config("grid25-independent.yaml", gp), "batched"),
        "independent-n_critic-2": (config("grid25-independent.yaml", {"n_critic": 2}), "batched"),
        "gan": (config("grid25-gan.yaml"), "local"),
        "pacgan": (config("grid25-pacgan.yaml"), "local"),
        "mixture": (config("grid25-mgan.yaml"), "local"),
        "mixture-wgan-gp": (config("grid25-mgan.yaml", gp), "local"),
        "multi-discriminator": (config("grid25-multi-discriminator.yaml"), "local"),
        "multi-discriminator-batched": (config("grid25-multi-discriminator.yaml"), "batched"),
        "multi-discriminator-wgan-gp-learned": (
            config("grid25-multi-discriminator.yaml", gp, {"learn_temperature": True}),
            "local",
        ),
        "boosting": (config("grid25-boosting.yaml", scheme={"ratio_steps": 20}), "local"),
        "swap": (config("grid25-swap.yaml", scheme={"swap_every": 10}), "local"),
        "fashion-dcgan": (
            {**config("fashion-dcgan.yaml", steps=10, checkpoint_every=10), **fashion},
            "local",
        ),
        "fashion-vae": ({**config("fashion-vae.yaml", steps=10, checkpoint_every=10), **fashion}, "local"),
    }


def digest(run: Path) -> str:
    ens = load_run(run)
    nets = {f"{m.name}.{k}": v for m in ens.members for k, v in m.model.networks().items()}
    nets |= dict(ens.aux)
    h = hashlib.sha256()
    for name in sorted(nets):
        for key, value in sorted(nets[name].state_dict().items()):
            h.update(f"{name}.{key}".encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--only", action="append", help="case names (default: all)")
    ap.add_argument(
        "--reuse-fake",
        choices=("default", "true", "false"),
        default="default",
        help="set every member's reuse_fake (false: the round as it was before the fake batch was reused)",
    )
    args = ap.parse_args(argv)
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (cfg, backend) in cases().items():
            if args.only and name not in args.only:
                continue
            run = Path(tmp) / name
            cfg = copy.deepcopy(cfg)
            if args.reuse_fake != "default":
                flag = {"reuse_fake": args.reuse_fake == "true"}
                if "members" in cfg:
                    cfg["members"] = [{**m, **flag} for m in cfg["members"]]
                else:  # the one-member shorthand
                    cfg.update(flag)
            train_run(cfg, run, backend=backend)
            out[name] = digest(run)
            print(f"{name:40s} {out[name]}", file=sys.stderr, flush=True)
    text = json.dumps(out, indent=1) + "\n"
    if args.out is not None:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
