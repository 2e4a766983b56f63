"""What the critics buy on features they were not built on: the free Fashion-MNIST ensemble's MH-GAN
and DRS under several critics, scored by classifier FID and by Inception FID on the choice quarter.

    python benchmarks/critic_features.py [--run runs/bench-quality-full/fashion/fashion/fashion-mnist-s1-ensemble]

The run is the quality benchmark's 3-member ensemble (trained by `benchmarks/quality.py`). Every
candidate is read off `auto`'s own pool of proposals (fusion/choice.py) and scored against the choice
quarter of the calibration half (n = 1250), never the evaluation half. Critics:

* `features`: the default feature judge (an MLP on the domain classifier's features);
* `features, train split`: the same judge fitted on 20,000 training images and 1,000 MLP steps;
* `finetuned`: the default fine-tuned discriminators; `finetuned, train split`: 500 steps on 20,000
  training images;
* `both`: one calibrated critic over the train-split feature judge and fine-tuned discriminators.

Writes docs/results/critic_features.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from gensemble.data import load_dataset
from gensemble.evaluation.features import as_saved_images
from gensemble.fusion.auto import AutoParams
from gensemble.fusion.base import FusionContext
from gensemble.fusion.choose import Candidate, choice_distance, proposal_pool, simulate, simulate_mh
from gensemble.fusion.critic import critics_of, fit_ensemble_critic, shared_critic
from gensemble.fusion.proposal import CHUNK, Chunk
from gensemble.metrics import feature_stats, frechet_distance, get_extractor
from gensemble.run import load_run
from gensemble.sampling import pooled_samples
from gensemble.tournament.judges import (
    JudgeConfig,
    feature_source,
    finetune_copies,
    fit_feature_judge,
)

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "runs" / "bench-quality-full" / "fashion" / "fashion" / "fashion-mnist-s1-ensemble"
OUT = ROOT / "docs" / "results" / "critic_features.json"
N_TRAIN = 20_000  # training images the train-split judges are fitted on


class Pool:
    """auto's pool for the run, with every candidate kept as rows of it (so its images can be had)."""

    def __init__(self, run: Path) -> None:
        self.ens = load_run(run)
        self.p = AutoParams()
        heldout = load_dataset(self.ens.cfg.data, "test")
        self.ctx = FusionContext.build(self.ens, heldout, self.p.fit_seed).judged_by(self.p)
        self.proposal, _ = shared_critic(self.ctx, "critic_features")
        self.names = self.proposal.names
        self.n = min(self.p.n_choose, len(self.ctx.choose_real))
        self.pool = proposal_pool(self.ctx)
        self.crit = choice_distance(self.ctx, self.pool, self.n, "auto")
        self.size = self.p.pool * self.n
        self.feats = np.concatenate([self.pool.features(k, g, self.size) for k, g in self.items()])
        # Candidates are simulated on row numbers, so the kept rows name their images.
        self.rows = [np.arange(self.size)[:, None] + i * self.size for i in range(len(self.names))]
        real = self.ctx.calib_real[: self.p.n_calibration]
        fake, _ = self.proposal.draw(len(real), torch.Generator().manual_seed(self.p.fit_seed + 1))
        self.calibration_data = (real, fake)

    def items(self) -> list:
        return list(zip(self.names, self.proposal.models))

    def critic(self, judges: dict):
        return fit_ensemble_critic(judges, *self.calibration_data, self.p.calibration)

    def candidates(self, critic) -> dict[str, np.ndarray]:
        m = len(self.names)
        ratios = [self.pool.ratios(k, g, self.size, critic) for k, g in self.items()]
        start = critic.log_ratio(self.ctx.calib_real[: self.n]).double().numpy()
        out = {"MH (chains of 40)": simulate_mh(self.rows, ratios, start, 40, self.p.fit_seed + 440)}
        kept = simulate(
            Candidate("drs", (1 / m,) * m, 95.0, "c"), self.rows, {"c": ratios}, self.n, self.p, 3
        )
        if kept is not None:
            out["DRS (γ at p95)"] = kept[0]
        return {k: np.asarray(v).reshape(-1).astype(int) for k, v in out.items()}

    def images(self, rows: np.ndarray) -> torch.Tensor:
        out = []
        for r in rows:
            i, j = divmod(int(r), self.size)
            out.append(self.pool._chunk(Chunk(self.names[i], j // CHUNK), self.proposal.models[i])[j % CHUNK])
        return torch.stack(out)


def write_table(out: Path, run: Path, n: int, table: dict, best: str, started: float, **extra) -> None:
    """Add each row's gain over the `best` row on both FIDs and write the table as JSON to `out`."""
    base = table[best]
    for v in table.values():
        v["fid_vs_best"] = round(1 - v["fid"] / base["fid"], 3)
        v["inception_vs_best"] = round(1 - v["inception_fid"] / base["inception_fid"], 3)
    body = {
        "run": str(run.relative_to(ROOT) if run.is_relative_to(ROOT) else run),
        "n": n,
        **extra,
        "reference": "choice quarter of the calibration half",
        "rows": table,
        "seconds": round(time.perf_counter() - started, 1),
    }
    out.write_text(json.dumps(body, indent=1) + "\n")


def critics(pl: Pool) -> dict:
    """label -> a calibrated critic (see the module docstring)."""
    defaults = critics_of(pl.ctx, "critic_features")
    train = load_dataset(pl.ens.cfg.data, "train").x[:N_TRAIN]
    fake = pooled_samples(pl.ens.generators(), N_TRAIN, 17, one_stream=True)
    source = feature_source(pl.ens.cfg.data.name)
    feature_judge = fit_feature_judge(train, fake, source, JudgeConfig("features", 200), 0)
    finetuned = finetune_copies(pl.ens.discriminators(), train, fake, JudgeConfig("finetuned", 500), 0)
    return {
        "features": defaults["features"],
        "features, train split": pl.critic({"features": feature_judge}),
        "finetuned": defaults["judges"],
        "finetuned, train split": pl.critic(finetuned),
        "both": pl.critic({**finetuned, "features": feature_judge}),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=RUN)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    started = time.perf_counter()
    pl = Pool(args.run)
    inception = get_extractor("inception", "cpu")

    def inception_fid(x: torch.Tensor, stats: tuple) -> float:
        f = inception.extract(as_saved_images(x)).features.astype(np.float64)
        return float(frechet_distance(*feature_stats(f), *stats))

    real_stats = feature_stats(inception.extract(as_saved_images(pl.ctx.choose_real[: pl.n])).features)
    m = len(pl.names)
    best = int(np.argmin([pl.crit(pl.feats[r[: pl.n, 0]]) for r in pl.rows]))
    uniform = (
        simulate(Candidate("u", (1 / m,) * m, None), pl.rows, {}, pl.n, pl.p, 1)[0].reshape(-1).astype(int)
    )
    rows = {f"best member ({pl.names[best]})": pl.rows[best][: pl.n, 0], "uniform mixture": uniform}
    for label, critic in critics(pl).items():
        rows |= {f"{how}, {label} critic": r for how, r in pl.candidates(critic).items()}
    table = {}
    for label, r in rows.items():
        table[label] = {
            "fid": round(pl.crit(pl.feats[r]), 3),
            "inception_fid": round(inception_fid(pl.images(r), real_stats), 2),
        }
        print(
            f"{label:44s} classifier FID {table[label]['fid']:7.3f}  Inception FID {table[label]['inception_fid']:7.2f}",
            flush=True,
        )
    write_table(OUT, args.run, pl.n, table, f"best member ({pl.names[best]})", started)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
