"""What every figure shares: a Figure without pyplot, the house style, one
color per rule label, and saving.

Figures are built without pyplot (no global state, no display needed: they are
rendered by the Agg canvas) and returned to the caller; :func:`save` writes them.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..analysis.learning_curves import mean_and_interval

PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
PANEL_SIZE = (4.6, 3.4)
BAND_ALPHA = 0.22


def rule_colors(labels: Sequence[str]) -> dict[str, str]:
    """A fixed color per rule label, in the order given (a study's order)."""
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(dict.fromkeys(labels))}


def _figure(panels: int, columns: int | None = None) -> tuple[Figure, list[Axes]]:
    columns = min(panels, 3) if columns is None else columns
    rows = -(-panels // columns)
    fig = Figure(
        figsize=(PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows + 0.4), layout="constrained"
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False).ravel().tolist()
    for extra in axes[panels:]:
        extra.set_visible(False)
    return fig, axes[:panels]


def _style(ax: Axes) -> None:
    ax.grid(True, color="0.88", linewidth=0.7)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _band(ax: Axes, x: np.ndarray, curves: np.ndarray, color: Any, label: str, **line: Any) -> None:
    """Mean line and shaded 95 % Student t interval over seeds (rows of ``curves``)."""
    mean, low, high = mean_and_interval(curves)
    ax.plot(x, mean, color=color, label=label, **{"linewidth": 1.8, **line})
    if curves.shape[0] > 1:
        ax.fill_between(x, low, high, color=color, alpha=BAND_ALPHA, linewidth=0)


def _seeds(n: int) -> str:
    return f"{n} seed" + ("s" if n != 1 else "")


def _suptitle(fig: Figure, text: str) -> None:
    """A figure title wrapped to the figure's width."""
    width = max(int(fig.get_figwidth() * 13), 40)
    fig.suptitle(textwrap.fill(text, width), fontsize="medium")


def _legend(ax: Axes, **kwargs: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False, fontsize="small", **kwargs)


def _figure_legend(fig: Figure, axes: Sequence[Axes]) -> None:
    """One legend under all panels (inside them it hides the curves of many rules)."""
    handles, labels = {}, []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    if labels:
        fig.legend([handles[label] for label in labels], labels, loc="outside lower center",
                   ncols=min(len(labels), 7), frameon=False, fontsize="small")


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def save(fig: Figure, path: str | os.PathLike[str], dpi: int = 150) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix), creating folders; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, facecolor="white")
    return path
