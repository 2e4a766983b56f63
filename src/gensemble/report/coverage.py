"""The report's per-class section: each row's share of every class (or k-means cluster) of the
reference, against the reference's own share, as a table and a bar chart, with the worst-served
class of each row marked. It renders evaluation.json's 'per_class'; nothing is computed here."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from gensemble.plots import figure_png, plt
from gensemble.report.tables import esc

# Bars for the reference and at most this many rows (the table has them all).
CHART_ROWS = 4


def bars_png(table: dict[str, Any], rows: list[str]) -> bytes:
    """Grouped bars: the reference's share of each class beside each chosen row's."""
    classes = table["classes"]
    series = [("reference", table["reference"])] + [(r, table["rows"][r]) for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(classes) + 2), 3.2))
    width = 0.8 / len(series)
    x = np.arange(len(classes))
    for i, (label, values) in enumerate(series):
        ax.bar(
            x + (i - (len(series) - 1) / 2) * width,
            values,
            width,
            label=label,
            color="0.6" if label == "reference" else None,
        )
    ax.set_xticks(x, classes, rotation=30, ha="right")
    ax.set_ylabel("share of samples")
    ax.legend(fontsize=8, ncol=min(len(series), 3))
    fig.tight_layout()
    return figure_png(fig)


def chart_rows(table: dict[str, Any], lead: str | None) -> list[str]:
    """The rows the chart shows: the lead fusion (if any), then the members and fusions, up to CHART_ROWS."""
    rows = [r for r in table["rows"] if not r.startswith("real:")]
    ordered = ([lead] if lead in rows else []) + [r for r in rows if r != lead]
    return ordered[:CHART_ROWS]


def per_class_section(
    table: dict[str, Any], lead: str | None = None, exemplars: bytes | None = None
) -> list[str]:
    """HTML for the section: a sentence on the worst-served class, the chart, the full table, and
    (when evaluate saved them) a few reference images of each class, one class a line."""
    classes, ref = table["classes"], table["reference"]
    worst = table.get("worst", {})
    png = bars_png(table, chart_rows(table, lead))
    head = "".join(f"<th>{esc(c)}</th>" for c in classes)
    lines = [
        "<h2 id='per-class'>Per class</h2>",
        f"<p class='muted'>Share of each row's samples in each of the reference's {esc(table['by'])}; "
        "the reference's own share is the first row. The cell in bold is the class the row serves worst "
        "(lowest share against the reference's)."
        + (
            " These clusters are only clusters, not classes: they group what the features see, which on "
            "colour data can be the background colour rather than the object.</p>"
            if table["by"].startswith("k-means")
            else "</p>"
        ),
        f'<img class="curves" alt="per-class shares" src="data:image/png;base64,{base64.b64encode(png).decode()}">',
        f"<table id='per-class-table'><tr><th>row</th>{head}<th>worst</th></tr>",
        "<tr><td>reference</td>" + "".join(f"<td>{100 * v:.1f}%</td>" for v in ref) + "<td></td></tr>",
    ]
    for row, values in table["rows"].items():
        w = worst.get(row, {})
        cells = "".join(
            f"<td><strong>{100 * v:.1f}%</strong></td>" if c == w.get("class") else f"<td>{100 * v:.1f}%</td>"
            for c, v in zip(classes, values)
        )
        ratio = f"{esc(w['class'])} ({w['ratio']:.2f}×)" if w else ""
        lines.append(f"<tr><td>{esc(row)}</td>{cells}<td>{ratio}</td></tr>")
    lines.append("</table>")
    if exemplars is not None:
        lines += [
            f"<p class='muted'>What each class is: the first reference images of {esc(table['classes'][0])} "
            f"on the top line, then one line per class in the table's order, to {esc(table['classes'][-1])} "
            "(a short line: the class holds fewer images).</p>",
            f'<img class="exemplars" alt="reference images of each class" '
            f'src="data:image/png;base64,{base64.b64encode(exemplars).decode()}">',
        ]
    return lines
