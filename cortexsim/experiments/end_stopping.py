"""End-stopping of prediction-error units (Rao & Ballard 1999, Fig. 3 and 5).

A model of modules side by side (``cortexsim.data.module_patches``) is shown
horizontal bars of increasing length centred on its middle module. For every
unit of the middle module of ``area`` we read, after inference, its
prediction-error unit

    e = pi_l * (mu_l - pred_l),    pred_l = phi(mu_{l+1}) @ W_fb_{l+1} + b_fb_{l+1}

(the feedforward signal of predictive coding). A bar longer than the module's
patch extends into its neighbours, whose activity the area above uses to
predict the middle module: the error of a long bar is explained away, that of
a short one is not. Without feedback (the area above silenced: its
prediction is zero, so ``e = pi_l mu_l``, and level l's dynamics keep the
same ``-e`` term, as when Rao & Ballard set the top-down signal to zero)
nothing predicts the middle module and the effect should disappear -- the
paper's account of end-stopping.

For each unit and condition the bar (vertical position, polarity) that drives
it most at lengths up to ``short_max`` is chosen, and

    end-stopping index = max_{L <= short_max} |e(L)| / |e(L_max)|

(1: no end-stopping; > 1: weaker response to the long bar). That index also
counts end-stopping *inside* the classical receptive field (the module's
patch), which a sparse level 1 has with or without feedback; the part that
feedback can explain is the

    surround index = |e(L_classical)| / |e(L_max)|

of the same preferred bar, with ``L_classical`` the patch width: how much
weaker the response gets when a bar that already fills the patch extends
into the neighbouring modules. Units that no bar drives above
``responsive`` of the strongest unit are left out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..data.module_patches import crop_width, stimulus_modules
from ..errors import ConfigurationError
from ..hierarchy import Hierarchy
from ..inference import Relaxation, relax_generative
from .base import ExperimentResult

TITLE = "End-stopping (Rao & Ballard 1999)"


def bars(height: int, total_width: int, lengths: Sequence[int], thickness: int) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal bars centred horizontally: every length x row x polarity.

    Returns (canvas (N, height, total_width), parameters (N, 3): length, top row, polarity).
    """
    canvas, params = [], []
    for top in range(height - thickness + 1):
        for polarity in (1.0, -1.0):
            for length in lengths:
                image = np.zeros((height, total_width))
                left = (total_width - length) // 2
                image[top : top + thickness, left : left + length] = polarity
                canvas.append(image)
                params.append((length, top, polarity))
    return np.array(canvas), np.array(params, dtype=np.float64)


@contextmanager
def _silenced(hierarchy: Hierarchy, level: int) -> Iterator[None]:
    """The area above ``level`` predicts nothing (its W_fb and b_fb are zero) for
    the duration; the weights are put back afterwards."""
    above = hierarchy[level + 1]
    be = hierarchy.backend
    saved = (be.xp.asarray(above.W_fb, copy=True), be.xp.asarray(above.b_fb, copy=True))
    try:
        above.W_fb[...] = 0.0
        above.b_fb[...] = 0.0
        yield
    finally:
        above.W_fb[...] = saved[0]
        above.b_fb[...] = saved[1]


def _error_units(hierarchy: Hierarchy, x: Any, level: int, relaxation: Relaxation, units: slice) -> np.ndarray:
    be = hierarchy.backend
    relax_generative(hierarchy, x, relaxation)
    return np.abs(be.to_numpy(hierarchy[level].eps)[:, units])


def _indices(responses: np.ndarray, lengths: np.ndarray, short_max: int,
             classical: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per unit: end-stopping index, surround index and the length tuning curve
    of its preferred bar.

    responses : (bars, lengths, units)
    """
    short = lengths <= short_max
    best = np.argmax(responses[:, short, :].max(axis=1), axis=0)  # preferred bar per unit
    units = np.arange(responses.shape[2])
    curves = responses[best, :, units]  # (units, lengths)
    peak = curves[:, short].max(axis=1)
    filled = curves[:, int(np.argmin(np.abs(lengths - classical)))]
    with np.errstate(divide="ignore", invalid="ignore"):
        return peak / curves[:, -1], filled / curves[:, -1], curves


def validate(settings: Mapping[str, Any], hierarchy: Hierarchy, where: str) -> None:
    """Check the settings against the model before any run."""
    name = settings.get("area", "level1")
    try:
        level = hierarchy.spec.areas.index(hierarchy[name].spec)
    except (KeyError, ConfigurationError):
        raise ConfigurationError(f"{where}.area: no area {name!r} in the model") from None
    if level == 0 or level == len(hierarchy) - 1:
        raise ConfigurationError(f"{where}.area: {name!r} needs an area below and an area above it")


def run(
    hierarchy: Hierarchy,
    rule: Any,
    *,
    seed: int,
    data: Mapping[str, Any] | None = None,
    area: str = "level1",
    lengths: Sequence[int] = (2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26),
    thickness: int = 2,
    contrast: float = 2.0,
    steps: int = 300,
    step_size: float = 0.05,
    short_max: int = 12,
    classical: int | None = None,
    threshold: float = 1.2,
    responsive: float = 0.1,
) -> ExperimentResult:
    """Length tuning of the middle module's error units, with and without feedback.

    Parameters
    ----------
    data : mapping
        The study's [data] section (layout of the module patches: ``height``,
        ``width``, ``modules``, ``offset``, ``window``, ``filter``); passed by the runner.
    area : str
        The modular area whose error units are measured (level 1).
    lengths : sequence of int
        Bar lengths in pixels; the last is the "long" bar.
    thickness : int
        Bar thickness in pixels.
    contrast : float
        Largest absolute value of any filtered bar stimulus (the training
        photographs have unit variance after filtering).
    steps, step_size : int, float
        Relaxation to equilibrium for every stimulus.
    short_max : int
        Longest bar that counts as "short" when finding the optimal length.
    classical : int, optional
        Length of the bar that fills the classical receptive field, for the
        surround index; default the patch width.
    threshold : float
        A unit is end-stopped when its index exceeds this.
    responsive : float
        Units whose strongest response is below this share of the strongest
        unit's are left out.
    """
    layout = {"height": 16, "width": 16, "modules": 3, "offset": 5, "window": 5.0, "filter": "dog"}
    layout.update({k: v for k, v in (data or {}).get("layout", {}).items() if k in layout})
    level = hierarchy.spec.areas.index(hierarchy[area].spec)
    spec = hierarchy[area].spec
    if spec.modules != layout["modules"]:
        raise ConfigurationError(f"end_stopping: area {area!r} has {spec.modules} modules, the data {layout['modules']}")
    total = crop_width(layout["width"], layout["modules"], layout["offset"])
    lengths = np.asarray(sorted(int(v) for v in lengths))
    canvas, params = bars(layout["height"], total, lengths, thickness)
    x = stimulus_modules(canvas, height=layout["height"], width=layout["width"], modules=layout["modules"],
                         offset=layout["offset"], window=layout["window"], filter=layout["filter"])
    x *= contrast / np.abs(x).max()
    be = hierarchy.backend
    xb = be.asarray(x)
    per_module = spec.size // spec.modules
    middle = layout["modules"] // 2
    units = slice(middle * per_module, (middle + 1) * per_module)
    relaxation = Relaxation(steps=steps, step_size=step_size, init="zeros")
    shape = (-1, len(lengths), per_module)
    with_fb = _error_units(hierarchy, xb, level, relaxation, units).reshape(shape)
    with _silenced(hierarchy, level):
        without = _error_units(hierarchy, xb, level, relaxation, units).reshape(shape)
    classical = layout["width"] if classical is None else int(classical)
    index_fb, surround_fb, curves_fb = _indices(with_fb, lengths, short_max, classical)
    index_nf, surround_nf, curves_nf = _indices(without, lengths, short_max, classical)
    peak = np.maximum(curves_fb.max(axis=1), curves_nf.max(axis=1))
    keep = peak >= responsive * peak.max()
    summary = {
        "units": int(keep.sum()),
        "fraction_end_stopped_feedback": float(np.mean(index_fb[keep] > threshold)),
        "fraction_end_stopped_no_feedback": float(np.mean(index_nf[keep] > threshold)),
        "mean_index_feedback": float(np.mean(index_fb[keep])),
        "mean_index_no_feedback": float(np.mean(index_nf[keep])),
        "median_index_feedback": float(np.median(index_fb[keep])),
        "median_index_no_feedback": float(np.median(index_nf[keep])),
        "fraction_surround_feedback": float(np.mean(surround_fb[keep] > threshold)),
        "fraction_surround_no_feedback": float(np.mean(surround_nf[keep] > threshold)),
        "median_surround_feedback": float(np.median(surround_fb[keep])),
        "median_surround_no_feedback": float(np.median(surround_nf[keep])),
    }
    settings = {"area": area, "lengths": lengths.tolist(), "thickness": thickness, "contrast": contrast,
                "steps": steps, "step_size": step_size, "short_max": short_max, "classical": classical,
                "threshold": threshold,
                "responsive": responsive, "layout": layout}
    arrays = {"lengths": lengths, "index_feedback": index_fb, "index_no_feedback": index_nf,
              "surround_feedback": surround_fb, "surround_no_feedback": surround_nf,
              "curves_feedback": curves_fb, "curves_no_feedback": curves_nf, "responsive": keep,
              "stimuli": params}
    return ExperimentResult("end_stopping", arrays, summary, settings)


def _mean_sd(runs: Sequence[ExperimentResult], key: str, percent: bool = False) -> str:
    values = np.array([r.summary[key] for r in runs]) * (100.0 if percent else 1.0)
    sd = values.std(ddof=1) if len(values) > 1 else 0.0
    if percent:
        return f"{values.mean():.0f} % ± {sd:.0f}"
    return f"{values.mean():.2f} ± {sd:.2f}"


def summary(results: Mapping[str, list[ExperimentResult]]) -> list[str]:
    """A table: per rule label, end-stopped fractions and mean indices (mean ± sd over seeds)."""
    lines = [
        (
            "| rule label | seeds | units | end-stopped with feedback | without feedback "
            "| median index with feedback | without feedback "
            "| surround-suppressed with feedback | without feedback "
            "| median surround index with feedback | without feedback |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, runs in results.items():
        units = int(np.mean([r.summary["units"] for r in runs]))
        lines.append(
            f"| {label} | {len(runs)} | {units} "
            f"| {_mean_sd(runs, 'fraction_end_stopped_feedback', True)} "
            f"| {_mean_sd(runs, 'fraction_end_stopped_no_feedback', True)} "
            f"| {_mean_sd(runs, 'median_index_feedback')} | {_mean_sd(runs, 'median_index_no_feedback')} "
            f"| {_mean_sd(runs, 'fraction_surround_feedback', True)} "
            f"| {_mean_sd(runs, 'fraction_surround_no_feedback', True)} "
            f"| {_mean_sd(runs, 'median_surround_feedback')} | {_mean_sd(runs, 'median_surround_no_feedback')} |"
        )
    threshold = next(iter(results.values()))[0].settings.get("threshold", 1.2)
    lines += [
        "",
        (
            f"End-stopped: index > {threshold}; index = response to the best short bar / response "
            "to the longest bar, for the middle module's error units. Surround-suppressed: surround "
            f"index > {threshold}; surround index = response to the bar that fills the patch / response "
            "to the longest bar (`cortexsim.experiments.end_stopping`)."
        ),
    ]
    return lines


def figure(results: Mapping[str, list[ExperimentResult]]) -> Any:
    """Length tuning (normalised, mean over units) and index histograms, with and without feedback."""
    from ..plots.phenomena import end_stopping_figure

    return end_stopping_figure(results)
