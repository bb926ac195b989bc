"""Treves-Rolls sparseness of a code, per unit across stimuli (lifetime) and per
stimulus across units (population), in the normalized form of Vinje & Gallant
(2000)::

    S = (1 - (sum_i a_i / n)^2 / (sum_i a_i^2 / n)) / (1 - 1/n)

over the n responses ``a_i`` of one unit (lifetime) or one stimulus
(population). S = 1 when one response carries everything (maximally sparse),
S = 0 when all are equal (dense).

Negative responses: ``a_i = |r_i|``. Model activities are signed (linear, tanh,
sparse-coding latents under a Laplace prior), and a unit's sign is arbitrary:
flipping a unit's weights and activity changes nothing the model computes. The
magnitude is what is active, so it is what sparseness counts; rectifying would
call a strongly negative unit silent. Pass ``np.maximum(r, 0)`` for firing rates
that must be rectified.

Silent rows (every response 0) have no sparseness (0/0): NaN, as are
rows with a non-finite value and rows of one response (``1 - 1/n = 0``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["lifetime_sparseness", "population_sparseness", "treves_rolls"]


def treves_rolls(responses: Any, axis: int = -1) -> np.ndarray:
    """Normalized Treves-Rolls sparseness of ``|responses|`` along ``axis`` (module docstring).

    Parameters
    ----------
    responses : array
        Any shape; ``axis`` holds the n responses of one measurement.
    axis : int

    Returns
    -------
    array
        ``responses``' shape without ``axis``; values in [0, 1], NaN where undefined.
    """
    a = np.abs(np.asarray(responses, dtype=np.float64))
    if a.ndim == 0:
        raise ValueError(f"responses: expected at least one axis, got shape {a.shape}")
    n = a.shape[axis]
    mean = a.mean(axis=axis)
    mean_square = (a**2).mean(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (1.0 - mean**2 / mean_square) / (1.0 - 1.0 / n)
    # Rounding can push a constant code a hair below 0 or a one-hot code above 1.
    return np.where(mean_square > 0, np.clip(s, 0.0, 1.0), np.nan)


def _table(responses: Any) -> np.ndarray:
    r = np.asarray(responses, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"responses: expected shape (stimuli, units), got {r.shape}")
    return r


def lifetime_sparseness(responses: Any) -> np.ndarray:
    """Sparseness of each unit's responses across stimuli.

    Parameters
    ----------
    responses : array (stimuli, units)

    Returns
    -------
    array (units,)
    """
    return treves_rolls(_table(responses), axis=0)


def population_sparseness(responses: Any) -> np.ndarray:
    """Sparseness of each stimulus's responses across units.

    Parameters
    ----------
    responses : array (stimuli, units)

    Returns
    -------
    array (stimuli,)
    """
    return treves_rolls(_table(responses), axis=1)
