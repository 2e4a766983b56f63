"""The report's evaluation tables: read saved evaluations (checked), and render each with how it was
measured (features, n, reference), the best row per column in bold, and small n marked."""

from __future__ import annotations

import html
from collections.abc import Collection
from pathlib import Path
from typing import Any

from gensemble.artefacts import ArtefactError, read_artefact
from gensemble.errors import shown
from gensemble.evaluation.evaluate import HIGHER_IS_BETTER, WARN_N, crownable


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return esc(v)


STD_OF = {"kid": "kid_std", "is": "is_std"}  # shown as "mean ± std" in one cell


def evaluation_heading(ev: dict[str, Any]) -> str:
    """Which features, how many samples and which reference produced a table; small n is marked."""

    n = ev.get("n")
    small = isinstance(n, int) and n < WARN_N
    badge = f" <span class='small-n'>small n: below {WARN_N}, FID/KID/PRDC are noisy</span>" if small else ""
    notes = "".join(f"<li>{esc(x)}</li>" for x in ev.get("notes", []))
    return (
        f"<h3 class='evaluation-meta'>features: {esc(ev.get('features', '?'))} · n = {esc(n)} per row · "
        f"reference: {esc(ev.get('reference', '?'))}{badge}</h3>"
        + (f"<ul class='muted'>{notes}</ul>" if notes else "")
    )


def evaluation_table(evaluation: dict[str, dict[str, Any]], self_graded: Collection[str] = ()) -> str:
    """An HTML table, rows = floor/members/fusions; the best member or fusion per column in bold.

    Directions come from `gensemble.evaluation.evaluate.HIGHER_IS_BETTER`; columns without one (density,
    acceptance rate) and columns where every row ties get no highlight, and the floor never does.
    """

    rows = list(evaluation)
    stds = set(STD_OF.values())
    cols: list[str] = []
    for r in rows:
        cols += [
            c
            for c, v in evaluation[r].items()
            if c not in cols and c not in stds and isinstance(v, (int, float))
        ]
    best: dict[str, float] = {}
    for c in cols:
        better = HIGHER_IS_BETTER.get(c)
        numeric = [
            r for r in rows if isinstance(evaluation[r].get(c), (int, float)) and not r.startswith("real")
        ]
        values = [evaluation[r][c] for r in numeric if crownable(c, evaluation[r])]
        if better is not None and values and len({evaluation[r][c] for r in numeric}) > 1:
            best[c] = max(values) if better else min(values)
    arrow = {True: " ↑", False: " ↓", None: ""}
    head = "".join(f"<th>{esc(c)}{arrow[HIGHER_IS_BETTER.get(c)]}</th>" for c in cols)
    body = []
    for r in rows:
        cells = []
        for c in cols:
            v = evaluation[r].get(c)
            text = _fmt(v) if v is not None else "–"
            if v is not None and STD_OF.get(c) in evaluation[r]:
                text += f" ± {evaluation[r][STD_OF[c]]:.2g}"  # two digits: the spread, not noise
            is_best = c in best and v == best[c] and not r.startswith("real") and crownable(c, evaluation[r])
            cells.append(f'<td class="{"best" if is_best else ""}">{text}</td>')
        mark = (
            " <span class='self-graded' title='graded on a space that steered it'>†</span>"
            if r in self_graded
            else ""
        )
        body.append(f"<tr><th>{esc(r)}{mark}</th>{''.join(cells)}</tr>")
    table = f'<table id="evaluation"><tr><th></th>{head}</tr>{"".join(body)}</table>'
    return f'<div class="scroll">{table}</div>'


def also_graded_tables(ev: dict[str, Any]) -> str:
    """The same samples graded on further spaces (FID and KID), self-graded rows marked †, and what
    steered each fusion: the steered figures beside the independent ones, labelled."""
    parts = []
    steered = {r: s for r, s in ev.get("steered_by", {}).items() if s}
    if steered:
        items = "".join(f"<li>{esc(r)}: {esc(', '.join(s))}</li>" for r, s in steered.items())
        parts.append(
            "<p class='muted'>Steered by (the spaces a critic, weight, choice or selection was fitted on; "
            "† marks a row graded on one of them: self-graded, never the headline):</p>"
            f"<ul class='muted'>{items}</ul>"
        )
    for space, entry in ev.get("also_graded", {}).items():
        rows = {
            r: {k: v for k, v in vals.items() if k in ("fid", "kid")}
            for r, vals in entry.get("rows", {}).items()
        }
        parts.append(f"<h4>The same samples on {esc(space)} features</h4>")
        parts.append(evaluation_table(rows, entry.get("self_graded", [])))
    return "".join(parts)


def read_evaluation_file(path: Path, members: Collection[str] | None = None) -> dict[str, Any]:
    """A whole saved evaluation, checked (artefacts.check_evaluation): its rows, how it was measured,
    and the raw file (for what `auto` chose)."""
    raw = read_artefact("evaluation", path, members)
    if raw is None:
        raise ArtefactError(f"{shown(str(path))} is missing; run 'gensemble evaluate' to write it")
    rows = raw.get("rows", raw)
    return {
        "rows": rows,
        "self_graded": [str(r) for r in raw.get("self_graded", [])] if "rows" in raw else [],
        "also_graded": raw.get("also_graded", {}) if "rows" in raw else {},
        "steered_by": raw.get("steered_by", {}) if "rows" in raw else {},
        "features": str(raw.get("features", "?")),
        "n": raw.get("n") if isinstance(raw.get("n"), int) else None,
        "reference": str(raw.get("reference", "?")),
        "notes": [str(x) for x in raw.get("notes", [])],
        "failed_members": dict(raw.get("failed_members", {})) if "rows" in raw else {},
        "raw": raw,
    }
