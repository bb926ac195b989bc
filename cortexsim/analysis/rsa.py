"""Representational similarity analysis: dissimilarity matrices (RDMs) of each
area's responses to a common stimulus set, and rank or linear correlations
between RDMs across areas, rules and models (Kriegeskorte et al. 2008).

Rows of an activity matrix are stimuli and columns units; the RDM is
(stimuli, stimuli), so areas of different widths are comparable as long as
they saw the same stimuli in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats
from scipy.spatial.distance import pdist, squareform

__all__ = ["compare_all", "compare_rdms", "rdm", "rdms"]

METRICS = ("correlation", "euclidean", "cosine", "sqeuclidean")
METHODS = {"spearman": stats.spearmanr, "pearson": stats.pearsonr}


def rdm(activity: Any, metric: str = "correlation") -> np.ndarray:
    """The representational dissimilarity matrix of one area's responses.

    Parameters
    ----------
    activity : array (stimuli, units)
        One row per stimulus; more axes after the first are flattened per row.
    metric : {"correlation", "euclidean", "cosine", "sqeuclidean"}
        ``"correlation"``: ``1 - pearson(x_i, x_j)`` over units, invariant to
        scaling and shifting each stimulus's response pattern, but not to
        rotations of the unit space. ``"euclidean"``: ``|x_i - x_j|``,
        invariant to rotations and translations of the unit space.

    Returns
    -------
    array (stimuli, stimuli)
        Symmetric with a zero diagonal; a constant response pattern has no
        correlation, so its row is NaN under ``"correlation"``.
    """
    x = np.asarray(activity, dtype=np.float64)
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(f"activity: expected shape (stimuli >= 2, units), got {x.shape}")
    if metric not in METRICS:
        raise ValueError(f"metric: expected one of {METRICS}, got {metric!r}")
    x = x.reshape(x.shape[0], -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = squareform(pdist(x, metric=metric), checks=False)
    np.fill_diagonal(d, 0.0)
    return d


def rdms(activities: Mapping[str, Any], metric: str = "correlation") -> dict[str, np.ndarray]:
    """:func:`rdm` of every area (or rule, model) of ``{name: activity (stimuli, units)}``."""
    return {name: rdm(a, metric=metric) for name, a in activities.items()}


def _upper(d: Any, name: str) -> np.ndarray:
    m = np.asarray(d, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 3:
        raise ValueError(f"{name}: expected a square RDM (stimuli >= 3, stimuli), got {m.shape}")
    return m[np.triu_indices(m.shape[0], k=1)]


def compare_rdms(a: Any, b: Any, method: str = "spearman") -> float:
    """Correlation between the upper triangles (diagonal excluded) of two RDMs.

    Parameters
    ----------
    a, b : array (stimuli, stimuli)
        RDMs of the same stimuli in the same order.
    method : {"spearman", "pearson"}
        Spearman's rho (default) assumes only that larger means more
        dissimilar, which suits RDMs of different metrics or models; Pearson's r
        assumes a linear relation.

    Returns
    -------
    float
        In [-1, 1]; pairs where either RDM is NaN are left out; NaN when fewer
        than 3 pairs remain or either triangle is constant.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {tuple(METHODS)}, got {method!r}")
    ua, ub = _upper(a, "a"), _upper(b, "b")
    if ua.shape != ub.shape:
        raise ValueError(
            f"b: shape {np.shape(b)} does not match a's {np.shape(a)}; RDMs must cover the "
            "same stimuli"
        )
    keep = np.isfinite(ua) & np.isfinite(ub)
    ua, ub = ua[keep], ub[keep]
    if ua.size < 3 or np.ptp(ua) == 0 or np.ptp(ub) == 0:
        return float("nan")
    return float(METHODS[method](ua, ub)[0])


def compare_all(
    rdm_by_name: Mapping[str, Any], method: str = "spearman"
) -> tuple[list[str], np.ndarray]:
    """Every pairwise :func:`compare_rdms` of ``{name: rdm}`` (areas, rules, models).

    Returns
    -------
    names : list of str
        The keys, in order.
    matrix : array (k, k)
        Symmetric; ``matrix[i, j]`` compares ``names[i]`` with ``names[j]``; the
        diagonal is 1 (NaN for a constant RDM).
    """
    names = list(rdm_by_name)
    k = len(names)
    matrix = np.full((k, k), np.nan)
    for i in range(k):
        for j in range(i, k):
            matrix[i, j] = matrix[j, i] = compare_rdms(
                rdm_by_name[names[i]], rdm_by_name[names[j]], method
            )
    return names, matrix
