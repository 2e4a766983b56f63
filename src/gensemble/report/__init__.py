"""The HTML report: one self-contained file (images inlined as base64 PNG) about a run.

`render_report` is pure assembly from a `ReportData`; `report_run` reads that data from what the
run's commands saved (tournament, evaluation, sample grids, completion, loss curves, config) and
writes the file atomically. It samples and scores nothing itself.
Every string that comes from configs, names or metrics is HTML-escaped.
"""

from __future__ import annotations

import base64
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gensemble.artefacts import ArtefactError, read_artefact
from gensemble.checkpoint import atomic_write_text
from gensemble.errors import CheckpointError, GensembleError, shown
from gensemble.evaluation.artefacts import read_grids, read_sample_file
from gensemble.fusion import STANDARD_FUSIONS
from gensemble.health import curve_problems, judged_problems, merge, read_curves
from gensemble.imageio import check_output
from gensemble.plots import figure_png, plt
from gensemble.report.coverage import per_class_section
from gensemble.report.headline import headline as first_sentence
from gensemble.report.headline import headline_evaluation
from gensemble.report.tables import (
    _fmt,
    also_graded_tables,
    esc,
    evaluation_heading,
    evaluation_table,
    read_evaluation_file,
)
from gensemble.run import load_config
from gensemble.runfolder import holder, recover_if_idle, run_lock
from gensemble.safepath import UnsafePathError, files, read_bytes, read_text
from gensemble.tournament.saved import read_tournament


@dataclass
class ReportData:
    title: str
    config_yaml: str
    samples: dict[str, bytes] = field(default_factory=dict)  # label -> PNG (grid or scatter)
    score: dict[str, Any] | None = None  # ScoreTable JSON: generators, discriminators, matrix, ...
    evaluation: dict[str, dict[str, float]] | None = None  # the latest evaluation: row -> metric -> value
    evaluations: list[dict[str, Any]] = field(
        default_factory=list
    )  # every saved evaluation, with how it was measured
    curves: dict[str, list[dict[str, float]]] = field(default_factory=dict)  # member -> metrics.jsonl records
    notes: list[str] = field(default_factory=list)
    completion: tuple[bytes, dict[str, Any]] | None = None  # RUN/completion/panel.png and its summary
    verdict: str | None = None  # one sentence: did the best fusion beat the best member (latest evaluation)
    choice: str | None = None  # what `auto` chose on held-out data, and why
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds (the demo's timings.json)
    per_class: dict[str, Any] | None = None  # the headline evaluation's per-class shares ('per_class')
    exemplars: bytes | None = None  # a PNG of reference images of each of per_class's classes, if saved
    failed: dict[str, str] = field(default_factory=dict)  # member -> why it looks failed (health.py)


def img_tag(png: bytes, alt: str, css: str = "") -> str:
    data = base64.b64encode(png).decode()
    return f'<img class="{css}" alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def heatmap_png(score: dict[str, Any]) -> bytes:
    """The M×N tournament matrix as a heatmap, with bars for S(G_i) and S(D_j)."""

    gens, discs = score["generators"], score["discriminators"]
    matrix = np.asarray(score["matrix"], dtype=float)
    fig, axes = plt.subplots(
        1,
        3,
        figsize=(4 + 0.6 * len(discs) + 6, 1.5 + 0.45 * len(gens)),
        gridspec_kw={"width_ratios": [2, 1, 1]},
    )
    ax = axes[0]
    # A fixed 0..1 scale: these are probabilities, and auto-scaling would exaggerate small gaps.
    im = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(discs)), discs, rotation=45, ha="right")
    ax.set_yticks(range(len(gens)), gens)
    ax.set_xlabel("discriminator D_j")
    ax.set_ylabel("generator G_i")
    ax.set_title("S_Dj(G_i)")
    for i in range(len(gens)):
        for j in range(len(discs)):
            colour = "black" if matrix[i, j] > 0.6 else "white"
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", color=colour, fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046)
    axes[1].barh(range(len(gens)), score["generator_scores"], color="tab:blue")
    axes[1].set_yticks(range(len(gens)), gens)
    axes[1].invert_yaxis()
    axes[1].set_title("S(G_i)")
    axes[2].barh(range(len(discs)), score["discriminator_scores"], color="tab:orange")
    axes[2].set_yticks(range(len(discs)), discs)
    axes[2].invert_yaxis()
    axes[2].set_title("S(D_j)")
    fig.tight_layout()
    return figure_png(fig)


def curves_png(curves: dict[str, list[dict[str, float]]]) -> bytes:
    """One panel per member: every logged loss against the step."""

    names = list(curves)
    cols = min(4, max(1, len(names)))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        recs = curves[name]
        keys = [k for k in recs[0] if k.startswith("loss") or k in ("recon", "kl")] if recs else []
        steps = [r["step"] for r in recs]
        for k in keys:
            ax.plot(steps, [r.get(k, float("nan")) for r in recs], label=k)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    return figure_png(fig)


CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
h1{margin-bottom:0} .muted{color:#666}
.grid{display:flex;flex-wrap:wrap;gap:1em} .card{border:1px solid #ddd;padding:.5em;border-radius:6px}
.card img{max-width:260px;display:block} .card h3{margin:.2em 0;font-size:1em}
table{border-collapse:collapse;margin:1em 0} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4} td.best{font-weight:bold;background:#e6f4e6}
.small-n{color:#a40;font-weight:normal;font-size:.8em}
img.completion,img.exemplars{width:min(100%,560px);image-rendering:pixelated}
pre{background:#f7f7f7;padding:1em;overflow:auto} img{max-width:100%} .scroll{overflow-x:auto}
"""


def auto_choice(saved: dict[str, Any]) -> str | None:
    """One sentence on what `auto` chose, from a saved evaluation (None when it was not evaluated)."""
    choices = saved.get("choices")
    c = choices.get("fusion:auto") if isinstance(choices, dict) else None
    if not isinstance(c, dict) or not isinstance(c.get("chosen"), str):
        return None
    return f"fusion:auto chose {c['chosen']}: {c.get('why', '')}."


def render_report(data: ReportData) -> str:
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{esc(data.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(data.title)}</h1>",
        "<p class='muted'>gensemble report — every image is embedded; this file stands alone.</p>",
    ]
    if data.verdict:
        parts.append(f"<p id='verdict'><strong>{esc(data.verdict)}</strong></p>")
    if data.choice:
        parts.append(f"<p id='auto-choice'>{esc(data.choice)}</p>")
    if data.failed:
        items = "".join(f"<li><strong>{esc(m)}</strong>: {esc(why)}</li>" for m, why in data.failed.items())
        parts.append(
            "<div id='failed-members'><p>Members that look failed (left out of the headline's best "
            f"member):</p><ul>{items}</ul></div>"
        )
    for note in data.notes:
        parts.append(f"<p>{esc(note)}</p>")
    if data.timings:
        stages = ", ".join(f"{esc(k)} {v:.0f} s" for k, v in data.timings.items())
        parts.append(f"<p class='muted' id='timings'>Stage times: {stages}.</p>")
    if data.evaluations:
        parts.append("<h2>Evaluation</h2>")
        for ev in data.evaluations:
            parts.append(evaluation_heading(ev))
            parts.append(evaluation_table(ev["rows"], ev.get("self_graded", [])))
            parts.append(also_graded_tables(ev))
    elif data.evaluation:
        parts += ["<h2>Evaluation</h2>", evaluation_table(data.evaluation)]
    else:
        parts += [
            "<h2>Evaluation</h2>",
            "<p class='muted'>Not evaluated yet: run <code>gensemble evaluate RUN</code>.</p>",
        ]
    if data.per_class:
        lead = "fusion:auto" if "fusion:auto" in data.per_class["rows"] else None
        parts += per_class_section(data.per_class, lead, data.exemplars)
    if data.score:
        parts += ["<h2>Tournament</h2>", img_tag(heatmap_png(data.score), "tournament heatmap", "heatmap")]
        parts.append(
            "<p class='muted'>S_Dj(G_i): mean calibrated probability that D_j calls G_i's samples real. "
            "S(G_i) averages a row; S(D_j) is D_j's mean ROC AUC at telling held-out real data from each G_i.</p>"
        )
    if data.samples:
        parts.append("<h2>Samples</h2><div class='grid'>")
        for label, png in data.samples.items():
            parts.append(f"<div class='card'><h3>{esc(label)}</h3>{img_tag(png, label, 'sample')}</div>")
        parts.append("</div>")
    parts += completion_section(data)
    if data.curves:
        parts += ["<h2>Training curves</h2>", img_tag(curves_png(data.curves), "loss curves", "curves")]
    parts += ["<h2>Resolved config</h2>", f"<pre id='config'>{esc(data.config_yaml)}</pre>", "</body></html>"]
    return "\n".join(parts)


def completion_section(data: ReportData) -> list[str]:
    """Held-out images with a hole, each member's proposal and the ensemble's choice (if saved)."""
    if data.completion is None:
        return [
            "<h2>Completion</h2>",
            "<p class='muted'>No completion panel yet: run <code>gensemble complete RUN --heldout 8</code>.</p>",
        ]
    png, summary = data.completion
    cols = " | ".join(esc(c) for c in summary.get("columns", []))
    mse = summary.get("hole_mse", {})
    cells = (
        "".join(f"<th>{esc(k)}</th>" for k in mse)
        + "</tr><tr>"
        + "".join(f"<td>{_fmt(v)}</td>" for v in mse.values())
    )
    return [
        "<h2>Completion</h2>",
        f"<p class='muted'>Held-out images with a {esc(summary.get('hole', 'hole'))}; columns: {cols}.</p>",
        img_tag(png, "completion panel", "completion"),
        f"<p>Mean squared error in the hole (lower is better; the oracle picks the best member per image):</p>"
        f"<table id='completion'><tr>{cells}</tr></table>",
    ]


def read_completion(run_dir: Path, members: list[str] | None = None) -> tuple[bytes, dict[str, Any]] | None:
    """RUN/completion/ (checked: artefacts.check_completion), or None when `complete --heldout` never ran."""
    folder = run_dir / "completion"
    summary = read_artefact("completion", folder / "completion.json", members)
    if summary is None:
        return None
    try:
        png = read_bytes(run_dir, "completion/panel.png")
    except UnsafePathError as exc:
        raise ArtefactError(str(exc)) from None
    if png is None:
        raise ArtefactError(
            f"{shown(str(folder / 'panel.png'))} is missing; run 'gensemble complete {run_dir} --heldout N' to rewrite it"
        )
    return png, summary


def read_timings(run_dir: Path) -> dict[str, float]:
    """Stage times (checked): RUN/timings.json, or the demo's OUT/timings.json beside OUT/run."""
    for path in (run_dir / "timings.json", run_dir.parent / "timings.json"):
        if path.exists():
            return read_artefact("timings", path)
    return {}


def run_members(run_dir: Path) -> list[str] | None:
    """The run's member names, which every artefact's rows must agree with (None: config unreadable,
    and then names are not checked; the report still renders what it can)."""
    try:
        return [m.name for m in load_config(run_dir / "config.yaml", root=run_dir).members]
    except GensembleError:
        return None


def gather_report(run_dir: str | Path, fusions: tuple[str, ...] | None = None) -> ReportData:
    """Everything the report shows, read from what the run's commands saved: config.yaml,
    metrics.jsonl, tournament.json (`gensemble score`), evaluation.json, evaluations/ and samples/
    (`gensemble evaluate`), completion/ (`gensemble complete`). Nothing is sampled or scored here;
    a missing part is named with the command that produces it. `fusions` limits the fusion grids."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise CheckpointError(
            f"{str(run_dir)!r} is not a run folder (no config.yaml); train one with 'gensemble train'"
        )
    members = run_members(run_dir)
    latest = None
    evaluations = [read_evaluation_file(p, members) for p in files(run_dir, "evaluations", "*.json")]
    if (run_dir / "evaluation.json").exists():
        latest = read_evaluation_file(run_dir / "evaluation.json", members)
        if not evaluations:  # written before evaluations/ existed
            evaluations = [latest]
    evaluation = latest["rows"] if latest else None
    # The headline rests on the largest-n evaluation graded where its fusions were not steered.
    headline = headline_evaluation([e for e in [latest, *evaluations] if e is not None])
    samples = read_grids(run_dir, members)
    if fusions is not None:
        wanted = {f"fusion:{f}" for f in fusions}
        samples = {k: v for k, v in samples.items() if not k.startswith("fusion:") or k in wanted}
    data = ReportData(
        title=f"gensemble report: {run_dir.name}",
        config_yaml=read_text(run_dir, "config.yaml", limit=1_000_000) or "",
        samples=samples,
        score=read_tournament(run_dir, members),
        evaluation=evaluation,
        evaluations=evaluations,
        curves=read_curves(run_dir),
        completion=read_completion(run_dir, members),
        verdict=first_sentence(headline) if headline else None,
        choice=auto_choice(headline["raw"]) if headline else None,
        timings=read_timings(run_dir),
        per_class=headline["raw"].get("per_class") if headline else None,
    )
    exemplars = (data.per_class or {}).get("exemplars")
    data.exemplars = read_sample_file(run_dir, exemplars) if exemplars else None  # gone: no picture
    data.failed = failed_members(data, headline)
    if members is None:
        data.notes.append(
            "config.yaml does not parse as this version's run config: member names are not checked, "
            "and the config below is shown as it stands."
        )
    if data.score is None:
        data.notes.append(
            f"No tournament saved: run 'gensemble score {run_dir}' (runs without discriminators have none)."
        )
    if not samples:
        data.notes.append(
            f"No sample grids saved: run 'gensemble evaluate {run_dir} --fusion {','.join(fusions or STANDARD_FUSIONS)}'."
        )
    return data


def failed_members(data: ReportData, headline: dict[str, Any] | None) -> dict[str, str]:
    """Members that look failed: by their loss log, by every judge (S(G) near 0), or as the headline
    evaluation found them (their samples' colours)."""
    scores = {}
    if data.score is not None:
        scores = dict(zip(data.score.get("generators", []), data.score.get("generator_scores", [])))
    return merge(
        curve_problems(data.curves),
        judged_problems({k: float(v) for k, v in scores.items() if isinstance(v, (int, float))}),
        headline["failed_members"] if headline else {},
    )


def report_run(
    run_dir: str | Path, out: str | Path | None = None, fusions: tuple[str, ...] | None = None
) -> Path:
    """Write RUN's self-contained HTML report (default RUN/report.html) from its saved artefacts."""
    out = check_output(Path(out) if out is not None else Path(run_dir) / "report.html", (".html", ".htm"))
    if not (Path(run_dir) / "config.yaml").is_file():
        gather_report(run_dir, fusions)  # the one-line error about a folder that holds no run
    if out.resolve().is_relative_to(Path(run_dir).resolve()):
        with run_lock(run_dir, "report"):  # it writes into the run: one writer at a time
            html = render_report(gather_report(run_dir, fusions))
            atomic_write_text(
                Path(run_dir) / out.resolve().relative_to(Path(run_dir).resolve()), html, run_dir
            )
    else:
        recover_if_idle(run_dir)  # a reader: finish what a killed command left, if nobody is writing
        busy = holder(run_dir)
        if busy is not None:
            warnings.warn(
                f"{busy} is writing into {shown(str(run_dir), 80)}: the report shows the artefacts "
                "saved so far; run 'gensemble report' again when it has finished",
                stacklevel=2,
            )
        atomic_write_text(out, render_report(gather_report(run_dir, fusions)))
    return out
