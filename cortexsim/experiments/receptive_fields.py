"""Receptive fields of a trained area, and how Gabor-like they are.

A unit's receptive field, in Rao & Ballard's sense, is the image its
generative weights draw: row ``i`` of ``W_fb`` of its area, restricted to its
module's patch when the area is modular. Each field is fitted with a 2-D Gabor
function (``cortexsim.analysis.fit_gabors``); a field is Gabor-like when the
fit explains at least ``threshold`` of its variance (R^2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..analysis.gabor import fit_gabors, fraction_well_fit, frequency_spread, orientation_spread
from ..analysis.receptive_fields import fields_from_weights
from ..errors import ConfigurationError
from ..model.hierarchy import Hierarchy
from ..model.spec import HierarchySpec
from .base import ExperimentResult

TITLE = "Receptive fields"


def validate(settings: Mapping[str, Any], hierarchy: Hierarchy | HierarchySpec, where: str) -> None:
    """Check the settings against the model before any run."""
    name = settings.get("area", "level1")
    model = hierarchy.spec if isinstance(hierarchy, Hierarchy) else hierarchy
    spec = next((area for area in model.areas if area.name == name), None)
    if spec is None:
        raise ConfigurationError(f"{where}.area: no area {name!r} in the model")
    module = settings.get("module", 0)
    if not isinstance(module, int) or not 0 <= module < spec.modules:
        raise ConfigurationError(f"{where}.module: area {name!r} has modules 0 .. {spec.modules - 1}, got {module!r}")


def generative_fields(hierarchy: Hierarchy, area: str, module: int,
                      layout: Mapping[str, Any] | None = None) -> np.ndarray:
    """The image each unit of one module of ``area`` predicts: its rows of
    ``W_fb`` restricted to the module's patch, (units, height, width).

    ``layout`` (the study's ``[data] layout``) gives ``height`` and ``width``;
    default a square patch.
    """
    layer = hierarchy[area]
    spec = layer.spec
    W = hierarchy.backend.to_numpy(layer.W_fb)
    rows, cols = spec.size // spec.modules, W.shape[1] // spec.modules
    block = W[module * rows:(module + 1) * rows, module * cols:(module + 1) * cols]
    layout = layout or {}
    side = math.isqrt(cols)
    shape = (int(layout.get("height", side)), int(layout.get("width", cols // side)))
    if shape[0] * shape[1] != cols:
        raise ConfigurationError(f"{area}: {cols} inputs per unit do not form a {shape[0]} x {shape[1]} patch; "
                                 "set [data] layout.height and layout.width to the module's patch")
    return fields_from_weights(block, shape, kind="generative")


def run(hierarchy: Hierarchy, rule: Any, *, seed: int, data: Mapping[str, Any] | None = None,
        area: str = "level1", module: int = 0, threshold: float = 0.8) -> ExperimentResult:
    """Fields of one module of ``area`` from its generative weights, with Gabor fits.

    Parameters
    ----------
    data : mapping
        The study's [data] section; ``layout.height`` and ``layout.width`` give
        the patch shape (default: a square patch).
    area : str
        The area whose units' fields are drawn.
    module : int
        Which module of a modular area.
    threshold : float
        R^2 above which a field counts as Gabor-like.
    """
    fields = generative_fields(hierarchy, area, module, (data or {}).get("layout"))
    shape = fields.shape[1:]
    params, r2 = fit_gabors(fields)
    good = np.nan_to_num(r2, nan=-np.inf) >= threshold
    orientation = orientation_spread(params[good, 4])
    frequency = frequency_spread(params[good, 5])
    summary = {
        "units": int(fields.shape[0]),
        "fraction_gabor": fraction_well_fit(r2, threshold),
        "median_r2": float(np.nanmedian(r2)),
        "orientation_circular_variance": orientation["circular_variance"],
        "median_frequency": frequency["median"],
        "frequency_octaves": frequency["octaves"],
    }
    arrays = {"fields": fields, "gabor_params": params, "r2": r2}
    settings = {"area": area, "module": module, "threshold": threshold, "shape": list(shape)}
    return ExperimentResult("receptive_fields", arrays, summary, settings)


def summary(results: Mapping[str, Sequence[ExperimentResult]]) -> list[str]:
    """Per rule label: Gabor-like fraction and the spread of orientations and frequencies."""
    lines = [
        ("| rule label | seeds | units | Gabor-like (R² ≥ threshold) | median R² "
        "| orientation circular variance | median frequency (cycles/pixel) |"),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, runs in results.items():
        def mean(key: str, runs: Sequence[ExperimentResult] = runs) -> float:
            values = np.array([r.summary[key] for r in runs], dtype=np.float64)
            return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        lines.append(
            f"| {label} | {len(runs)} | {runs[0].summary['units']} | {100 * mean('fraction_gabor'):.0f} % "
            f"| {mean('median_r2'):.2f} | {mean('orientation_circular_variance'):.2f} "
            f"| {mean('median_frequency'):.3f} |"
        )
    threshold = next(iter(results.values()))[0].settings["threshold"]
    lines += ["", (f"Threshold R² = {threshold}; circular variance 0 means one shared orientation, "
                  "1 an even spread (`cortexsim.experiments.receptive_fields`).")]
    return lines


def figure(results: Mapping[str, Sequence[ExperimentResult]]) -> Any:
    """The fields of the first rule label's first seed, with their Gabor fits."""
    from ..plots.receptive_fields import receptive_field_grid

    label, runs = next(iter(results.items()))
    run = runs[0]
    share = 100 * run.summary["fraction_gabor"]
    return receptive_field_grid(
        run.arrays["fields"], fits=run.arrays["gabor_params"], r2=run.arrays["r2"],
        threshold=run.settings["threshold"],
        title=f"{label}: receptive fields of {run.settings['area']} module {run.settings['module']} "
              f"({share:.0f} % Gabor-like)",
    )
