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
units measured are those whose receptive field is oriented like the bars.
Which units those are is decided before any bar is shown, from neither
condition: a unit's receptive field is its generative field, the image it
predicts (its row of ``W_fb`` on the middle module's patch,
``cortexsim.experiments.receptive_fields.generative_fields``), fitted with a
2-D Gabor (``cortexsim.analysis.fit_gabors``). A unit is selected when the
fit explains at least ``gabor_r2`` of the field's variance and the stripes
lie within ``tolerance`` degrees of horizontal; units whose field is not
Gabor-like are left out and counted (``units_poor_fit``), as are well-fit
units of other orientations (``units_off_horizontal``). A unit tuned to
another orientation answers a short horizontal bar through its ends and a
long one hardly at all, with or without feedback: counted, it would be
"end-stopped" for a reason that has nothing to do with the surround. The
summary reports every responsive unit beside the selected ones (keys ending
in ``_all_units``).

For each unit and condition the bar (vertical position, polarity)
that drives it most at lengths up to ``short_max`` is chosen, and

    end-stopping index = max_{L <= short_max} |e(L)| / |e(L_max)|

(1: no end-stopping; > 1: weaker response to the long bar). The part of it
that comes from outside the classical receptive field (the module's patch)
is the

    surround index = |e(L_classical)| / |e(L_max)|

of the same preferred bar, with ``L_classical`` the patch width: how much
weaker the response gets when a bar that already fills the patch extends
into the neighbouring modules. The all-units figures count the units that
some bar drives, in either condition, to at least ``responsive`` of the
strongest unit's response; the selection uses no response at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..analysis.gabor import WELL_FIT, fit_gabors, stripe_orientation
from ..data.module_patches import crop_width, stimulus_modules
from ..errors import ConfigurationError
from ..model.hierarchy import Hierarchy
from ..model.spec import HierarchySpec
from ..inference import Relaxation, relax_generative
from ..validation import check_number
from .base import ExperimentResult
from .receptive_fields import generative_fields

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


def field_selection(fields: np.ndarray, gabor_r2: float, tolerance: float) -> dict[str, np.ndarray]:
    """Units whose receptive field is a Gabor with horizontal stripes.

    fields : (units, height, width)
        Each unit's generative field.

    Returns ``gabor_params`` (units, 9) and ``r2`` of the Gabor fits, the
    stripes' ``orientation`` in degrees (0 horizontal, NaN where no fit),
    ``well_fit`` (R^2 >= ``gabor_r2``) and ``selected`` (well fit, stripes
    within ``tolerance`` degrees of horizontal).
    """
    params, r2 = fit_gabors(fields)
    well_fit = np.nan_to_num(r2, nan=-np.inf) >= gabor_r2
    orientation = stripe_orientation(params[:, 4])
    with np.errstate(invalid="ignore"):
        selected = well_fit & (_off_horizontal(orientation) <= tolerance)
    return {"gabor_params": params, "r2": r2, "orientation": orientation,
            "well_fit": well_fit, "selected": selected}


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
    r2 = check_number(settings.get("gabor_r2", WELL_FIT), f"{where}.gabor_r2")
    if not 0.0 <= r2 <= 1.0:
        raise ConfigurationError(f"{where}.gabor_r2: the least R^2 of a unit's Gabor fit, 0 .. 1, got {r2!r}")
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
    gabor_r2: float = WELL_FIT,
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
        The all-units figures leave out units whose strongest response (over
        both conditions) is below this share of the strongest unit's.
    gabor_r2 : float
        Selection: the least R^2 of the Gabor fit of a unit's generative field
        (default 0.8, the receptive-field experiment's "Gabor-like").
    tolerance : float
        Selection: the most degrees between the fitted stripes and horizontal
        (the bars' orientation).
    """
    layout = {"height": 16, "width": 16, "modules": 3, "offset": 5, "window": 5.0, "filter": "dog"}
    layout.update({k: v for k, v in (data or {}).get("layout", {}).items() if k in layout})
    level = hierarchy.spec.areas.index(hierarchy[area].spec)
    spec = hierarchy[area].spec
    if spec.modules != layout["modules"]:
        raise ConfigurationError(f"end_stopping: area {area!r} has {spec.modules} modules, the data {layout['modules']}")
    middle = layout["modules"] // 2
    # The selection, from the weights alone: before any stimulus, in neither condition.
    fields = generative_fields(hierarchy, area, middle, layout)
    chosen = field_selection(fields, gabor_r2, tolerance)
    total = crop_width(layout["width"], layout["modules"], layout["offset"])
    lengths = np.asarray(sorted(int(v) for v in lengths))
    canvas, params = bars(layout["height"], total, lengths, thickness)
    classical = layout["width"] if classical is None else int(classical)
    be = hierarchy.backend
    xb = be.asarray(_stimuli(canvas, layout, contrast))
    per_module = spec.size // spec.modules
    units = slice(middle * per_module, (middle + 1) * per_module)
    relaxation = Relaxation(steps=steps, step_size=step_size, init="zeros")
    shape = (-1, len(lengths), per_module)
    with_fb = _error_units(hierarchy, xb, level, relaxation, units).reshape(shape)
    with _silenced(hierarchy, level):
        without = _error_units(hierarchy, xb, level, relaxation, units).reshape(shape)
    index_fb, surround_fb, curves_fb = _indices(with_fb, lengths, short_max, classical)
    index_nf, surround_nf, curves_nf = _indices(without, lengths, short_max, classical)
    peak = np.maximum(curves_fb.max(axis=1), curves_nf.max(axis=1))
    keep = peak >= responsive * peak.max()
    selected = chosen["selected"]

    def share(values: np.ndarray, mask: np.ndarray) -> float:
        return float(np.mean(values[mask] > threshold)) if mask.any() else float("nan")

    def middle_value(values: np.ndarray, mask: np.ndarray, how: Any = np.median) -> float:
        return float(how(values[mask])) if mask.any() else float("nan")

    summary = {
        "units_total": int(per_module),
        "units_selected": int(selected.sum()),
        "units_poor_fit": int((~chosen["well_fit"]).sum()),
        "units_off_horizontal": int((chosen["well_fit"] & ~selected).sum()),
        "units_responsive": int(keep.sum()),
    }
    for suffix, mask in (("", selected), ("_all_units", keep)):
        summary |= {
            f"fraction_end_stopped_feedback{suffix}": share(index_fb, mask),
            f"fraction_end_stopped_no_feedback{suffix}": share(index_nf, mask),
            f"mean_index_feedback{suffix}": middle_value(index_fb, mask, np.mean),
            f"mean_index_no_feedback{suffix}": middle_value(index_nf, mask, np.mean),
            f"median_index_feedback{suffix}": middle_value(index_fb, mask),
            f"median_index_no_feedback{suffix}": middle_value(index_nf, mask),
            f"fraction_surround_feedback{suffix}": share(surround_fb, mask),
            f"fraction_surround_no_feedback{suffix}": share(surround_nf, mask),
            f"median_surround_feedback{suffix}": middle_value(surround_fb, mask),
            f"median_surround_no_feedback{suffix}": middle_value(surround_nf, mask),
        }
    settings = {"area": area, "lengths": lengths.tolist(), "thickness": thickness, "contrast": contrast,
                "steps": steps, "step_size": step_size, "short_max": short_max, "classical": classical,
                "threshold": threshold, "responsive": responsive, "gabor_r2": gabor_r2,
                "tolerance": tolerance, "layout": layout}
    arrays = {"lengths": lengths, "index_feedback": index_fb, "index_no_feedback": index_nf,
              "surround_feedback": surround_fb, "surround_no_feedback": surround_nf,
              "curves_feedback": curves_fb, "curves_no_feedback": curves_nf, "responsive": keep,
              "stimuli": params, "fields": fields, "field_gabor_params": chosen["gabor_params"],
              "field_r2": chosen["r2"], "field_orientation": chosen["orientation"], "selected": selected}
    return ExperimentResult("end_stopping", arrays, summary, settings)


def _mean_sd(runs: Sequence[ExperimentResult], key: str, percent: bool = False) -> str:
    """Mean ± sd over the seeds; a seed with no unit to count (NaN) is left
    out, and then the count of seeds used follows."""
    if any(key not in r.summary for r in runs):
        return "–"
    values = np.array([r.summary[key] for r in runs], dtype=np.float64) * (100.0 if percent else 1.0)
    finite = values[np.isfinite(values)]
    if not finite.size:
        return "–"
    sd = finite.std(ddof=1) if finite.size > 1 else 0.0
    seeds = "" if finite.size == values.size else f" ({finite.size} of {values.size} seeds)"
    if percent:
        return f"{finite.mean():.0f} % ± {sd:.0f}{seeds}"
    return f"{finite.mean():.2f} ± {sd:.2f}{seeds}"


def _pooled(runs: Sequence[ExperimentResult], condition: str, mask: str, threshold: float) -> str:
    """Units over the threshold / units counted, summed over the seeds."""
    above = total = 0
    for r in runs:
        keep = r.arrays[mask].astype(bool)
        above += int(np.sum(r.arrays[f"index_{condition}"][keep] > threshold))
        total += int(keep.sum())
    return f"{above} of {total}"


def _total(runs: Sequence[ExperimentResult], key: str) -> str:
    if any(key not in r.summary for r in runs):
        return "–"
    return str(int(np.sum([r.summary[key] for r in runs])))


def summary(results: Mapping[str, list[ExperimentResult]]) -> list[str]:
    """A table: per rule label, end-stopped fractions and median indices (mean ±
    sd over seeds) of the units selected by their generative fields, and the
    same for every responsive unit."""
    lines = [
        (
            "| rule label | units | seeds | units (sum over seeds) | end-stopped with feedback "
            "| without feedback | median index with feedback | without feedback "
            "| surround-suppressed with feedback | without feedback "
            "| median surround index with feedback | without feedback |"
        ),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, runs in results.items():
        for name, suffix, count in (("selected by field", "", "units_selected"),
                                    ("all responsive", "_all_units", "units_responsive")):
            lines.append(
                f"| {label} | {name} | {len(runs)} | {_total(runs, count)} "
                f"| {_mean_sd(runs, 'fraction_end_stopped_feedback' + suffix, True)} "
                f"| {_mean_sd(runs, 'fraction_end_stopped_no_feedback' + suffix, True)} "
                f"| {_mean_sd(runs, 'median_index_feedback' + suffix)} "
                f"| {_mean_sd(runs, 'median_index_no_feedback' + suffix)} "
                f"| {_mean_sd(runs, 'fraction_surround_feedback' + suffix, True)} "
                f"| {_mean_sd(runs, 'fraction_surround_no_feedback' + suffix, True)} "
                f"| {_mean_sd(runs, 'median_surround_feedback' + suffix)} "
                f"| {_mean_sd(runs, 'median_surround_no_feedback' + suffix)} |"
            )
    settings = next(iter(results.values()))[0].settings
    threshold, tolerance = settings.get("threshold", 1.2), settings.get("tolerance", 15.0)
    r2 = settings.get("gabor_r2", WELL_FIT)
    left_out = "; ".join(
        f"{label}: of {_total(runs, 'units_total')} middle-module units, {_total(runs, 'units_poor_fit')} "
        f"have a field the Gabor fits poorly (R² < {r2:g}) and {_total(runs, 'units_off_horizontal')} "
        f"a well-fit field more than {tolerance:g}° from horizontal"
        for label, runs in results.items()
    )
    pooled = "; ".join(
        f"{label}: {_pooled(runs, 'feedback', 'selected', threshold)} with feedback, "
        f"{_pooled(runs, 'no_feedback', 'selected', threshold)} without"
        for label, runs in results.items() if all("selected" in r.arrays for r in runs)
    )
    lines += [
        "",
        (
            f"Selected units end-stopped, summed over seeds: {pooled}. " if pooled else ""
        ) + (
            f"Selected by field: the unit's generative field (its feedback weights on the middle module's "
            f"patch) is fitted by a 2-D Gabor with R² ≥ {r2:g} and its stripes lie within {tolerance:g}° of "
            "horizontal (the bars): a criterion of the trained weights, independent of both conditions. "
            f"Left out of the selection, summed over seeds: {left_out}. All responsive: every unit some "
            "bar drives, in either condition, to at least "
            f"{100 * settings.get('responsive', 0.1):g} % of the strongest unit's response. End-stopped: "
            f"index > {threshold}; index = response to the best short bar / response to the longest bar, "
            f"for the middle module's error units. Surround-suppressed: surround index > {threshold}; "
            "surround index = response to the bar that fills the patch / response to the longest bar "
            "(`cortexsim.experiments.end_stopping`)."
        ),
    ]
    return lines


def figure(results: Mapping[str, list[ExperimentResult]]) -> Any:
    """Length tuning (normalised, mean over units) and index histograms, with and without feedback."""
    from ..plots.phenomena import end_stopping_figure

    return end_stopping_figure(results)
