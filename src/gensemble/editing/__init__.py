"""Editing with the ensemble: complete an image with a hole, find the member that explains an image
best, and walk the latent path between two images.

    latent.py    latent search (projection) of one member
    masks.py     holes from a box or a mask image
    complete.py  every member proposes, the critics choose (pure tensors)

The functions here take a run (folder or loaded Ensemble) and tensors and return tensors and
dicts; `gensemble.editing.files` reads and writes the image files for the CLI.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from gensemble.artefacts import strict_loads
from gensemble.checkpoint import atomic_write_text
from gensemble.config import to_dict
from gensemble.data import heldout_halves, load_dataset
from gensemble.editing.complete import (
    ENSEMBLE,
    Completion,
    CompletionConfig,
    CostModel,
    complete_images,
    fit_cost_model,
    hole_mse,
    psnr,
)
from gensemble.editing.latent import CHUNK, SearchConfig, search
from gensemble.errors import ConfigError, DataError, GensembleError
from gensemble.fusion.critic import fit_ensemble_critic
from gensemble.imageio import labelled_sheet_png
from gensemble.safepath import read_bytes
from gensemble.sampling import pooled_samples

if TYPE_CHECKING:
    from gensemble.run import Ensemble


@dataclass
class Editor:
    """A run prepared for editing: its image members and, when it has discriminators, the ensemble
    critic fitted once on the calibration half of its held-out data against its own samples."""

    ens: Ensemble
    generators: dict[str, Any]
    critic: Any
    heldout: Tensor  # the evaluation half of the held-out split: images the critic never saw
    calibration: Tensor  # the calibration half: what the critic and the cost model are fitted on
    cfg: CompletionConfig = field(default_factory=CompletionConfig)
    _cost: CostModel | None = None

    @classmethod
    def build(cls, ens: Ensemble, cfg: CompletionConfig = CompletionConfig()) -> Editor:

        if len(ens.shape) != 3:
            raise ConfigError(
                f"run {str(ens.run_dir)!r} models points of shape {ens.shape}, not images; completion needs an image run"
            )
        generators = dict(ens.generators())
        cal, evaluation = heldout_halves(load_dataset(ens.cfg.data, "test"), 0)
        critic = None
        discs = ens.discriminators()
        if discs:
            real = cal[: cfg.n_critic_fit]
            critic = fit_ensemble_critic(discs, real, pooled_samples(generators, len(real), seed=1))
        return cls(ens, generators, critic, evaluation, cal, cfg)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.ens.shape)

    def check_images(self, x: Tensor, names: list[str]) -> None:
        """Images must have the run's channels and size; say what it takes."""
        c, h, w = self.shape
        for img, name in zip(x, names):
            if tuple(img.shape) != (c, h, w):
                kind = "greyscale" if c == 1 else "RGB"
                raise DataError(
                    f"image {name!r} is {img.shape[0]}-channel {img.shape[2]}×{img.shape[1]} but this run takes "
                    f"{kind} {w}×{h} images; convert and resize it first"
                )

    def cost_model(self) -> CostModel:
        """How much to trust each member, fitted once on calibration images with random holes (cached
        in RUN/completion/cost_model.json for this checkpoint and these settings)."""
        if self._cost is None:
            self._cost = load_or_fit_cost_model(self)
        return self._cost

    def complete(
        self, x: Tensor, hole: Tensor, cfg: CompletionConfig | None = None, learned: bool = True
    ) -> Completion:
        """Complete x where hole is 1. `learned`: choose by the fitted cost model (and offer the ensemble's
        blend); otherwise by the config's fixed weights."""
        cfg = cfg or self.cfg
        model = self.cost_model() if learned else None
        return complete_images(self.generators, x, hole, self.critic, cfg, model)

    def project(self, x: Tensor, cfg: SearchConfig = SearchConfig()) -> dict[str, Any]:
        """How well each member reproduces each image (all pixels known): error, PSNR, the critic's view."""
        known = torch.ones(len(x), 1, *x.shape[2:])
        members = {}
        for name, model in self.generators.items():
            proj = search(model, x, known, cfg)
            row = {"mse": proj.known_mse, "psnr": psnr(proj.known_mse), "z": proj.z}
            if self.critic is not None:
                row["critic_p_reconstruction"] = self.critic.prob(proj.image)
            members[name] = row
        out: dict[str, Any] = {"members": members}
        if self.critic is not None:
            out["critic_p_image"] = self.critic.prob(x)
        errors = torch.stack([m["mse"] for m in members.values()])
        out["best"] = [list(members)[i] for i in errors.argmin(0).tolist()]
        out["best_mse"] = errors.min(0).values
        return out

    def typical_error(self, n: int = 32, cfg: SearchConfig = SearchConfig()) -> float:
        """An image is unlike the training data when its best member's error exceeds this: the mean
        plus three standard deviations of log error over `n` held-out images (geometric: errors are
        skewed)."""
        logs = torch.log(self.project(self.heldout[:n], cfg)["best_mse"].clamp(min=1e-12))
        return float(torch.exp(logs.mean() + 3 * logs.std()))


def calibration_holes(n: int, height: int, width: int, seed: int = 0) -> Tensor:
    """(n, 1, H, W): boxes of half the width and height (a quarter of the image) at random positions."""
    gen = torch.Generator().manual_seed(seed)
    bh, bw = max(1, height // 2), max(1, width // 2)
    ys = torch.randint(0, height - bh + 1, (n,), generator=gen)
    xs = torch.randint(0, width - bw + 1, (n,), generator=gen)
    holes = torch.zeros(n, 1, height, width)
    for i, (y, x) in enumerate(zip(ys.tolist(), xs.tolist())):
        holes[i, :, y : y + bh, x : x + bw] = 1.0
    return holes


def load_or_fit_cost_model(editor: Editor) -> CostModel:
    import json

    cfg = editor.cfg
    key = {
        "step": editor.ens.step,
        "search": to_dict(cfg.search),
        "n": cfg.n_cost_fit,
        "critic": editor.critic is not None,
    }
    path = editor.ens.run_dir / "completion" / "cost_model.json" if editor.ens.run_dir is not None else None
    if path is not None:
        try:
            raw = read_bytes(editor.ens.run_dir, path, limit=1 << 20)  # no link out of the run
            saved = strict_loads(raw) if raw is not None else {}
            if saved.get("key") == key and set(saved["weights"]) == {*editor.generators, ENSEMBLE}:
                return CostModel(
                    {k: torch.tensor(v, dtype=torch.float32) for k, v in saved["weights"].items()},
                    saved["n_images"],
                )
        except (OSError, ValueError, KeyError, TypeError, RecursionError, GensembleError):
            pass  # a damaged cache is refitted, never trusted
    x = editor.calibration[-cfg.n_cost_fit :]
    announce_fit(editor, x, cfg.search, path)
    model = fit_cost_model(
        editor.generators, x, calibration_holes(len(x), *x.shape[2:]), editor.critic, cfg.search
    )
    if path is not None:
        try:
            weights = {k: [round(float(v), 8) for v in w] for k, w in model.weights.items()}
            atomic_write_text(
                path,
                json.dumps({"key": key, "weights": weights, "n_images": model.n_images}, indent=1),
                editor.ens.run_dir,
            )
        except (OSError, GensembleError):
            pass  # a read-only run folder: fit again next time
    return model


def announce_fit(editor: Editor, x: Tensor, search_cfg: SearchConfig, path: Path | None) -> float:
    """Say on stderr, before it starts, that the one-time cost-model fit runs and about how long it
    takes here: every member's search, 3 steps on one batch as large as the search's, timed and scaled
    to the fit's size (a smaller probe overstates it: the search runs its rows together)."""
    probe = replace(search_cfg, steps=3)
    k = min(len(x), max(4, CHUNK // max(1, search_cfg.restarts)))
    holes = calibration_holes(k, *x.shape[2:])
    for model in editor.generators.values():  # a first call pays one-off costs the fit never sees
        search(model, x[:1], 1 - holes[:1], replace(search_cfg, steps=1))
    start = time.perf_counter()
    for model in editor.generators.values():
        search(model, x[:k], 1 - holes, probe)
    seconds = (time.perf_counter() - start) * (len(x) / k) * (search_cfg.steps / 3)
    where = f"; kept in {path} for this checkpoint" if path is not None else ""
    print(
        f"[complete] fitting the completion cost model once: {len(editor.generators)} members search "
        f"{len(x)} held-out images, about {seconds:.0f} s here{where}",
        file=sys.stderr,
        flush=True,
    )
    return seconds


def slerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Spherical interpolation between latent codes: stays where a Gaussian prior has its mass."""
    an, bn = a / a.norm(), b / b.norm()
    omega = torch.arccos((an * bn).sum().clamp(-1 + 1e-7, 1 - 1e-7))
    if omega.abs() < 1e-4:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def latent_path(
    editor: Editor, a: Tensor, b: Tensor, steps: int = 8, cfg: SearchConfig = SearchConfig()
) -> tuple[str, Tensor]:
    """Project a and b (C, H, W) into the member that explains both best; decode `steps` codes between."""
    if steps < 2:
        raise ConfigError(f"--steps must be at least 2, got {steps}")
    report = editor.project(torch.stack([a, b]), cfg)
    totals = {name: float(m["mse"].sum()) for name, m in report["members"].items()}
    best = min(totals, key=totals.get)
    za, zb = report["members"][best]["z"]
    codes = torch.stack([slerp(za, zb, i / (steps - 1)) for i in range(steps)])
    model = editor.generators[best]
    with torch.no_grad():
        was = model.training
        model.eval()
        path = model.decode(codes.to(next(model.parameters()).device)).cpu()
        model.train(was)
    return best, path


def completion_quality(c: Completion, target: Tensor, hole: Tensor) -> dict[str, Any]:
    """Hole MSE of every member's candidate and of the choice, against the true pixels (benchmarks)."""
    hole = hole.expand(len(target), 1, *target.shape[2:])
    per_candidate = hole_mse(c.candidates, target.unsqueeze(0), hole.unsqueeze(0))
    members = [i for i, name in enumerate(c.members) if name != ENSEMBLE]  # the oracle picks among members
    oracle_idx = torch.tensor(members)[per_candidate[members].argmin(0)]
    return {
        "per_member": per_candidate,
        "chosen": hole_mse(c.chosen, target, hole),
        "oracle": per_candidate[oracle_idx, torch.arange(len(target))],
        "oracle_index": oracle_idx,
    }


def image_grid_rows(c: Completion, x: Tensor, hole: Tensor) -> Tensor:
    """Rows for a panel: the image with its hole greyed, every member's candidate, the choice."""
    shown = x * (1 - hole) + 0.0 * hole
    cols = [shown, *c.candidates, c.chosen]
    return torch.stack(cols, 1).flatten(0, 1)


def candidates_sheet(c: Completion, x: Tensor, hole: Tensor, names: list[str] | None = None) -> bytes:
    """The labelled candidates sheet: the original, the masked input, each member's fill, the choice
    (a caption names which member it is), one row per image."""
    masked = x * (1 - hole) + 0.0 * hole
    columns = [("original", x), ("masked input", masked)]
    columns += [(f"fill: {m}", cand) for m, cand in zip(c.members, c.candidates)]
    columns.append(("choice", c.chosen))
    captions = [
        f"{(names or [''] * len(x))[i][:12]} -> {c.members[int(k)]}".strip() for i, k in enumerate(c.choice)
    ]
    return labelled_sheet_png(columns, captions)


__all__ = [
    "Completion",
    "CompletionConfig",
    "Editor",
    "SearchConfig",
    "completion_quality",
    "candidates_sheet",
    "image_grid_rows",
    "latent_path",
    "slerp",
]
