"""Figures of a training study: learning curves, alignment with backprop,
relaxation energy. Every function takes plain arrays (as read from
recordings) and returns a ``matplotlib.figure.Figure``."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from ..analysis.learning_curves import stack_curves
from .common import (
    _band,
    _empty,
    _figure,
    _figure_legend,
    _legend,
    _seeds,
    _style,
    _suptitle,
    rule_colors,
)

LEARNING_PANELS = (
    ("train_loss", "Training loss", "loss (mean over batches)", 1.0),
    ("validation_accuracy", "Validation accuracy", "accuracy (%)", 100.0),
    ("test_accuracy", "Test accuracy", "accuracy (%)", 100.0),
    # unsupervised rules (elbo): the negative bound on held-out images
    ("validation_loss", "Validation loss", "loss (held-out images)", 1.0),
    ("test_loss", "Test loss", "loss (held-out images)", 1.0),
)

Runs = Mapping[str, Sequence[Mapping[str, Any]]]


def learning_curves(
    runs: Runs, colors: Mapping[str, Any] | None = None, title: str | None = None, prefix: str = ""
) -> Figure:
    """Per-epoch metrics per rule: mean over seeds with a shaded 95 % interval.

    Parameters
    ----------
    runs : {label: [metrics per seed]}
        Each seed's dict maps metric names to per-epoch arrays, as
        ``Recording.metrics`` does (``epoch``, ``train_loss``,
        ``validation_accuracy``, ``test_accuracy``); panels are drawn for the
        metrics some run has. Accuracies are plotted in percent.
    colors : {label: color}, optional
        Default :func:`rule_colors` of the labels (the same in every figure).
    title, prefix : str, optional
        Replace the figure title, or put ``prefix`` (e.g. ``"study: "``) before it.
    """
    colors = dict(colors or rule_colors(list(runs)))
    panels = [
        p for p in LEARNING_PANELS if any(p[0] in m for seeds in runs.values() for m in seeds)
    ]
    fig, axes = _figure(max(len(panels), 1))
    if not panels:
        _empty(axes[0], "no per-epoch metrics recorded")
    for ax, (metric, heading, ylabel, scale) in zip(axes, panels):
        for label, seeds in runs.items():
            have = [m for m in seeds if metric in m and len(m[metric])]
            if not have:
                continue
            curves = stack_curves([np.asarray(m[metric]) * scale for m in have])
            longest = max(have, key=lambda m: len(m[metric]))
            x = np.asarray(longest.get("epoch", np.arange(1, curves.shape[1] + 1)))[
                : curves.shape[1]
            ]
            _band(
                ax,
                x,
                curves,
                colors[label],
                f"{label} ({_seeds(len(have))})",
                marker="o",
                markersize=3,
            )
        ax.set(title=heading, xlabel="epoch", ylabel=ylabel)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if scale == 100.0:
            ax.set_ylim(top=min(100.0, ax.get_ylim()[1]))
        _style(ax)
    _figure_legend(fig, axes)
    _suptitle(fig, title or prefix + "Learning curves (mean over seeds, shaded: 95 % t interval)")
    return fig


def _binned(step: Any, value: Any, edges: np.ndarray) -> np.ndarray:
    """Mean of ``value`` over the rows whose ``step`` falls in each bin [edges[i], edges[i+1])."""
    step, value = np.asarray(step), np.asarray(value, dtype=np.float64)
    which = np.clip(np.searchsorted(edges, step, side="right") - 1, 0, len(edges) - 2)
    total = np.bincount(
        which, weights=np.where(np.isfinite(value), value, 0.0), minlength=len(edges) - 1
    )
    count = np.bincount(which, weights=np.isfinite(value).astype(float), minlength=len(edges) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def alignment(
    runs: Mapping[str, Sequence[Mapping[str, tuple[Any, Any]]]],
    colors: Mapping[str, Any] | None = None,
    title: str | None = None,
    points: int = 100,
    prefix: str = "",
    reference: str = "backprop",
) -> Figure:
    """Cosine between each rule's update and the reference gradient (backprop's,
    or the ELBO's for variational rules), per area, over training.

    Parameters
    ----------
    runs : {label: [per-seed {target: (step, cosine)}]}
        ``target`` is an area name or ``"all"`` (every parameter together);
        ``step`` the global batch counter of each row and ``cosine`` column 0 of
        an alignment probe's data.
    reference : str
        What the updates are compared with, for the labels ("backprop", "the ELBO gradient").
    points : int
        Per seed, the rows are averaged in at most ``points`` equal windows of
        training steps (one row per window when there are fewer rows), which tames
        the batch-to-batch noise; the line is the mean over seeds of these window
        means, the band its 95 % Student t interval, at the window's start step.
    """
    colors = dict(colors or rule_colors(list(runs)))
    targets = list(dict.fromkeys(t for seeds in runs.values() for s in seeds for t in s))
    targets.sort(key=lambda t: t != "all")  # the overall alignment first, then areas in order
    fig, axes = _figure(max(len(targets), 1))
    if not targets:
        _empty(axes[0], "no alignment probe recorded")
    all_steps = [np.asarray(st) for seeds in runs.values() for s in seeds for st, _ in s.values()]
    all_steps = np.unique(np.concatenate(all_steps)) if all_steps else np.zeros(0, dtype=int)
    window = 1
    if len(all_steps) > points:
        window = int(np.ceil((all_steps[-1] - all_steps[0] + 1) / points))
    for ax, target in zip(axes, targets):
        for label, seeds in runs.items():
            series = [s[target] for s in seeds if target in s and len(s[target][0])]
            if not series:
                continue
            steps = np.unique(np.concatenate([np.asarray(st) for st, _ in series]))
            if window > 1:
                edges = np.arange(all_steps[0], steps[-1] + window + 1, window)
            else:
                edges = np.append(steps, steps[-1] + 1)
            curves = stack_curves([_binned(st, cos, edges) for st, cos in series])
            keep = np.any(np.isfinite(curves), axis=0)  # windows no seed recorded
            _band(
                ax,
                edges[:-1][keep],
                curves[:, keep],
                colors[label],
                f"{label} ({_seeds(len(series))})",
                linewidth=1.5,
            )
        ax.axhline(1.0, color="0.5", linestyle=":", linewidth=1)
        ax.set(
            title="all areas together" if target == "all" else f"{target}",
            xlabel="training step (batches)",
            ylabel="cosine with backprop gradient" if reference == "backprop" else f"cosine with {reference}",
        )
        ax.set_ylim(max(ax.get_ylim()[0], -1.01), 1.01)  # a cosine is at most 1
        _style(ax)
    _figure_legend(fig, axes)
    default = f"Alignment of the update with {reference} (mean over seeds, 95 % t interval)"
    if window > 1:
        default += f"; each point averages {window} batches"
    _suptitle(fig, title or prefix + default)
    return fig


def early_late_epochs(epochs: Any) -> tuple[np.ndarray, np.ndarray, str, str]:
    """Masks of the early and late rows of an energy probe, and their legend names.

    Early is the first recorded epoch and late the last one; when every row
    comes from one epoch, the first and the second half of the rows.
    """
    epochs = np.asarray(epochs).ravel()
    if epochs.size == 0:
        empty = np.zeros(0, dtype=bool)
        return empty, empty, "early", "late"
    first, last = int(epochs.min()), int(epochs.max())
    if first != last:
        return (
            epochs == first,
            epochs == last,
            f"epoch {first + 1} (early)",
            f"epoch {last + 1} (late)",
        )
    half = np.arange(epochs.size) < max(epochs.size // 2, 1)
    return (
        half,
        ~half if epochs.size > 1 else half,
        "first half of epoch 1",
        "second half of epoch 1",
    )


def energy(
    runs: Mapping[str, Sequence[tuple[Any, Any]]],
    colors: Mapping[str, Any] | None = None,
    title: str | None = None,
    prefix: str = "",
) -> Figure:
    """Free energy over relaxation steps, early against late in training, per rule.

    Parameters
    ----------
    runs : {label: [per-seed (epoch, data)]}
        ``epoch`` (T,) the 0-based epoch of each row, ``data`` (T, steps + 1) an
        energy probe's rows (NaN after an early stop). Per seed, rows are
        averaged over the batches of the early and of the late epoch
        (:func:`early_late_epochs`); lines are the mean over seeds, bands the
        95 % Student t interval.
    """
    colors = dict(colors or rule_colors(list(runs)))
    labels = [label for label, seeds in runs.items() if seeds]
    fig, axes = _figure(max(len(labels), 1))
    if not labels:
        _empty(axes[0], "no energy probe recorded")
    for ax, label in zip(axes, labels):
        early, late, names = [], [], None
        for epochs, data in runs[label]:
            data = np.asarray(data, dtype=np.float64)
            e_mask, l_mask, *names = early_late_epochs(epochs)
            with warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore", RuntimeWarning
                )  # all-NaN columns: mean of empty slice
                early.append(np.nanmean(data[e_mask], axis=0))
                late.append(np.nanmean(data[l_mask], axis=0))
        base = np.asarray(to_rgb(colors[label]))
        x = np.arange(stack_curves(early).shape[1])
        light = tuple(base + (1.0 - base) * 0.45)
        _band(ax, x, stack_curves(early), light, names[0], linestyle="--")
        _band(ax, x, stack_curves(late), colors[label], names[1])
        ax.set(
            title=f"{label} ({_seeds(len(runs[label]))})",
            xlabel="relaxation step",
            ylabel="free energy per sample",
        )
        ax.xaxis.get_major_locator().set_params(integer=True)
        _style(ax)
        _legend(ax, loc="upper right")
    _suptitle(
        fig,
        title
        or prefix
        + "Energy during inference, early vs late in training "
        "(mean over batches and seeds, 95 % t interval)",
    )
    return fig
