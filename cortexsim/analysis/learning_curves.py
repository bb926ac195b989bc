"""Learning curves over seeds: means, Student t intervals, best epochs and the
per-rule summary table.

Everything here is a pure function of NumPy arrays, so every number of a report
can be recomputed from the recordings' ``/metrics`` datasets by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["best_epoch", "mean_and_interval", "mean_and_sd", "stack_curves", "summary_table"]

BEST_VALIDATION = "best validation epoch"
FINAL_EPOCH = "final epoch (no validation curve)"


def stack_curves(curves: Sequence[Any]) -> np.ndarray:
    """Stack per-seed 1-D curves into ``(seeds, epochs)``, padding shorter ones with NaN."""
    rows = [np.asarray(c, dtype=np.float64).ravel() for c in curves]
    out = np.full((len(rows), max((len(r) for r in rows), default=0)), np.nan)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def mean_and_interval(
    curves: Any, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds and the Student t confidence interval of that mean.

    Parameters
    ----------
    curves : array (seeds, epochs)
        One row per seed (a 1-D array is one seed). NaN marks a missing value;
        each column uses the seeds that have a value there.
    confidence : float
        Two-sided confidence level, in (0, 1).

    Returns
    -------
    mean, low, high : arrays (epochs,)
        ``mean -+ t_{(1+confidence)/2, n-1} * s / sqrt(n)`` with ``s`` the sample
        standard deviation (ddof=1) of the ``n`` seeds; with one seed, the
        interval is the mean itself; with none, NaN.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x = np.asarray(curves, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"curves: expected shape (seeds, epochs), got {x.shape}")
    n = np.sum(np.isfinite(x), axis=0)
    safe = np.where(np.isfinite(x), x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, safe.sum(axis=0) / n, np.nan)
        squares = np.where(np.isfinite(x), (x - mean) ** 2, 0.0).sum(axis=0)
        sd = np.sqrt(squares / np.maximum(n - 1, 1))
        half = stats.t.ppf(0.5 + confidence / 2.0, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
    half = np.where(n > 1, half, 0.0)
    return mean, mean - half, mean + half


def mean_and_sd(values: Any) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) of finite ``values``; sd 0 for one value."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def best_epoch(validation: Any) -> int:
    """Index (0-based) of the highest validation value; the first one on ties. NaN is skipped."""
    v = np.asarray(validation, dtype=np.float64).ravel()
    if v.size == 0 or not np.any(np.isfinite(v)):
        raise ValueError("best_epoch: the validation curve has no finite value")
    return int(np.nanargmax(v))  # argmax returns the first maximum


def _curve(run: Mapping[str, Any], *names: str) -> np.ndarray | None:
    for name in names:
        value = run.get(name)
        if value is not None:
            value = np.asarray(value, dtype=np.float64).ravel()
            if value.size and np.any(np.isfinite(value)):
                return value
    return None


def summary_table(results: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """One row per rule label: test accuracy at the best validation epoch, and at the end.

    Parameters
    ----------
    results : {label: [per-seed dict]}
        Each per-seed dict holds ``"test"`` (or ``"test_accuracy"``): the test curve
        per epoch, and optionally ``"validation"`` (or ``"validation_accuracy"``)
        and ``"epoch"`` (1-based epoch numbers; default ``index + 1``).

    Returns
    -------
    list of dict
        Per label, in input order: ``label``, ``seeds``, ``best_test_mean``,
        ``best_test_sd`` (test accuracy at each seed's best validation epoch, mean and
        sample sd over seeds, ddof=1, 0 for one seed), ``final_test_mean``,
        ``final_test_sd`` (last epoch), ``best_epoch_mean`` (mean 1-based epoch
        number chosen), ``selection`` (how the epoch was chosen) and ``note``.
        When any seed of a label lacks a validation curve, every seed of that label
        uses its final epoch instead, and ``selection`` says so.
    """
    rows = []
    for label, runs in results.items():
        tests, validations, epochs = [], [], []
        for i, run in enumerate(runs):
            test = _curve(run, "test", "test_accuracy")
            if test is None:
                raise ValueError(f"summary_table: {label!r} seed #{i} has no test curve")
            tests.append(test)
            validations.append(_curve(run, "validation", "validation_accuracy"))
            epoch = run.get("epoch")
            epochs.append(
                np.arange(1, len(test) + 1) if epoch is None else np.asarray(epoch).ravel()
            )
        use_validation = bool(runs) and all(v is not None for v in validations)
        best, chosen, final = [], [], []
        for test, validation, epoch in zip(tests, validations, epochs):
            last = len(test) - 1
            index = best_epoch(validation[: len(test)]) if use_validation else last
            best.append(test[index])
            chosen.append(float(epoch[index]))
            final.append(test[last])
        best_mean, best_sd = mean_and_sd(best)
        final_mean, final_sd = mean_and_sd(final)
        rows.append(
            {
                "label": label,
                "seeds": len(runs),
                "best_test_mean": best_mean,
                "best_test_sd": best_sd,
                "final_test_mean": final_mean,
                "final_test_sd": final_sd,
                "best_epoch_mean": float(np.mean(chosen)) if chosen else float("nan"),
                "selection": BEST_VALIDATION if use_validation else FINAL_EPOCH,
                "note": ""
                if use_validation or not runs
                else "no validation curve: test accuracy taken at the final epoch",
            }
        )
    return rows
