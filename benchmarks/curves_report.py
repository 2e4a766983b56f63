"""docs/CURVES.md (and docs/curves-*.png) from docs/results/curves.json: benchmarks/curves.py --render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The independent spaces a Fashion-MNIST row is graded on (nothing in any row steers by them), and
# the steered one kept beside them.
SPACES = (("effnet_fid", "EfficientNet-Lite0 FID"), ("inception_fid", "Inception FID"))
STEERED = ("fid", "classifier FID (steered)")
GOAL = 0.10  # an ensemble row at least 10% below the single model on both independent spaces


def by_budget(rows: list[dict[str, Any]], dataset: str) -> dict[int, dict[str, dict[str, Any]]]:
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for r in rows:
        if r["dataset"] == dataset and "error" not in r:
            out.setdefault(r["budget"], {})[r["method"]] = r
    return dict(sorted(out.items()))


def gain(row: dict[str, Any], single: dict[str, Any], key: str) -> float | None:
    if key not in row or key not in single:
        return None
    return 1.0 - row[key] / single[key]


def verdicts(table: dict[int, dict[str, dict[str, Any]]], dataset: str) -> list[str]:
    """One line per budget: the best ensemble row against the single model on every independent space."""
    lines = []
    for budget, rows in table.items():
        single = rows.get("single")
        if single is None:
            continue
        if dataset == "stacked-mnist":
            best = max(
                (r for m, r in rows.items() if m != "single"), key=lambda r: r["modes_hit"], default=None
            )
            if best is not None:
                lines.append(
                    f"- T = {budget}: {best['method']} hits {best['modes_hit']:.0f} modes against the single "
                    f"model's {single['modes_hit']:.0f} ({'at least as many' if best['modes_hit'] >= single['modes_hit'] else 'fewer'} "
                    "on one sampling seed; the goal `stacked_equal` weighs the re-scored seeds)."
                )
            continue
        scored = []
        for m, r in rows.items():
            gains = [gain(r, single, k) for k, _ in SPACES]
            if m != "single" and all(g is not None for g in gains):
                scored.append((min(gains), m, gains))
        if not scored:
            continue
        worst_gain, m, gains = max(scored)
        met = worst_gain >= GOAL
        parts = ", ".join(f"{label} {100 * g:+.1f}%" for (_, label), g in zip(SPACES, gains))
        lines.append(
            f"- T = {budget}: the best ensemble row on both spaces is **{m}** ({parts} against the single "
            f"model; positive is better): {'meets' if met else 'does not meet'} the 10% goal."
        )
    return lines


def cell(r: dict[str, Any], dataset: str) -> str:
    if dataset == "stacked-mnist":
        return fmt(r.get("modes_hit"))
    return f"{fmt(r.get('effnet_fid'))} / {fmt(r.get('inception_fid'))} ({fmt(r.get('fid'))})"


def summary(rows: list[dict[str, Any]]) -> str:
    """RESULTS.md's marked block: every Fashion-MNIST row on both independent spaces per budget, the
    stacked-MNIST modes, and what the curves say."""
    out = []
    for dataset in ("fashion-mnist", "stacked-mnist"):
        table = by_budget(rows, dataset)
        if not table:
            continue
        methods = list(dict.fromkeys(m for r in table.values() for m in r))
        head = (
            "modes hit of 1000"
            if dataset == "stacked-mnist"
            else "EfficientNet-Lite0 FID / Inception FID (classifier FID, steered)"
        )
        out += [f"**{dataset}**, {head}:", "", "| row | " + " | ".join(f"T = {b}" for b in table) + " |"]
        out.append("|---|" + "---|" * len(table))
        out += [
            f"| {m} | "
            + " | ".join(cell(table[b][m], dataset) if m in table[b] else "-" for b in table)
            + " |"
            for m in methods
        ]
        out += ["", *verdicts(table, dataset), ""]
    return "\n".join(out).rstrip()


def replicate(rows: list[dict[str, Any]], seed: int) -> str:
    """Another training seed's Fashion-MNIST rows (some budgets and kinds only): summary's table and
    verdicts, and the goals judged on that seed's rows alone."""
    fashion = [r for r in rows if r["dataset"] == "fashion-mnist"]
    lines = [
        f"- `{g['name']}` on this seed alone: {g['measured']}: {'met' if g['met'] else 'not met'}."
        for g in goals(fashion)
    ]
    return "\n".join(
        [
            f"**Training seed {seed}**, a replicate (the same recipes and budgets, member seeds 100·{seed} + i; "
            f"`python benchmarks/curves.py --seed {seed} --results docs/results/curves_seed{seed}.json`):",
            "",
            summary(fashion),
            *lines,
        ]
    )


def goals(rows: list[dict[str, Any]], resampled: list[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """fashion_equal_updates: some budget where an ensemble row is 10% below the single model on
    both independent spaces (the best row's worse gain is reported); fashion_equal_wallclock: the
    same against the single model that trained at least as long as the row (of all the single
    model's points, the one with the least training time that is not less than the row's)."""
    table = by_budget(rows, "fashion-mnist")
    singles = sorted((rs["single"] for rs in table.values() if "single" in rs), key=lambda r: r["train_s"])
    out = []
    for name, same_time in (("fashion_equal_updates", False), ("fashion_equal_wallclock", True)):
        best: tuple[float, int, str, list[float], dict[str, Any]] | None = None
        for budget, rs in table.items():
            for m, r in rs.items():
                if m == "single":
                    continue
                if same_time:
                    single = next((s for s in singles if s["train_s"] >= r["train_s"]), None)
                else:
                    single = rs.get("single")
                if single is None:
                    continue
                gains = [gain(r, single, k) for k, _ in SPACES]
                if None in gains:
                    continue
                if best is None or min(gains) > best[0]:
                    best = (min(gains), budget, m, gains, single)
        if best is None:
            continue
        worst, budget, m, gains, single = best
        row = table[budget][m]
        against = (
            f" ({row['train_s']:.0f} s of training) against the single model at T = {single['budget']} "
            f"({single['train_s']:.0f} s)"
            if same_time
            else ""
        )
        out.append(
            {
                "name": name,
                "target": "an ensemble row 10% below the single model's FID on EfficientNet-Lite0 and Inception"
                + (" in no more training time" if same_time else " at equal generator updates"),
                "measured": f"{m} at T = {budget}{against}: "
                + ", ".join(f"{label} {100 * g:+.1f}%" for (_, label), g in zip(SPACES, gains)),
                "met": worst >= GOAL,
            }
        )
    stacked = stacked_goal(rows, list(resampled))
    return out + ([stacked] if stacked else [])


def stacked_goal(rows: list[dict[str, Any]], resampled: list[dict[str, Any]]) -> dict[str, Any] | None:
    """stacked_equal: some budget where an ensemble row hits at least as many modes as the single
    model at equal updates. Where the rows were re-scored at other sampling seeds (`--resample`),
    both sides are the mean over every seed, so that a margin inside the sampling noise is not a win."""

    def hits(budget: int, row: dict[str, Any]) -> list[float]:
        again = [
            r["modes_hit"]
            for r in resampled
            if r["dataset"] == "stacked-mnist" and r["budget"] == budget and r["method"] == row["method"]
        ]
        return [row["modes_hit"], *again]

    best: tuple[float, str] | None = None
    for budget, rs in by_budget(rows, "stacked-mnist").items():
        single = rs.get("single")
        if single is None:
            continue
        s_hits = hits(budget, single)
        for m, r in rs.items():
            if m == "single" or "modes_hit" not in r:
                continue
            e_hits = hits(budget, r)
            margin = sum(e_hits) / len(e_hits) - sum(s_hits) / len(s_hits)
            seeds = (
                ""
                if len(e_hits) == len(s_hits) == 1
                else f" (means over {len(e_hits)} and {len(s_hits)} sampling seeds)"
            )
            text = (
                f"{m} at T = {budget}: {sum(e_hits) / len(e_hits):.1f} modes against the single model's "
                f"{sum(s_hits) / len(s_hits):.1f}{seeds}; range {min(e_hits):.0f}-{max(e_hits):.0f} against "
                f"{min(s_hits):.0f}-{max(s_hits):.0f}"
            )
            if best is None or margin > best[0]:
                best = (margin, text)
    if best is None:
        return None
    return {
        "name": "stacked_equal",
        "target": "an ensemble row covers at least as many stacked-MNIST modes as the single model at equal updates",
        "measured": best[1],
        "met": best[0] >= 0,
    }


def fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.4g}"


def render(rows: list[dict[str, Any]]) -> str:
    out = [
        "# Equal compute: learning curves",
        "",
        "Written by `python benchmarks/curves.py --render` from docs/results/curves.json; the runs are "
        "made by `python benchmarks/curves.py --dataset DATASET` (resumable; see its docstring for the "
        "rows, what steers each and what grades it). A budget T is T generator updates in all: one "
        "model of T steps, or three members of T/3.",
        "",
    ]
    for dataset in ("fashion-mnist", "stacked-mnist"):
        table = by_budget(rows, dataset)
        if not table:
            continue
        methods = list(dict.fromkeys(m for r in table.values() for m in r))
        out += [f"## {dataset}", ""]
        if dataset == "stacked-mnist":
            keys = (("modes_hit", "modes hit of 1000"), ("kl", "KL to uniform"))
        else:
            keys = (*SPACES, STEERED)
        for key, label in keys:
            out += [f"### {label}", "", "| row | " + " | ".join(f"T = {b}" for b in table) + " |"]
            out.append("|---|" + "---|" * len(table))
            for m in methods:
                cells = [fmt(table[b].get(m, {}).get(key)) for b in table]
                out.append(f"| {m} | " + " | ".join(cells) + " |")
            out.append("")
        secs = " | ".join(fmt(table[b].get("single", {}).get("train_s")) for b in table)
        out += ["Training seconds of the single model per budget (this machine, shared): " + secs, ""]
        out += ["What the curves say:", "", *verdicts(table, dataset), ""]
    return "\n".join(out).rstrip() + "\n"
