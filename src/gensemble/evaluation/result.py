"""The evaluation table: rows of metric values, how they were measured, and which row is best."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from gensemble.fusion.base import self_graded
from gensemble.metrics.suite import directions

FLOOR_ROW = "real:train-vs-test"
# Precision (and density) of a collapsed generator is high: it is crowned only with recall above this.
RECALL_FLOOR = 0.1

# Direction of each key, for marking the best row; None: no direction (density > 1 is not "better").
HIGHER_IS_BETTER: dict[str, bool | None] = {
    **directions(),  # every metric's columns, from the registry
    "acceptance_rate": None,
    "top_share": None,
    "fid_matched": False,  # FID after matching the reference's class (cluster) histogram
    "fid_own": False,  # a partition member's FID to its own cluster of the reference (a specialist's fair grade)
}
SELF_GRADED_MARK = "†"


def crownable(col: str, row: dict[str, Any]) -> bool:
    """Whether `row` may be marked best in column `col`: precision and density only with recall (or,
    without recall, coverage) above RECALL_FLOOR, so a generator that collapsed onto one good blob
    is never crowned for the quality of that blob."""
    if col not in ("precision", "density"):
        return True
    spread = row.get("recall", row.get("coverage"))
    return not isinstance(spread, (int, float)) or spread >= RECALL_FLOOR


@dataclass(frozen=True)
class EvalResult:
    """Rows (floor, members, fusions) of metric values, and how they were measured."""

    rows: dict[str, dict[str, float]]
    features: str
    n: int
    seed: int
    metrics: tuple[str, ...]
    reference: str
    notes: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)
    # The same samples graded on further spaces (space -> rows of fid, kid), and each row's steering.
    graded: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    steered_by: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def self_graded(self, space: str | None = None) -> list[str]:
        """Rows graded on `space` (default: this table's) by a space that steered them."""
        space = self.features if space is None else space
        return [r for r, s in self.steered_by.items() if self_graded(s, space)]

    def to_json(self) -> dict[str, dict[str, float]]:
        """{"<row>": {"<metric>": value}}: the rows' metrics (evaluation.json's 'rows')."""
        return {row: dict(values) for row, values in self.rows.items()}

    def to_cli_json(self) -> dict[str, dict[str, Any]]:
        """What `evaluate --json` prints: each row's metrics and, where the reference's classes (or
        k-means clusters) are known, its `class_shares` ({class: share of its samples}) and
        `worst_class` (the reference's own shares are in evaluation.json's 'per_class')."""
        out: dict[str, dict[str, Any]] = self.to_json()
        table = self.info.get("per_class")
        if table:
            for row, shares in table["rows"].items():
                if row in out:
                    out[row]["class_shares"] = dict(zip(table["classes"], shares))
                    if row in table["worst"]:
                        out[row]["worst_class"] = table["worst"][row]["class"]
        return out

    def to_file_json(self) -> dict[str, Any]:
        """What RUN/evaluation.json holds: the rows and how they were measured."""
        return {
            "rows": self.to_json(),
            "features": self.features,
            "n": self.n,
            "seed": self.seed,
            "metrics": list(self.metrics),
            "reference": self.reference,
            "floor_row": FLOOR_ROW,
            "notes": list(self.notes),
            "steered_by": {r: list(s) for r, s in self.steered_by.items()},
            "self_graded": self.self_graded(),
            "also_graded": {
                space: {"rows": {r: dict(v) for r, v in rows.items()}, "self_graded": self.self_graded(space)}
                for space, rows in self.graded.items()
            },
            **self.info,
        }

    def best(self) -> dict[str, set[str]]:
        """The best row(s) per column with a direction, among members and fusions (not the floor)."""
        out: dict[str, set[str]] = {}
        rows = {r: v for r, v in self.rows.items() if r != FLOOR_ROW}
        for col in {c for v in rows.values() for c in v}:
            direction = HIGHER_IS_BETTER.get(col)
            values = {r: v[col] for r, v in rows.items() if isinstance(v.get(col), (int, float))}
            if direction is None or len(set(values.values())) < 2:
                continue  # nothing to choose between
            values = {r: v for r, v in values.items() if crownable(col, rows[r])}
            if not values:
                continue
            target = max(values.values()) if direction else min(values.values())
            out[col] = {r for r, v in values.items() if v == target}
        return out

    def format(self) -> str:
        """An aligned table, rows x metrics, best per column marked with *, then how it was measured."""
        cols: list[str] = []
        for values in self.rows.values():
            cols += [c for c in values if c not in cols and c not in ("kid_std", "is_std")]
        best = self.best()

        def cell(row: str, col: str) -> str:
            v = self.rows[row].get(col)
            if v is None:
                return "-"
            text = str(v) if isinstance(v, int) else f"{v:.4g}"
            std = {"kid": "kid_std", "is": "is_std"}.get(col)
            if std and std in self.rows[row]:
                text += f" ± {self.rows[row][std]:.2g}"
            return text + ("*" if row in best.get(col, ()) else "")

        arrows = {True: " ↑", False: " ↓", None: ""}
        header = ["row", *(c + arrows[HIGHER_IS_BETTER.get(c)] for c in cols)]
        body = [[r, *(cell(r, c) for c in cols)] for r in self.rows]
        widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
        lines = [
            "  ".join(t.ljust(w) if i == 0 else t.rjust(w) for i, (t, w) in enumerate(zip(line, widths)))
            for line in [header, *body]
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        marked = set(self.self_graded())
        lines = [
            lines[0],
            lines[1],
            *(ln + (f" {SELF_GRADED_MARK}" if r in marked else "") for r, ln in zip(self.rows, lines[2:])),
        ]
        lines += [
            "",
            f"features: {self.features}; n = {self.n} per row; reference: {self.reference}; seed {self.seed}",
            *self.steering_lines(),
            f"{FLOOR_ROW}: {self.n} training examples in a generator's place, the best score at this n "
            "(KID is unbiased, so near zero it can come out slightly negative). * marks the best member or "
            "fusion per column.",
            *self.notes,
        ]
        return "\n".join(lines)

    def steering_lines(self) -> list[str]:
        """What steered which row, the rows graded on a space that steered them, and the further spaces."""
        lines = []
        steered = {r: s for r, s in self.steered_by.items() if s}
        if steered:
            lines.append(
                "steered by: "
                + "; ".join(f"{r} by {', '.join(s)}" for r, s in steered.items())
                + f". {SELF_GRADED_MARK} marks a row graded on a space that steered it (self-graded: never "
                "the headline)."
            )
        for space, rows in self.graded.items():
            marked = set(self.self_graded(space))
            cells = []
            for r, v in rows.items():
                fid_v, kid_v = v.get("fid"), v.get("kid")
                if isinstance(fid_v, (int, float)):
                    kid_text = f", KID {kid_v:.4g}" if isinstance(kid_v, (int, float)) else ""
                    cells.append(f"{r} FID {fid_v:.4g}{kid_text}{SELF_GRADED_MARK if r in marked else ''}")
            lines.append(f"on {space} features too (same samples): " + "; ".join(cells))
        return lines


def evaluation_key(result: EvalResult) -> str:
    """A file name for one kind of evaluation: features, n, and which reference."""
    folder = result.info.get("reference_folder")
    ref = "heldout" if folder is None else "reference-" + hashlib.sha1(str(folder).encode()).hexdigest()[:8]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", result.features)
    return f"{safe}-n{result.n}-{ref}"


# Below this many samples a row's FID/KID/PRDC are noisy (evaluate marks such rows).
WARN_N = 500
# A margin below this is called "within noise": two draws of one generator at n = 2,000 differed by
# 2.7% in FID on the demo run (dcgan-a's row, 24.08, against `fusion:best`, its own other 2,000
# samples, 24.72), so a smaller gap is not evidence that one row beats another.
NOISE_PCT = 3.0


def verdict(
    rows: dict[str, dict[str, Any]],
    metric: str = "fid",
    features: str | None = None,
    n: int | None = None,
    exclude: Collection[str] = (),
) -> str | None:
    """One sentence: whether the best fusion beat the best member on `metric` (lower is better for
    fid/kid, higher for the others with a direction), by how much, and on which evaluation
    (`features`, `n`); "within noise" when n < WARN_N or the margin is under NOISE_PCT. None
    without both kinds of row."""
    higher = HIGHER_IS_BETTER.get(metric)
    if higher is None:
        return None
    members = {  # a failed member (`exclude`) is never the best member either
        k: r[metric]
        for k, r in rows.items()
        if ":" not in k and k not in exclude and isinstance(r.get(metric), (int, float))
    }
    fusions = {  # a row graded on a space that steered it (`exclude`) is never the headline
        k: r[metric]
        for k, r in rows.items()
        if k.startswith("fusion:") and k not in exclude and isinstance(r.get(metric), (int, float))
    }
    if not members or not fusions:
        return None
    pick = max if higher else min
    # `auto` chose itself on held-out data, so it leads; otherwise the best fusion evaluated.
    m_name = pick(members, key=members.get)
    f_name = "fusion:auto" if "fusion:auto" in fusions else pick(fusions, key=fusions.get)
    m, f = members[m_name], fusions[f_name]
    gain = (f - m) if higher else (m - f)
    rel = abs(gain) / abs(m) * 100 if m else float("inf")
    basis = f" ({features} features, n = {n} per row)" if features and n else ""
    numbers = f"{f_name} reaches {metric} {f:.4g} against {m:.4g} for {m_name}"
    if n is not None and n < WARN_N:
        return (
            f"Within noise: at n = {n} per row (under {WARN_N}) this evaluation cannot tell whether the "
            f"fused ensemble beat its best member{basis}; {numbers}."
        )
    if rel < NOISE_PCT:
        return (
            f"Within noise: the fused ensemble and its best member differ by {rel:.1f}%, less than the "
            f"{NOISE_PCT:g}% two draws of one generator differ by{basis}; {numbers}."
        )
    if gain > 0:
        return f"The fused ensemble beat its best member{basis}: {numbers}, {rel:.1f}% better."
    # auto leads even where another fusion scored better here: picking that one would be a choice
    # made on the evaluation half, so the sentence says which fusion it is and why.
    which = "the fusion chosen on held-out data" if f_name == "fusion:auto" else "the best fusion"
    return f"The fused ensemble did not beat its best member{basis}: {which}, {numbers}, {rel:.1f}% worse."
