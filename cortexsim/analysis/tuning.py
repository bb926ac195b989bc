"""Tuning curves: responses grouped by the value of one stimulus parameter
(orientation, length, contrast, ...), preferred values, and the circular
selectivity of orientation or direction tuning.

Rows are trials (or stimuli) and columns units throughout.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "TuningCurves",
    "orientation_selectivity",
    "preferred_angle",
    "preferred_value",
    "tuning_curves",
]


class TuningCurves(NamedTuple):
    """Mean response per stimulus value and unit, with its standard error."""

    values: np.ndarray  # (k,) the distinct stimulus values, sorted
    mean: np.ndarray  # (k, units)
    sem: np.ndarray  # (k, units) sd (ddof=1) / sqrt(count); NaN for a single trial
    count: np.ndarray  # (k,) trials per value


def _responses(responses: Any, name: str = "responses") -> np.ndarray:
    r = np.asarray(responses, dtype=np.float64)
    if r.ndim == 1:
        r = r[:, None]
    if r.ndim != 2:
        raise ValueError(f"{name}: expected shape (trials, units) or (trials,), got {r.shape}")
    return r


def tuning_curves(responses: Any, values: Any) -> TuningCurves:
    """Mean and standard error of each unit's response at each distinct stimulus value.

    Parameters
    ----------
    responses : array (trials, units) or (trials,)
        One row per trial or stimulus.
    values : array (trials,)
        The stimulus parameter of each row (any sortable values: angles in
        radians, lengths, contrasts, category codes).

    Returns
    -------
    TuningCurves
        ``values`` (k,), ``mean`` and ``sem`` (k, units), ``count`` (k,).
    """
    r = _responses(responses)
    v = np.asarray(values).ravel()
    if v.shape[0] != r.shape[0]:
        raise ValueError(
            f"values: {v.shape[0]} entries (shape {np.shape(values)}) but responses has "
            f"{r.shape[0]} rows (shape {r.shape})"
        )
    unique, which = np.unique(v, return_inverse=True)
    count = np.bincount(which, minlength=len(unique))
    mean = np.zeros((len(unique), r.shape[1]))
    np.add.at(mean, which, r)
    mean /= count[:, None]
    squares = np.zeros_like(mean)
    np.add.at(squares, which, (r - mean[which]) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(squares / (count[:, None] - 1))
        sem = np.where(count[:, None] > 1, sd / np.sqrt(count[:, None]), np.nan)
    return TuningCurves(unique, mean, sem, count)


def _curves(mean: Any, values: Any) -> tuple[np.ndarray, np.ndarray]:
    m = _responses(mean, "mean")
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.shape[0] != m.shape[0]:
        raise ValueError(
            f"values: {v.shape[0]} entries but mean has {m.shape[0]} rows (shape {m.shape}); "
            "rows of mean are the stimulus values"
        )
    return m, v


def preferred_value(mean: Any, values: Any) -> np.ndarray:
    """The stimulus value of each unit's largest mean response (the first one on ties).

    Parameters
    ----------
    mean : array (k, units)
        Tuning curves, e.g. ``tuning_curves(...).mean``.
    values : array (k,)
        The stimulus value of each row.

    Returns
    -------
    array (units,)
    """
    m = _responses(mean, "mean")
    v = np.asarray(values).ravel()
    if v.shape[0] != m.shape[0]:
        raise ValueError(f"values: {v.shape[0]} entries but mean has shape {m.shape}")
    return v[np.argmax(m, axis=0)]


def _resultant(mean: Any, angles: Any, period: float) -> tuple[np.ndarray, np.ndarray]:
    """Vector sum of the rectified responses on the circle of ``period``, and their sum."""
    m, a = _curves(mean, angles)
    if not period > 0:
        raise ValueError(f"period: expected a positive angle (pi for orientation), got {period}")
    # Rectified: a response below zero means "not driven", not "driven towards the
    # opposite angle", which is what a negative weight on the circle would claim.
    r = np.maximum(m, 0.0)
    phasor = np.exp(2j * np.pi * a / period)
    return phasor @ r, r.sum(axis=0)


def preferred_angle(mean: Any, angles: Any, period: float = np.pi) -> np.ndarray:
    """Each unit's preferred angle as the direction of its response-weighted vector sum.

    ``angle( sum_k r_k exp(2 pi i a_k / period) ) * period / (2 pi)`` with
    responses rectified at 0; with ``period = pi`` (orientation) angles are
    doubled, with ``2 pi`` (direction) they are not. It interpolates between the
    sampled angles, unlike :func:`preferred_value`.

    Parameters
    ----------
    mean : array (k, units)
    angles : array (k,)
        Radians.
    period : float
        pi for orientation, 2 pi for direction.

    Returns
    -------
    array (units,)
        In [0, period); NaN for a unit with no positive response.
    """
    vector, total = _resultant(mean, angles, period)
    angle = np.mod(np.angle(vector) * period / (2.0 * np.pi), period)
    return np.where(total > 0, angle, np.nan)


def orientation_selectivity(mean: Any, angles: Any, period: float = np.pi) -> np.ndarray:
    """Orientation (or direction) selectivity ``1 - circular variance`` of each tuning curve.

    ``OSI = |sum_k r_k exp(2 pi i a_k / period)| / sum_k r_k`` (Ringach et al.
    2002), with responses rectified at 0 (see :func:`preferred_angle`): 1 for a
    unit responding at one angle only, 0 for a flat curve; ``1 + cos(2 theta)``
    sampled evenly gives 0.5. Sample the angles evenly over the period, or an
    untuned unit reads as tuned.

    Parameters
    ----------
    mean : array (k, units)
    angles : array (k,)
        Radians.
    period : float
        pi for orientation (angles doubled), 2 pi for direction.

    Returns
    -------
    array (units,)
        In [0, 1]; NaN for a unit with no positive response.
    """
    vector, total = _resultant(mean, angles, period)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.abs(vector) / total, np.nan)
