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

End-stopping is measured with bars at a unit's preferred orientation, and
only a bar along the row of modules reaches into the neighbours, so the
units measured are those tuned to the bars: with feedback removed, bars that
fill the patch (``classical`` pixels) are shown through the middle module at
``orientations`` angles (every offset across the bar, both polarities), a
unit's preferred orientation is the angle that drives it most, and the units
whose preference lies within ``tolerance`` degrees of horizontal are
measured. (A unit tuned to another orientation answers a short horizontal bar
through its ends and a long one hardly at all, with or without feedback:
counted, it would be "end-stopped" for a reason that has nothing to do with
the surround; the summary reports that all-units fraction too.)

For each measured unit and condition the bar (vertical position, polarity)
that drives it most at lengths up to ``short_max`` is chosen, and

    end-stopping index = max_{L <= short_max} |e(L)| / |e(L_max)|

(1: no end-stopping; > 1: weaker response to the long bar). The part of it
that comes from outside the classical receptive field (the module's patch)
is the

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
from ..model.hierarchy import Hierarchy
from ..model.spec import HierarchySpec
from ..inference import Relaxation, relax_generative
from ..validation import check_int, check_number
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


def oriented_bars(height: int, total_width: int, length: int, thickness: int,
                  angles: Sequence[float], offsets: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Bars of one length through the centre of the canvas at every angle x
    offset across the bar x polarity.

    A pixel (row ``y``, column ``x``) belongs to the bar at angle ``a``
    (degrees, 0 horizontal) and offset ``o`` when, relative to the canvas
    centre, ``|along| <= length / 2`` and ``|across - o| < thickness / 2``
    with ``along = dx cos a + dy sin a`` and ``across = -dx sin a + dy cos a``.

    Returns (canvas (N, height, total_width), parameters (N, 3): angle, offset, polarity).
    """
    y, x = np.mgrid[0:height, 0:total_width].astype(np.float64)
    dy, dx = y - (height - 1) / 2, x - (total_width - 1) / 2
    canvas, params = [], []
    for angle in angles:
        c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
        along, across = dx * c + dy * s, -dx * s + dy * c
        for offset in offsets:
            mask = (np.abs(along) <= length / 2) & (np.abs(across - offset) < thickness / 2)
            for polarity in (1.0, -1.0):
                canvas.append(np.where(mask, polarity, 0.0))
                params.append((angle, offset, polarity))
    return np.array(canvas), np.array(params, dtype=np.float64)


def preferred_orientation(responses: np.ndarray, angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orientation tuning curves (units, angles): the strongest response over the
    offsets and polarities of each angle; and each unit's preferred angle.

    responses : (angles, stimuli per angle, units)
    """
    curves = responses.max(axis=1).T
    return curves, angles[np.argmax(curves, axis=1)]


def _off_horizontal(angle: np.ndarray) -> np.ndarray:
    """Distance in degrees of an axial angle from horizontal (0 .. 90)."""
    wrapped = np.mod(angle, 180.0)
    return np.minimum(wrapped, 180.0 - wrapped)


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


def _stimuli(canvas: np.ndarray, layout: Mapping[str, Any], contrast: float) -> np.ndarray:
    """Canvases through the training crops' filter and window, scaled so the
    largest absolute value is ``contrast``."""
    x = stimulus_modules(canvas, height=layout["height"], width=layout["width"], modules=layout["modules"],
                         offset=layout["offset"], window=layout["window"], filter=layout["filter"])
    return x * (contrast / np.abs(x).max())


def _error_units(hierarchy: Hierarchy, x: Any, level: int, relaxation: Relaxation, units: slice) -> np.ndarray:
    be = hierarchy.backend
    state = relax_generative(hierarchy, x, relaxation)
    return np.abs(be.to_numpy(state.eps[level])[:, units])


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


def validate(settings: Mapping[str, Any], hierarchy: Hierarchy | HierarchySpec, where: str) -> None:
    """Check the settings against the model before any run."""
    name = settings.get("area", "level1")
    spec = hierarchy.spec if isinstance(hierarchy, Hierarchy) else hierarchy
    names = [area.name for area in spec.areas]
    if name not in names:
        raise ConfigurationError(f"{where}.area: no area {name!r} in the model")
    level = names.index(name)
    if level == 0 or level == len(names) - 1:
        raise ConfigurationError(f"{where}.area: {name!r} needs an area below and an area above it")
    check_int(settings.get("orientations", 12), f"{where}.orientations", minimum=2)
    tolerance = check_number(settings.get("tolerance", 15.0), f"{where}.tolerance")
    if not 0.0 <= tolerance <= 90.0:
        raise ConfigurationError(f"{where}.tolerance: degrees from horizontal, 0 .. 90, got {tolerance!r}")


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
    orientations: int = 12,
    tolerance: float = 15.0,
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
    orientations : int
        Angles (evenly over 180 degrees) of the orientation-tuning bars.
    tolerance : float
        Units whose preferred orientation is within this many degrees of
        horizontal (the bars') are measured.
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
    classical = layout["width"] if classical is None else int(classical)
    angles = np.arange(orientations) * (180.0 / orientations)
    offsets = np.arange(-(layout["height"] // 2) + 1, layout["height"] // 2)
    tilted, _ = oriented_bars(layout["height"], total, classical, thickness, angles, offsets)
    be = hierarchy.backend
    xb, xt = (be.asarray(_stimuli(images, layout, contrast)) for images in (canvas, tilted))
    per_module = spec.size // spec.modules
    middle = layout["modules"] // 2
    units = slice(middle * per_module, (middle + 1) * per_module)
    relaxation = Relaxation(steps=steps, step_size=step_size, init="zeros")
    shape = (-1, len(lengths), per_module)
    with_fb = _error_units(hierarchy, xb, level, relaxation, units).reshape(shape)
    with _silenced(hierarchy, level):
        without = _error_units(hierarchy, xb, level, relaxation, units).reshape(shape)
        classical_responses = _error_units(hierarchy, xt, level, relaxation, units)
    tuning, preferred = preferred_orientation(classical_responses.reshape(len(angles), -1, per_module), angles)
    tuned = _off_horizontal(preferred) <= tolerance
    index_fb, surround_fb, curves_fb = _indices(with_fb, lengths, short_max, classical)
    index_nf, surround_nf, curves_nf = _indices(without, lengths, short_max, classical)
    peak = np.maximum(curves_fb.max(axis=1), curves_nf.max(axis=1))
    keep = peak >= responsive * peak.max()
    measured = keep & tuned

    def share(values: np.ndarray, mask: np.ndarray) -> float:
        return float(np.mean(values[mask] > threshold)) if mask.any() else float("nan")

    def middle_value(values: np.ndarray, mask: np.ndarray, how: Any = np.median) -> float:
        return float(how(values[mask])) if mask.any() else float("nan")

    summary = {
        "units": int(measured.sum()),
        "units_responsive": int(keep.sum()),
        "fraction_end_stopped_feedback_all_orientations": share(index_fb, keep),
        "fraction_end_stopped_no_feedback_all_orientations": share(index_nf, keep),
        "fraction_end_stopped_feedback": share(index_fb, measured),
        "fraction_end_stopped_no_feedback": share(index_nf, measured),
        "mean_index_feedback": middle_value(index_fb, measured, np.mean),
        "mean_index_no_feedback": middle_value(index_nf, measured, np.mean),
        "median_index_feedback": middle_value(index_fb, measured),
        "median_index_no_feedback": middle_value(index_nf, measured),
        "fraction_surround_feedback": share(surround_fb, measured),
        "fraction_surround_no_feedback": share(surround_nf, measured),
        "median_surround_feedback": middle_value(surround_fb, measured),
        "median_surround_no_feedback": middle_value(surround_nf, measured),
    }
    settings = {"area": area, "lengths": lengths.tolist(), "thickness": thickness, "contrast": contrast,
                "steps": steps, "step_size": step_size, "short_max": short_max, "classical": classical,
                "threshold": threshold,
                "responsive": responsive, "orientations": orientations, "tolerance": tolerance,
                "layout": layout}
    arrays = {"lengths": lengths, "index_feedback": index_fb, "index_no_feedback": index_nf,
              "surround_feedback": surround_fb, "surround_no_feedback": surround_nf,
              "curves_feedback": curves_fb, "curves_no_feedback": curves_nf, "responsive": keep,
              "stimuli": params, "angles": angles, "orientation_tuning": tuning,
              "preferred_orientation": preferred, "measured": measured}
    return ExperimentResult("end_stopping", arrays, summary, settings)


def _mean_sd(runs: Sequence[ExperimentResult], key: str, percent: bool = False) -> str:
    if any(key not in r.summary for r in runs):
        return "–"
    values = np.array([r.summary[key] for r in runs]) * (100.0 if percent else 1.0)
    sd = values.std(ddof=1) if len(values) > 1 else 0.0
    if percent:
        return f"{values.mean():.0f} % ± {sd:.0f}"
    return f"{values.mean():.2f} ± {sd:.2f}"


def summary(results: Mapping[str, list[ExperimentResult]]) -> list[str]:
    """A table: per rule label, end-stopped fractions and median indices of the
    units tuned to the bars (mean ± sd over seeds), and the all-units fractions."""
    lines = [
        (
            "| rule label | seeds | units tuned to the bars / responsive | end-stopped with feedback "
            "| without feedback | median index with feedback | without feedback "
            "| surround-suppressed with feedback | without feedback "
            "| median surround index with feedback | without feedback "
            "| all responsive units: end-stopped with feedback | without feedback |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, runs in results.items():
        units = int(np.sum([r.summary["units"] for r in runs]))
        responsive = int(np.sum([r.summary.get("units_responsive", r.summary["units"]) for r in runs]))
        lines.append(
            f"| {label} | {len(runs)} | {units} / {responsive} "
            f"| {_mean_sd(runs, 'fraction_end_stopped_feedback', True)} "
            f"| {_mean_sd(runs, 'fraction_end_stopped_no_feedback', True)} "
            f"| {_mean_sd(runs, 'median_index_feedback')} | {_mean_sd(runs, 'median_index_no_feedback')} "
            f"| {_mean_sd(runs, 'fraction_surround_feedback', True)} "
            f"| {_mean_sd(runs, 'fraction_surround_no_feedback', True)} "
            f"| {_mean_sd(runs, 'median_surround_feedback')} | {_mean_sd(runs, 'median_surround_no_feedback')} "
            f"| {_mean_sd(runs, 'fraction_end_stopped_feedback_all_orientations', True)} "
            f"| {_mean_sd(runs, 'fraction_end_stopped_no_feedback_all_orientations', True)} |"
        )
    settings = next(iter(results.values()))[0].settings
    threshold, tolerance = settings.get("threshold", 1.2), settings.get("tolerance", 15.0)
    lines += [
        "",
        (
            f"Units tuned to the bars: preferred orientation (patch-filling bars, feedback removed) within "
            f"{tolerance:g} degrees of horizontal; units summed over seeds. End-stopped: index > {threshold}; "
            "index = response to the best short bar / response to the longest bar, for the middle module's "
            f"error units. Surround-suppressed: surround index > {threshold}; surround index = response to "
            "the bar that fills the patch / response to the longest bar. The last two columns count every "
            "responsive unit, whatever its preferred orientation (`cortexsim.experiments.end_stopping`)."
        ),
    ]
    return lines


def figure(results: Mapping[str, list[ExperimentResult]]) -> Any:
    """Length tuning (normalised, mean over units) and index histograms, with and without feedback."""
    from ..plots.phenomena import end_stopping_figure

    return end_stopping_figure(results)
