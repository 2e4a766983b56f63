"""Has a member failed? Pure checks over what a run already records, one warning line each.

A GAN can fail without an error: its discriminator wins outright, the generator's loss climbs, and
the samples become patterns that share nothing with the data. Every command that reads a run asks
these checks (train at its end, score, evaluate, the report), so a failed member is named wherever
its numbers appear, and the report leaves it out of the headline's "best member".

* `curve_problems`: the loss log (metrics.jsonl): the discriminator saturated over most of the second
  half of training, or the generator's loss diverging;
* `judged_problems`: S(G) near 0 under every judge of the tournament;
* `colour_problems`: samples whose per-channel mean or spread is far from the reference's.

The thresholds are set from runs that failed and runs that trained well: a saturated DCGAN logged
d_real 0.995 and d_fake 0.004 from step 100 with loss_g rising from 5 to 8, while the demo's members
keep d_real 0.6-0.9, d_fake 0.03-0.3 and loss_g 0.7-3.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gensemble.safepath import read_text
from gensemble.strictjson import strict_loads

SATURATED_REAL, SATURATED_FAKE = 0.97, 0.03  # D's mean P(real) on real and on fake batches
SATURATED_SHARE = 0.6  # of the logged steps in the second half of training
MIN_RECORDS = 4  # logged steps in the second half needed to judge a curve
DIVERGING_LOSS = 4.0  # loss_g of the non-saturating loss at which D rejects nearly every sample
S_G_FAILED = 0.01  # S(G), the mean calibrated P(real) across judges
COLOUR_MEAN_GAP = 0.25  # per-channel mean gap, in units of the data's range [-1, 1]
COLOUR_SPREAD_RATIO = 2.5  # per-channel std ratio, either way

ADVICE = (
    "try model.spectral_norm: true, a lower discriminator rate (optim.lr_d), more steps or more "
    "images; `gensemble train CONFIG --dry-run` shows the resolved recipe"
)
LOOK = "look at its samples (gensemble sample RUN --member NAME -o grid.png) and train it longer"


def read_curves(run_dir: Path) -> dict[str, list[dict[str, float]]]:
    """metrics.jsonl by member. Lines a crash cut short, or that are not a member's numbers at a
    step, are skipped: the log is appended while training, so its last line may be partial."""
    curves: dict[str, list[dict[str, float]]] = {}
    text = read_text(run_dir, "metrics.jsonl")  # no link, FIFO or device; size-capped
    if text is None:
        return curves
    for line in text.splitlines():
        try:
            rec = strict_loads(line)
        except (ValueError, RecursionError):
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("member"), str):
            continue
        values = {
            k: float(v)
            for k, v in rec.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        }
        if "step" in values:
            curves.setdefault(rec["member"][:200], []).append(values)
    return curves


def curve_problems(curves: dict[str, list[dict[str, float]]]) -> dict[str, str]:
    """Members whose loss log shows a failed GAN, with why and what to try (VAEs log no D)."""
    out = {}
    for member, rows in curves.items():
        rows = sorted((r for r in rows if "d_real" in r and "d_fake" in r), key=lambda r: r["step"])
        late = rows[len(rows) // 2 :]
        if len(late) < MIN_RECORDS:
            continue
        saturated = [r for r in late if r["d_real"] > SATURATED_REAL and r["d_fake"] < SATURATED_FAKE]
        losses = [r["loss_g"] for r in rows if "loss_g" in r]
        if len(saturated) >= SATURATED_SHARE * len(late):
            real = float(np.median([r["d_real"] for r in saturated]))
            fake = float(np.median([r["d_fake"] for r in saturated]))
            out[member] = (
                f"its discriminator won outright in {len(saturated)} of the last {len(late)} logged steps "
                f"(d_real {real:.3f}, d_fake {fake:.3f}): the generator learns nothing from it; {ADVICE}"
            )
        elif len(losses) >= 2 * MIN_RECORDS:
            q = len(losses) // 4
            early, end = float(np.median(losses[:q])), float(np.median(losses[-q:]))
            if end > DIVERGING_LOSS and end > 2.0 * early:
                out[member] = (
                    f"its generator loss diverged (median {early:.2f} early, {end:.2f} at the end); {ADVICE}"
                )
    return out


def judged_problems(scores: dict[str, float]) -> dict[str, str]:
    """Members every judge rejects: S(G) near 0 (the tournament's generator scores)."""
    return {
        g: f"every judge rejects its samples (S(G) = {s:.3f}); {LOOK.replace('NAME', g)}"
        for g, s in scores.items()
        if math.isfinite(s) and s < S_G_FAILED
    }


def channel_stats(x: np.ndarray) -> np.ndarray:
    """Per-channel mean and std of images (N, C, H, W) in [-1, 1]: (2, C)."""
    flat = np.asarray(x, dtype=np.float64).transpose(1, 0, 2, 3).reshape(x.shape[1], -1)
    return np.stack([flat.mean(1), flat.std(1)])


def colour_problems(samples: dict[str, np.ndarray], reference: np.ndarray) -> dict[str, str]:
    """Members whose samples' per-channel mean or spread is far from the reference images'."""
    ref = channel_stats(reference)
    out = {}
    for member, x in samples.items():
        if x.ndim != 4 or x.shape[1] != reference.shape[1]:
            continue
        got = channel_stats(x)
        gap = float(np.abs(got[0] - ref[0]).max())
        ratio = float(np.max(np.maximum(got[1], 1e-6) / np.maximum(ref[1], 1e-6)))
        ratio = max(ratio, float(np.max(np.maximum(ref[1], 1e-6) / np.maximum(got[1], 1e-6))))
        if gap > COLOUR_MEAN_GAP or ratio > COLOUR_SPREAD_RATIO:
            out[member] = (
                f"its samples' colours are far from the data's (channel mean off by up to {gap:.2f}, "
                f"spread off by up to {ratio:.1f}x); {LOOK.replace('NAME', member)}"
            )
    return out


def merge(*found: dict[str, str]) -> dict[str, str]:
    """One reason per member (the first check that flagged it)."""
    out: dict[str, str] = {}
    for problems in found:
        for member, why in problems.items():
            out.setdefault(member, why)
    return out


def warning_lines(problems: dict[str, str]) -> list[str]:
    """One line per failed member: what is wrong and what to try."""
    return [f"member '{m}' looks failed: {why}" for m, why in problems.items()]
