"""Diagnostics of iterative inference from its energy traces: relative change
per step, steps to reach a tolerance, final energy, monotonicity.

A trace is the free energy before the first relaxation step and after each
step, as an energy probe records it: ``energy[..., t]`` after ``t`` steps,
shape ``(steps + 1,)`` for one batch or ``(batches, steps + 1)`` for many.
NaN marks steps not taken (a relaxation that stopped early); it is skipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "convergence_summary",
    "final_energy",
    "monotonic_fraction",
    "relative_change",
    "steps_to_tolerance",
]

NEVER = -1  # steps_to_tolerance of a trace that never gets below the tolerance


def _traces(energy: Any) -> np.ndarray:
    e = np.asarray(energy, dtype=np.float64)
    if e.ndim not in (1, 2) or e.shape[-1] < 2:
        raise ValueError(
            f"energy: expected shape (steps + 1,) or (batches, steps + 1) with at least "
            f"2 values per trace, got {e.shape}"
        )
    return e


def relative_change(energy: Any) -> np.ndarray:
    """Signed relative change of the energy at each step, ``(E_t - E_{t-1}) / |E_{t-1}|``.

    Parameters
    ----------
    energy : array (steps + 1,) or (batches, steps + 1)

    Returns
    -------
    array (steps,) or (batches, steps)
        Column ``t - 1`` belongs to step ``t``; negative means the energy fell.
        A step from ``E_{t-1} = 0`` is 0 if the energy stayed 0, else +-inf.
    """
    e = _traces(energy)
    before, after = e[..., :-1], e[..., 1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        change = (after - before) / np.abs(before)
    return np.where((before == 0) & (after == 0), 0.0, change)


def steps_to_tolerance(energy: Any, tol: float = 1e-3) -> np.ndarray | int:
    """The first step whose relative energy change is below ``tol`` in magnitude.

    Parameters
    ----------
    energy : array (steps + 1,) or (batches, steps + 1)
    tol : float
        Tolerance on ``|relative_change|`` (> 0).

    Returns
    -------
    int or array (batches,) of int
        The smallest ``t >= 1`` with ``|E_t - E_{t-1}| / |E_{t-1}| < tol``, i.e. the
        number of steps after which the relaxation would stop; ``-1`` (``NEVER``)
        when no step gets there. An integer, not NaN, so it indexes and counts;
        mask ``result >= 0`` before averaging.
    """
    if not tol > 0:
        raise ValueError(f"tol: expected a positive tolerance, got {tol}")
    change = np.abs(relative_change(energy))
    below = change < tol  # NaN compares False: a step not taken never converges
    first = np.where(below.any(axis=-1), np.argmax(below, axis=-1) + 1, NEVER)
    return int(first) if first.ndim == 0 else first.astype(np.int64)


def final_energy(energy: Any) -> np.ndarray | float:
    """The last finite energy of each trace (NaN when a trace has none).

    Parameters
    ----------
    energy : array (steps + 1,) or (batches, steps + 1)

    Returns
    -------
    float or array (batches,)
    """
    e = _traces(energy)
    finite = np.isfinite(e)
    last = e.shape[-1] - 1 - np.argmax(finite[..., ::-1], axis=-1)
    value = np.take_along_axis(e, np.expand_dims(last, -1), axis=-1)[..., 0]
    value = np.where(finite.any(axis=-1), value, np.nan)
    return float(value) if value.ndim == 0 else value


def monotonic_fraction(energy: Any) -> np.ndarray | float:
    """Fraction of steps that did not raise the energy (``E_t <= E_{t-1}``).

    Parameters
    ----------
    energy : array (steps + 1,) or (batches, steps + 1)

    Returns
    -------
    float or array (batches,)
        Over the steps taken (both ends finite); 1 for a descent that never
        climbs; NaN for a trace without a step.
    """
    e = _traces(energy)
    before, after = e[..., :-1], e[..., 1:]
    taken = np.isfinite(before) & np.isfinite(after)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.sum((after <= before) & taken, axis=-1) / np.sum(taken, axis=-1)
    return float(value) if np.ndim(value) == 0 else value


def convergence_summary(energy: Any, tol: float = 1e-3) -> dict[str, Any]:
    """All diagnostics of a set of traces, one entry per quantity.

    Returns
    -------
    dict
        ``steps_to_tolerance``, ``final_energy``, ``monotonic_fraction`` as above
        (per trace), ``converged_fraction`` (share of traces reaching ``tol``) and
        ``median_steps`` (median over the traces that converged; NaN if none).
    """
    steps = np.atleast_1d(steps_to_tolerance(energy, tol))
    done = steps[steps >= 0]
    return {
        "steps_to_tolerance": steps_to_tolerance(energy, tol),
        "final_energy": final_energy(energy),
        "monotonic_fraction": monotonic_fraction(energy),
        "converged_fraction": float(np.mean(steps >= 0)),
        "median_steps": float(np.median(done)) if done.size else float("nan"),
    }
