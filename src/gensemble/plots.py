"""Matplotlib figures (scatter plots of 2-D samples, curves, heatmaps) rendered to PNG bytes or files."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gensemble.checkpoint import atomic_write_bytes  # noqa: E402


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def scatter_png(
    points: np.ndarray, modes: np.ndarray | None = None, labels: np.ndarray | None = None, title: str = ""
) -> bytes:
    """2-D samples (coloured by member when labels are given) over the true mode centres."""
    fig, ax = plt.subplots(figsize=(4, 4))
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.5, c="tab:blue")
    else:
        ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.5, c=labels, cmap="tab10")
    if modes is not None:
        ax.scatter(modes[:, 0], modes[:, 1], s=40, marker="x", c="black", label="true modes")
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return figure_png(fig)


def save_scatter(
    points: np.ndarray, path: str | Path, modes: np.ndarray | None = None, labels: np.ndarray | None = None
) -> None:
    atomic_write_bytes(path, scatter_png(points, modes, labels))
