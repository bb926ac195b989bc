"""Linear decoding of stimulus labels or continuous factors from each area's
activity, scored by k-fold cross-validation.

A decoder is a scikit-learn ``Pipeline`` of ``StandardScaler`` and
``LogisticRegression`` (labels: accuracy) or ``Ridge`` (factors: R^2). The
scaler is fitted inside each training fold, so nothing of the test fold leaks
into it; folds are shuffled with a fixed ``random_state`` and stratified by
label for classification, so every area is scored on the same folds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = ["DecodingScore", "chance_level", "decode", "decode_areas"]

KINDS = ("auto", "classification", "regression")


class DecodingScore(NamedTuple):
    """Cross-validated score of one decoder."""

    mean: float  # mean over folds (accuracy in [0, 1], or R^2)
    sd: float  # sample sd over folds (ddof=1)
    scores: np.ndarray  # (folds,)
    chance: float  # most frequent label's share (classification), 0 for R^2


def chance_level(labels: Any) -> float:
    """Accuracy of always guessing the most frequent label."""
    _, counts = np.unique(np.asarray(labels).ravel(), return_counts=True)
    return float(counts.max() / counts.sum())


def _kind(target: np.ndarray, kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    if kind != "auto":
        return kind
    # Integer, boolean and string labels are categories; floats are factors.
    return "regression" if target.dtype.kind in "fc" else "classification"


def decode(
    activity: Any,
    target: Any,
    kind: str = "auto",
    folds: int = 5,
    random_state: int = 0,
    C: float = 1.0,
    alpha: float = 1.0,
) -> DecodingScore:
    """Cross-validated linear decoding of ``target`` from one area's activity.

    Parameters
    ----------
    activity : array (samples, units)
        One row per stimulus; more axes after the first are flattened per row.
    target : array (samples,) or (samples, factors)
        Labels (integers, booleans, strings: classification, scored by
        accuracy) or continuous factors (floats: regression, scored by R^2,
        averaged over factors).
    kind : {"auto", "classification", "regression"}
        ``"auto"`` decides from ``target``'s dtype, as above.
    folds : int
        Number of cross-validation folds (>= 2).
    random_state : int
        Seed of the fold shuffle.
    C, alpha : float
        Inverse L2 penalty of ``LogisticRegression``; L2 penalty of ``Ridge``.

    Returns
    -------
    DecodingScore
        For a chance control, decode a shuffled ``target``
        (``np.random.default_rng(0).permutation(target)``).
    """
    x = np.asarray(activity, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"activity: expected shape (samples, units), got {x.shape}")
    x = x.reshape(x.shape[0], -1)
    y = np.asarray(target)
    if y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"target: expected shape ({x.shape[0]},) or ({x.shape[0]}, factors) to match "
            f"activity {x.shape}, got {y.shape}"
        )
    if int(folds) < 2:
        raise ValueError(f"folds: expected at least 2, got {folds}")
    kind = _kind(y, kind)
    if kind == "classification":
        if y.ndim != 1:
            raise ValueError(
                f"target: classification needs labels of shape (samples,), got {y.shape}"
            )
        decoder = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
        split = StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=random_state)
        scoring, chance = "accuracy", chance_level(y)
    else:
        y = y.astype(np.float64)
        decoder = make_pipeline(StandardScaler(), Ridge(alpha=alpha))
        split = KFold(n_splits=int(folds), shuffle=True, random_state=random_state)
        scoring, chance = "r2", 0.0
    scores = cross_val_score(decoder, x, y, cv=split, scoring=scoring)
    return DecodingScore(float(scores.mean()), float(scores.std(ddof=1)), scores, chance)


def decode_areas(
    activities: Mapping[str, Any], target: Any, **settings: Any
) -> dict[str, DecodingScore]:
    """:func:`decode` of the same ``target`` from each area of ``{area: activity}``.

    ``settings`` go to :func:`decode`; the same folds (same ``random_state``)
    serve every area, so the areas' scores are paired.
    """
    return {name: decode(a, target, **settings) for name, a in activities.items()}
