"""Figures of what areas represent: tuning curves, RDMs and their comparison,
decoding accuracy, sparseness, and the convergence of inference. Every
function takes plain arrays (or the results of ``cortexsim.analysis``) and
returns a ``matplotlib.figure.Figure``."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..analysis.convergence import steps_to_tolerance
from ..analysis.rsa import compare_all
from .common import PALETTE, _empty, _figure, _legend, _style, _suptitle, rule_colors


def tuning_curves(
    values: Any,
    mean: Any,
    sem: Any = None,
    units: Any = None,
    max_units: int = 9,
    xlabel: str = "stimulus value",
    title: str | None = None,
) -> Figure:
    """One panel per unit: mean response against the stimulus value, bars +- 1 SEM.

    Parameters
    ----------
    values : array (k,)
    mean, sem : arrays (k, units)
        As :func:`cortexsim.analysis.tuning_curves` returns them.
    units : sequence of int, optional
        Which units to draw; default the first ``max_units``.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    m = np.asarray(mean, dtype=np.float64).reshape(len(v), -1)
    s = None if sem is None else np.asarray(sem, dtype=np.float64).reshape(m.shape)
    chosen = list(range(min(m.shape[1], int(max_units)))) if units is None else list(units)
    fig, axes = _figure(max(len(chosen), 1))
    if not chosen:
        _empty(axes[0], "no units")
    for ax, u in zip(axes, chosen):
        ax.errorbar(v, m[:, u], yerr=None if s is None else s[:, u], color=PALETTE[0],
                    marker="o", markersize=3, capsize=2, linewidth=1.5)
        ax.set(title=f"unit {u}", xlabel=xlabel, ylabel="mean response")
        _style(ax)
    _suptitle(fig, title or "Tuning curves (mean over trials, bars: +- 1 SEM)")
    return fig


def rdm_grid(
    rdms: Mapping[str, Any], method: str = "spearman", compare: bool = True,
    title: str | None = None,
) -> Figure:
    """Each RDM as an image, then the matrix of their pairwise correlations.

    Parameters
    ----------
    rdms : {name: array (stimuli, stimuli)}
        E.g. :func:`cortexsim.analysis.rdms` of every area (or rule, model).
    method : {"spearman", "pearson"}
        Of :func:`cortexsim.analysis.compare_all`, for the last panel.
    compare : bool
        Add the comparison panel (with two or more RDMs).
    """
    names = list(rdms)
    extra = compare and len(names) > 1
    fig, axes = _figure(max(len(names) + extra, 1))
    if not names:
        _empty(axes[0], "no RDM")
    for ax, name in zip(axes, names):
        image = ax.imshow(np.asarray(rdms[name], dtype=np.float64), cmap="viridis",
                          interpolation="nearest")
        fig.colorbar(image, ax=ax, shrink=0.8, label="dissimilarity")
        ax.set(title=name, xlabel="stimulus", ylabel="stimulus")
    if extra:
        labels, matrix = compare_all(rdms, method=method)
        ax = axes[len(names)]
        image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
        fig.colorbar(image, ax=ax, shrink=0.8, label=f"{method} correlation")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize="x-small",
                    color="white" if abs(value) > 0.6 else "black")
        ax.set_title("RDM similarity")
    _suptitle(fig, title or f"Representational dissimilarity matrices ({method} comparison)")
    return fig


def _mean_sd(score: Any) -> tuple[float, float, float | None]:
    """Mean, sd and chance of a DecodingScore or a (mean, sd) pair."""
    if hasattr(score, "mean") and hasattr(score, "sd"):
        return float(score.mean), float(score.sd), getattr(score, "chance", None)
    mean, sd = score[:2]
    return float(mean), float(sd), None


def decoding_accuracy(
    scores: Mapping[str, Any], chance: float | None = None, ylabel: str = "accuracy",
    colors: Mapping[str, Any] | None = None, title: str | None = None,
) -> Figure:
    """Cross-validated decoding score per area, bars +- 1 sd over folds.

    Parameters
    ----------
    scores : {area: DecodingScore or (mean, sd)}, or {label: {area: ...}}
        :func:`cortexsim.analysis.decode_areas` output; a nested mapping draws
        one group of bars per area with one color per label (rule, model).
    chance : float, optional
        Dashed chance line; default the scores' own ``chance`` when they agree.
    """
    nested = bool(scores) and all(isinstance(v, Mapping) for v in scores.values())
    groups = dict(scores) if nested else {"": scores}
    areas = list(dict.fromkeys(a for g in groups.values() for a in g))
    colors = dict(colors or rule_colors(list(groups)))
    fig, (ax,) = _figure(1)
    width = 0.8 / max(len(groups), 1)
    chances = set()
    for k, (label, group) in enumerate(groups.items()):
        x, means, sds = [], [], []
        for i, area in enumerate(areas):
            if area in group:
                mean, sd, c = _mean_sd(group[area])
                x.append(i + (k - (len(groups) - 1) / 2) * width)
                means.append(mean)
                sds.append(sd)
                chances.add(c)
        ax.bar(x, means, width=width * 0.9, yerr=sds, capsize=3, label=label or None,
               color=colors[label] if nested else PALETTE[0])
    chances.discard(None)
    if chance is None and len(chances) == 1:
        chance = chances.pop()
    if chance is not None:
        ax.axhline(chance, color="0.4", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(range(len(areas)), areas)
    ax.set(xlabel="area", ylabel=ylabel)
    if not areas:
        _empty(ax, "no decoding scores")
    _style(ax)
    _legend(ax, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside: bars fill the axes
    _suptitle(fig, title or "Linear decoding (cross-validated; bars: +- 1 sd over folds)")
    return fig


def sparseness(
    values: Mapping[str, Any], kind: str = "lifetime", bins: int = 20, title: str | None = None
) -> Figure:
    """Histogram of sparseness per area, with its median.

    Parameters
    ----------
    values : {area: array}
        :func:`cortexsim.analysis.lifetime_sparseness` (per unit) or
        :func:`cortexsim.analysis.population_sparseness` (per stimulus) of each area.
    kind : str
        Names what was measured (``"lifetime"``, ``"population"``) in the labels.
    """
    names = list(values)
    fig, axes = _figure(max(len(names), 1))
    if not names:
        _empty(axes[0], "no sparseness values")
    colors = rule_colors(names)
    per = "unit" if kind == "lifetime" else "stimulus"
    for ax, name in zip(axes, names):
        v = np.asarray(values[name], dtype=np.float64).ravel()
        v = v[np.isfinite(v)]
        ax.hist(v, bins=np.linspace(0, 1, int(bins) + 1), color=colors[name], edgecolor="white")
        if v.size:
            ax.axvline(np.median(v), color="0.2", linestyle="--", linewidth=1,
                       label=f"median {np.median(v):.2f}")
        ax.set(title=f"{name} ({v.size} {per}{'s' if v.size != 1 else ''})", xlim=(0, 1),
               xlabel=f"{kind} sparseness (0 dense, 1 sparse)", ylabel=f"{per} count")
        _style(ax)
        _legend(ax, loc="upper left")
    _suptitle(fig, title or f"Treves-Rolls {kind} sparseness (Vinje & Gallant normalization)")
    return fig


def convergence(
    traces: Mapping[str, Any], tol: float = 1e-3, max_traces: int = 40,
    colors: Mapping[str, Any] | None = None, title: str | None = None,
) -> Figure:
    """Energy over relaxation steps per label, each trace marked where it reaches ``tol``.

    Parameters
    ----------
    traces : {label: array (batches, steps + 1) or (steps + 1,)}
        Energy traces (an energy probe's rows), one panel per label (rule, area, setting).
    tol : float
        Of :func:`cortexsim.analysis.steps_to_tolerance`; the dashed line is the
        median step over the traces that got there.
    max_traces : int
        Thin lines drawn per panel (the mean uses every trace).
    """
    names = list(traces)
    colors = dict(colors or rule_colors(names))
    fig, axes = _figure(max(len(names), 1))
    if not names:
        _empty(axes[0], "no energy traces")
    for ax, name in zip(axes, names):
        e = np.atleast_2d(np.asarray(traces[name], dtype=np.float64))
        steps = np.arange(e.shape[1])
        done = steps_to_tolerance(e, tol)
        for row, t in zip(e[: int(max_traces)], done[: int(max_traces)]):
            ax.plot(steps, row, color=colors[name], alpha=0.25, linewidth=0.8)
            if t >= 0:
                ax.plot(t, row[t], "o", color=colors[name], markersize=3, alpha=0.7)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # steps every trace stopped before
            mean = np.nanmean(e, axis=0)
        ax.plot(steps, mean, color="0.15", linewidth=1.8, label="mean")
        reached = done[done >= 0]
        if reached.size:
            ax.axvline(np.median(reached), color="0.4", linestyle="--", linewidth=1,
                       label=f"median steps to tol: {np.median(reached):g}")
        ax.set(title=f"{name} ({reached.size}/{len(done)} reach tol)",
               xlabel="relaxation step", ylabel="energy")
        ax.xaxis.get_major_locator().set_params(integer=True)
        _style(ax)
        _legend(ax, loc="upper right")
    _suptitle(fig, title or f"Inference energy (dots: first step with |dE|/|E| < {tol:g})")
    return fig
