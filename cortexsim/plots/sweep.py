"""A study's sweep: each rule's validation score against the setting tried."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from .common import _figure, _legend, _style, _suptitle

__all__ = ["sweep_scores"]


def sweep_scores(points: Mapping[str, Sequence[tuple[Mapping[str, object], float]]],
                 colors: Mapping[str, str], metric: str, direction: str = "max",
                 prefix: str = "") -> Figure:
    """Score vs setting, one line with markers per rule label.

    ``points[label]`` is ``(setting, mean score)`` per point tried; the best
    (``direction``: "max" or "min") is starred. Where every
    setting varies one numeric key, that key is the x axis (log-scaled when its
    values span more than a decade); otherwise the points are laid out by name.
    """
    fig, (ax,) = _figure(1)
    keys = {key for rows in points.values() for setting, _ in rows for key in setting}
    numeric = len(keys) == 1 and all(
        isinstance(value, (int, float)) and not isinstance(value, bool)
        for rows in points.values() for setting, _ in rows for value in setting.values())
    names: list[str] = []
    for label, rows in points.items():
        if numeric:
            x = np.array([float(next(iter(setting.values()))) for setting, _ in rows])
        else:
            texts = [", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in setting.items()) for setting, _ in rows]
            names += [t for t in texts if t not in names]
            x = np.array([names.index(t) for t in texts], dtype=float)
        y = np.array([score for _, score in rows], dtype=float)
        order = np.argsort(x)
        ax.plot(x[order], y[order], marker="o", color=colors.get(label), label=label, linewidth=1.5)
        if np.any(np.isfinite(y)):
            best = int(np.nanargmax(y) if direction == "max" else np.nanargmin(y))
            ax.plot([x[best]], [y[best]], marker="*", markersize=13, color=colors.get(label), linestyle="")
    if numeric:
        key = next(iter(keys))
        values = [float(v) for rows in points.values() for s, _ in rows for v in s.values()]
        if min(values) > 0 and max(values) / min(values) > 10:
            ax.set_xscale("log")
        ax.set_xlabel(key)
    else:
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize="x-small")
        ax.set_xlabel("setting")
    ax.set_ylabel(f"{metric} (mean over tuning seeds)")
    _style(ax)
    _legend(ax)
    _suptitle(fig, f"{prefix}sweep, best setting per rule starred")
    return fig
