"""The report's first sentence: whether the fused ensemble beat its best member, graded on a space
that nothing steering its fusion rows used, with the steered figure beside it, labelled.

A row graded on a feature space that shaped its samples (a critic, weight, choice or selection
fitted on it: `steered_by`) grades itself (Kynkäänniemi et al., ICLR 2023); such a row is never the
headline. Raw pixels never carry the headline either: they measure pixel statistics, which blur wins.
"""

from __future__ import annotations

from typing import Any

from gensemble.evaluation.result import verdict

NOT_HEADLINE_SPACES = ("pixels", "points")


def independence(ev: dict[str, Any]) -> int:
    """How fit an evaluation is to carry the headline: 2 when no fusion row in it is graded on a space
    that steered it, 1 when only some are, 0 on raw pixels (or 2-D points) or with no fusion row."""
    fusions = [r for r in ev["rows"] if r.startswith("fusion:")]
    graded_self = set(ev.get("self_graded", []))
    if ev.get("features") in NOT_HEADLINE_SPACES or not fusions:
        return 0
    return 2 if not graded_self.intersection(fusions) else 1


def headline_evaluation(evaluations: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The evaluation the first sentence rests on: the most independent, then the largest n (the
    latest among equals). Its self-graded rows are left out of the sentence in any case."""
    if not evaluations:
        return None
    return max(evaluations, key=lambda e: (independence(e), e["n"] or 0))


def headline(ev: dict[str, Any]) -> str | None:
    """The first sentence, then the steered figure beside it where a further space steered the row."""
    graded_self = set(ev.get("self_graded", []))
    failed = dict(ev.get("failed_members", {}))
    first = verdict(ev["rows"], features=ev["features"], n=ev["n"], exclude=graded_self | set(failed))
    if first is not None and failed:
        first += f" Left out of the best member as failed: {', '.join(sorted(failed))}."
    if first is not None:
        first += dominated(ev, graded_self)
    if first is None:
        if graded_self and any(r.startswith("fusion:") for r in ev["rows"]):
            return (
                f"No independent verdict: every fusion here was steered by {ev['features']} features, the "
                "space it is graded on; evaluate on another space (gensemble evaluate RUN --features effnet-lite0)."
            )
        return None
    beside = [steered_figure(space, entry, ev["n"]) for space, entry in ev.get("also_graded", {}).items()]
    return " ".join([first, *(b for b in beside if b)])


def steered_figure(space: str, entry: dict[str, Any], n: int | None) -> str | None:
    """`fusion:auto`'s margin over the best member on a space that steered it, labelled as such."""
    rows, graded_self = entry.get("rows", {}), set(entry.get("self_graded", []))
    lead = (
        "fusion:auto" if "fusion:auto" in rows else next((r for r in rows if r.startswith("fusion:")), None)
    )
    members = {
        r: v["fid"] for r, v in rows.items() if ":" not in r and isinstance(v.get("fid"), (int, float))
    }
    if (
        lead is None
        or lead not in graded_self
        or not members
        or not isinstance(rows[lead].get("fid"), (int, float))
    ):
        return None
    best = min(members, key=members.get)
    f, m = rows[lead]["fid"], members[best]
    rel = (m - f) / m * 100 if m else 0.0
    return (
        f"On {space} features, which steered {lead} (self-graded, not the headline): fid {f:.4g} against "
        f"{m:.4g} for {best}, {abs(rel):.1f}% {'better' if rel > 0 else 'worse'}."
    )


DOMINATED = 0.9  # a fusion drawing this share from one member is that member, refined


def dominated(ev: dict[str, Any], graded_self: set[str]) -> str:
    """' fusion:X draws 93% of its samples from vae: that member, refined.' for the headline's fusion
    (auto where evaluated, else the best) when one member dominates it; '' otherwise."""
    rows = ev["rows"]
    fusions = {
        r: v["fid"]
        for r, v in rows.items()
        if r.startswith("fusion:") and r not in graded_self and isinstance(v.get("fid"), (int, float))
    }
    if not fusions:
        return ""
    lead = "fusion:auto" if "fusion:auto" in fusions else min(fusions, key=fusions.get)
    shares = ev.get("raw", {}).get("member_shares", {}).get(lead, {})
    if len(shares) < 2:
        return ""
    top = max(shares, key=shares.get)
    if shares[top] < DOMINATED:
        return ""
    return f" {lead} draws {100 * shares[top]:.0f}% of its samples from {top}: that member, refined."
