"""Figures of cortical phenomena measured by ``cortexsim.experiments``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .common import _figure, _legend, _style, _suptitle

FEEDBACK_COLORS = {"with feedback": "#d62728", "feedback removed": "#7f7f7f"}


def end_stopping_figure(results: Mapping[str, Sequence[Any]]) -> Figure:
    """Per rule label: normalised length tuning of the error units selected by their
    generative fields (horizontal Gabors), the end-stopping index and the surround
    index, with feedback and with it removed."""
    labels = list(results)
    fig, axes = _figure(3 * len(labels), columns=3)
    for row, label in enumerate(labels):
        runs = results[label]
        tuning, hist, surround = axes[3 * row : 3 * row + 3]
        lengths = runs[0].arrays["lengths"]
        threshold = runs[0].settings.get("threshold", 1.2)
        classical = runs[0].settings.get("classical")
        for condition, key in (("with feedback", "feedback"), ("feedback removed", "no_feedback")):
            color = FEEDBACK_COLORS[condition]
            curves, indices, surrounds = [], [], []
            for run in runs:
                keep = run.arrays.get("selected", run.arrays.get("measured", run.arrays["responsive"])).astype(bool)
                c = run.arrays[f"curves_{key}"][keep]
                curves.append(c / c.max(axis=1, keepdims=True))
                indices.append(run.arrays[f"index_{key}"][keep])
                if f"surround_{key}" in run.arrays:
                    surrounds.append(run.arrays[f"surround_{key}"][keep])
            curves = np.concatenate(curves)
            if not len(curves):  # no unit selected in any seed: nothing to draw
                continue
            mean = curves.mean(axis=0)
            sem = curves.std(axis=0, ddof=1) / np.sqrt(len(curves)) if len(curves) > 1 else 0 * mean
            tuning.plot(lengths, mean, color=color, marker="o", markersize=3, label=condition)
            tuning.fill_between(lengths, mean - sem, mean + sem, color=color, alpha=0.2, linewidth=0)
            for ax, values, top in ((hist, indices, 5.0), (surround, surrounds, 2.0)):
                if not values:
                    continue
                values = np.concatenate(values)
                if not values.size:
                    continue
                finite = np.clip(values[np.isfinite(values)], 0, top)
                share = np.mean(values > threshold) * 100
                ax.hist(finite, bins=np.linspace(0, top, 26), color=color, alpha=0.55,
                        label=f"{condition}: {share:.0f} % > {threshold:g}, median {np.median(finite):.2f}")
        if classical is not None:
            tuning.axvline(classical, color="black", linewidth=0.8, linestyle=":")
        tuning.set_xlabel("bar length (pixels; dotted: the patch width)")
        tuning.set_ylabel("error-unit response (normalised)")
        tuning.set_title(f"{label}: length tuning ({len(curves)} units selected by field)")
        hist.set_xlabel("end-stopping index (best short / longest bar)")
        hist.set_title(f"{label}: end-stopping index")
        surround.set_xlabel("surround index (patch-filling / longest bar)")
        surround.set_title(f"{label}: surround index")
        for ax in (hist, surround):
            ax.axvline(threshold, color="black", linewidth=0.8, linestyle="--")
            ax.axvline(1.0, color="black", linewidth=0.8, linestyle=":")
            ax.set_ylabel("units")
        for ax in (tuning, hist, surround):
            _style(ax)
            _legend(ax)
    _suptitle(fig, "End-stopping of level-1 error units (Rao & Ballard 1999)")
    return fig


ODDBALL_COLORS = {"standard": "#1f77b4", "deviant": "#d62728", "control": "#7f7f7f"}


def _by_repetition(run: Any, key: str, area: int, longest: int) -> np.ndarray:
    """Mean response of the standards per repetition number 1..longest (NaN where none)."""
    repetition = run.arrays["repetition"]
    response = run.arrays[key][:, area]
    return np.array([response[repetition == k].mean() if np.any(repetition == k) else np.nan
                     for k in range(1, longest + 1)])


def oddball_figure(results: Mapping[str, Sequence[Any]]) -> Figure:
    """Per rule label and area: the response to every presentation (first seed;
    standards as a line, deviants as markers, the no-mechanism control in grey),
    the suppression curve (standard response against its repetition number
    since the last deviant, mean over seeds, deviants at 0), and the error's
    time course over the inference steps for standards and deviants (mean over
    presentations and seeds)."""
    import warnings

    from matplotlib.ticker import MaxNLocator

    rows = [(label, i, area) for label in results for i, area in enumerate(results[label][0].settings["areas"])]
    fig, axes = _figure(3 * len(rows), columns=3)
    for row, (label, i, area) in enumerate(rows):
        runs = results[label]
        name = area if len(results) == 1 else f"{label}, {area}"
        sequence, curve, course = axes[3 * row : 3 * row + 3]
        first = runs[0]
        deviant = first.arrays["deviant"].astype(bool)
        response = first.arrays["response"][:, i]
        n = np.arange(len(deviant))
        if "control_response" in first.arrays:
            sequence.plot(n, first.arrays["control_response"][:, i], color=ODDBALL_COLORS["control"],
                          linewidth=0.8, label="control (mechanisms off)")
        sequence.plot(n[~deviant], response[~deviant], color=ODDBALL_COLORS["standard"], linewidth=1.0,
                      label="standard")
        sequence.plot(n[deviant], response[deviant], linestyle="none", marker="o", markersize=3.5,
                      color=ODDBALL_COLORS["deviant"], label="deviant")
        sequence.set_xlabel("presentation")
        sequence.set_ylabel("prediction error (response)")
        sequence.set_title(f"{name}: sequence (seed {first.settings.get('seed', 0)})")

        longest = int(max(r.arrays["repetition"].max() for r in runs))
        ks = np.arange(1, longest + 1)
        for key, color, kind in (("response", ODDBALL_COLORS["standard"], "standard"),
                                 ("control_response", ODDBALL_COLORS["control"], "control")):
            if key not in first.arrays:
                continue
            curves = np.array([_by_repetition(r, key, i, longest) for r in runs])
            with warnings.catch_warnings():  # a repetition number no seed reached stays NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(curves, axis=0)
            curve.plot(ks, mean, color=color, marker="o", markersize=3, label=f"{kind} (repetition k)")
            dev = np.array([r.arrays[key][r.arrays["deviant"].astype(bool), i].mean() for r in runs])
            curve.plot([0], [dev.mean()], linestyle="none", marker="D", markersize=6,
                       color=ODDBALL_COLORS["deviant"] if kind == "standard" else color,
                       label=f"deviant{' (control)' if kind == 'control' else ''}")
        curve.set_xlabel("repetition since the last deviant (0 = deviant)")
        curve.set_ylabel("prediction error (response)")
        curve.xaxis.set_major_locator(MaxNLocator(integer=True))
        curve.set_title(f"{name}: suppression ({len(runs)} seed{'s' if len(runs) != 1 else ''})")

        for key, style, suffix in (("errors", "-", ""), ("control_errors", "--", ", control")):
            if key not in first.arrays:
                continue
            for kind, pick in (("standard", False), ("deviant", True)):
                traces = np.array([r.arrays[key][r.arrays["deviant"].astype(bool) == pick, :, i].mean(axis=0)
                                   for r in runs])
                course.plot(np.arange(traces.shape[1]), traces.mean(axis=0), color=ODDBALL_COLORS[kind],
                            linestyle=style, alpha=1.0 if not suffix else 0.6, label=f"{kind}{suffix}")
        course.set_yscale("log")
        course.set_xlabel("inference step")
        course.set_ylabel("prediction error (log)")
        course.set_title(f"{name}: inference time course")
        for ax in (sequence, curve, course):
            _style(ax)
            _legend(ax)
    s = next(iter(results.values()))[0].settings
    _suptitle(fig, f"Oddball: repetition suppression and mismatch of prediction errors "
                   f"(carry-over {s.get('carry_over')}, plasticity lr {s.get('plasticity_lr')}; "
                   f"grey/dashed: both mechanisms off)")
    return fig
