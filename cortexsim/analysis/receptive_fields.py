"""Receptive fields: read from weights, or estimated by reverse correlation of
recorded activity against the stimuli that evoked it.

Shapes follow the recordings: rows are stimuli (samples), columns are units or
pixels. Every function returns one field per unit, shape ``(units, d)`` or
``(units, *shape)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import Ridge

__all__ = ["fields_from_weights", "ridge_fields", "spike_triggered_average"]

WEIGHT_KINDS = ("generative", "recognition")


def _reshape(fields: np.ndarray, shape: Sequence[int] | None, name: str) -> np.ndarray:
    if shape is None:
        return fields
    shape = tuple(int(s) for s in shape)
    if int(np.prod(shape)) != fields.shape[1]:
        raise ValueError(
            f"{name}: shape {shape} holds {int(np.prod(shape))} pixels, but each field "
            f"has {fields.shape[1]}"
        )
    return fields.reshape(fields.shape[0], *shape)


def fields_from_weights(
    weights: Any, shape: Sequence[int] | None = None, kind: str = "generative"
) -> np.ndarray:
    """Each unit's receptive field read from a weight matrix, optionally as image patches.

    Parameters
    ----------
    weights : array (n_l, n_{l-1}) or (n_{l-1}, n_l)
        ``kind="generative"``: area l's ``W_fb``, shape ``(n_l, n_{l-1})``, whose
        row i is unit i's projective field onto the area below (the pattern it
        predicts there): its receptive field in the sense of Rao & Ballard (1999)
        and Olshausen & Field (1996). ``kind="recognition"``: area l's ``W_ff``,
        shape ``(n_{l-1}, n_l)``, whose column i is unit i's feedforward filter.
    shape : tuple of int, optional
        Image shape of the area below, e.g. ``(8, 8)``; its product must be n_{l-1}.
    kind : {"generative", "recognition"}

    Returns
    -------
    array (n_l, n_{l-1}) or (n_l, *shape)
        A float64 copy; the weights are not modified.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"weights: expected a 2-D weight matrix, got shape {w.shape}")
    if kind not in WEIGHT_KINDS:
        raise ValueError(f"kind: expected one of {WEIGHT_KINDS}, got {kind!r}")
    fields = w.copy() if kind == "generative" else w.T.copy()
    return _reshape(fields, shape, "shape")


def _pair(stimuli: Any, responses: Any) -> tuple[np.ndarray, np.ndarray]:
    """Stimuli flattened to (n, d) and responses as (n, units), with matching n."""
    s = np.asarray(stimuli, dtype=np.float64)
    r = np.asarray(responses, dtype=np.float64)
    if s.ndim < 2:
        raise ValueError(f"stimuli: expected shape (n, d) or (n, h, w), got {s.shape}")
    s = s.reshape(s.shape[0], -1)
    if r.ndim == 1:
        r = r[:, None]
    if r.ndim != 2:
        raise ValueError(f"responses: expected shape (n, units) or (n,), got {r.shape}")
    if r.shape[0] != s.shape[0]:
        raise ValueError(
            f"responses: {r.shape[0]} rows (shape {r.shape}) but stimuli has {s.shape[0]} "
            f"(shape {s.shape}); rows must be the same stimuli"
        )
    if s.shape[0] < 2:
        raise ValueError(f"stimuli: need at least 2 stimuli, got shape {s.shape}")
    return s, r


def spike_triggered_average(
    stimuli: Any,
    responses: Any,
    shape: Sequence[int] | None = None,
    weighting: str = "covariance",
) -> np.ndarray:
    """Response-weighted average of the stimuli, one field per unit (reverse correlation).

    Parameters
    ----------
    stimuli : array (n, d) or (n, h, w)
        The stimuli shown, one per row (flattened per row).
    responses : array (n, units) or (n,)
        Each unit's response to each stimulus (e.g. a recorded activity).
    shape : tuple of int, optional
        Reshape each field to this image shape.
    weighting : {"covariance", "spikes"}
        ``"covariance"`` (default): ``sta_u = sum_t (r_tu - mean r_u)(s_t - mean s) / n``,
        the stimulus-response cross-covariance, defined for graded responses of
        either sign. For white stimuli of variance ``v`` and a linear response
        ``r = s . k``, it equals ``v * k``. ``"spikes"``: the classic STA of
        non-negative counts, ``sum_t r_tu (s_t - mean s) / sum_t r_tu``; a unit
        that never responds gets NaN; negative responses raise ValueError.

    Returns
    -------
    array (units, d) or (units, *shape)

    Notes
    -----
    Both are unbiased only for white (uncorrelated, equal-variance) stimuli;
    with correlated stimuli (natural images) the STA is the field blurred by the
    stimulus covariance: use :func:`ridge_fields` there.
    """
    s, r = _pair(stimuli, responses)
    s_c = s - s.mean(axis=0)
    if weighting == "covariance":
        fields = (r - r.mean(axis=0)).T @ s_c / s.shape[0]
    elif weighting == "spikes":
        if np.any(r < 0):
            raise ValueError(
                "responses: weighting='spikes' needs non-negative responses (counts or rates); "
                f"got a minimum of {r.min():g}; use weighting='covariance'"
            )
        total = r.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            fields = (r.T @ s_c) / total[:, None]
    else:
        raise ValueError(f"weighting: expected 'covariance' or 'spikes', got {weighting!r}")
    return _reshape(fields, shape, "shape")


def ridge_fields(
    stimuli: Any, responses: Any, shape: Sequence[int] | None = None, alpha: float = 1.0
) -> np.ndarray:
    """Linear receptive fields by ridge regression of responses on stimuli, one per unit.

    Fits ``r_u = s . k_u + b_u`` for every unit together (scikit-learn ``Ridge``
    with an intercept, so means are removed first), minimising
    ``|r_u - S k_u - b_u|^2 + alpha |k_u|^2``, i.e.
    ``k_u = (S_c^T S_c + alpha I)^-1 S_c^T r_u`` with centred stimuli ``S_c``.
    Unlike the STA it undoes stimulus correlations (natural images).

    Parameters
    ----------
    stimuli : array (n, d) or (n, h, w)
    responses : array (n, units) or (n,)
    shape : tuple of int, optional
        Reshape each field to this image shape.
    alpha : float
        Ridge penalty (>= 0), in the units of ``sum_t s_t^2``: it matters
        relative to ``n`` times the stimulus variance.

    Returns
    -------
    array (units, d) or (units, *shape)
        The filters ``k_u``, in response units per stimulus unit.
    """
    if not alpha >= 0:
        raise ValueError(f"alpha: expected a non-negative penalty, got {alpha}")
    s, r = _pair(stimuli, responses)
    model = Ridge(alpha=float(alpha), fit_intercept=True).fit(s, r)
    fields = np.atleast_2d(model.coef_).reshape(r.shape[1], s.shape[1])
    return _reshape(fields, shape, "shape")
