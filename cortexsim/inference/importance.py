"""Importance-weighted estimates of the marginal log-likelihood ``log p(x)`` of
a variational hierarchy (Burda, Grosse & Salakhutdinov 2016, "Importance
weighted autoencoders", arXiv:1509.00519, eq. 8; their evaluation uses
``k = 5000``)::

    L_k(x) = log (1/k) sum_{j=1..k} p(x, z_j) / q(z_j | x),   z_j ~ q(z | x)

``E[L_k]`` is a lower bound on ``log p(x)`` that rises with ``k`` and tends to
it as ``k -> infinity`` (when ``p/q`` is bounded). The ``k`` samples are taken
in chunks of at most ``rows`` rows (data x samples), and the log-mean-exp is
accumulated on the host in float64 with a running maximum, so memory stays
bounded whatever ``k``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..model.hierarchy import Hierarchy
from ..validation import check_choice, check_int
from . import recurrent
from .recurrent import recurrent_areas
from .variational import LIKELIHOODS, POSTERIORS, forward, log_weights, stochastic_areas

__all__ = ["importance_estimate", "log_likelihood_estimate", "recurrent_log_likelihood"]


def log_likelihood_estimate(
    hierarchy: Hierarchy,
    x: Any,
    k: int = 5000,
    *,
    likelihood: str = "bernoulli",
    posterior: str = "bottom_up",
    seed: int = 0,
    rows: int = 100_000,
    batch_size: int = 100,
) -> np.ndarray:
    """``L_k(x)`` per datum.

    Parameters
    ----------
    hierarchy : Hierarchy
        A variational model (``stochastic = true`` on its top area).
    x : array (N, n_0)
        Data, on the host or the hierarchy's backend.
    k : int
        Importance samples per datum (1 gives a single-sample ELBO estimate).
    likelihood, posterior : str
        As for the ``elbo`` rule.
    seed : int
        Seeds the host generator of the noise.
    rows : int
        At most this many rows (data x samples) per forward pass.
    batch_size : int
        Data per group (each group's ``k`` samples run in chunks of ``rows // batch_size``).

    Returns
    -------
    numpy.ndarray (N,)
        The estimates, float64.
    """
    check_choice(likelihood, LIKELIHOODS, "likelihood")
    check_choice(posterior, POSTERIORS, "posterior")
    flags = stochastic_areas(hierarchy)
    be, xp = hierarchy.backend, hierarchy.backend.xp

    def log_w(tiled: Any, rng: np.random.Generator) -> Any:
        noise = [
            be.asarray(rng.standard_normal(size=(tiled.shape[0], area.size))) if flag else None
            for area, flag in zip(hierarchy.areas, flags)
        ]
        p = forward(hierarchy, tiled, noise, posterior=posterior, likelihood=likelihood, analytic_kl=False)
        return log_weights(xp, p)

    return importance_estimate(be, x, k, log_w, seed=seed, rows=rows, batch_size=batch_size)


def importance_estimate(
    be: Any, x: Any, k: int, log_w: Callable[[Any, np.random.Generator], Any], *, seed: int = 0,
    rows: int = 100_000, batch_size: int = 100,
) -> np.ndarray:
    """``L_k(x)`` per datum for any model whose importance log weights ``log_w`` gives.

    Parameters
    ----------
    be : Backend
        Where ``log_w`` computes.
    x : array (N, n_0)
        Data, on the host or the backend.
    log_w : callable
        ``log_w(tiled, rng)``: ``log p(x, z) - log q(z | x)`` (rows,) for data rows
        ``tiled`` (count * batch, n_0, replicate-major), its noise drawn from ``rng``.
    seed, rows, batch_size : int
        As for :func:`log_likelihood_estimate`.
    """
    k = check_int(k, "k", minimum=1)
    rows = check_int(rows, "rows", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    xp = be.xp
    x = be.asarray(x if isinstance(x, np.ndarray) else be.to_numpy(x))
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    result = np.empty(n)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        data = x[start:stop, ...]
        batch = stop - start
        chunk = max(1, min(k, rows // batch))
        peak = np.full(batch, -np.inf)
        total = np.zeros(batch)
        for first in range(0, k, chunk):
            count = min(chunk, k - first)
            tiled = data if count == 1 else xp.concat([data] * count, axis=0)
            logw = be.to_numpy(log_w(tiled, rng)).astype(np.float64).reshape(count, batch)
            new_peak = np.maximum(peak, logw.max(axis=0))
            total = total * np.exp(peak - new_peak) + np.exp(logw - new_peak).sum(axis=0)
            peak = new_peak
        result[start:stop] = np.log(total) + peak - math.log(k)
    return result


def recurrent_log_likelihood(
    hierarchy: Hierarchy, x: Any, k: int = 5000, *, steps: int, likelihood: str = "bernoulli",
    prior: str = "standard", seed: int = 0, rows: int = 100_000, batch_size: int = 100,
) -> np.ndarray:
    """``L_k(x)`` per datum of the recurrent VAE (``inference/recurrent.py``) run
    for ``steps`` steps; the other parameters as for :func:`log_likelihood_estimate`.
    The noise of each chunk is drawn step by step, first step first."""
    check_choice(likelihood, LIKELIHOODS, "likelihood")
    steps = check_int(steps, "steps", minimum=1)
    be, xp = hierarchy.backend, hierarchy.backend.xp
    size = recurrent_areas(hierarchy)[1].size

    def log_w(tiled: Any, rng: np.random.Generator) -> Any:
        noise = [be.asarray(rng.standard_normal(size=(tiled.shape[0], size))) for _ in range(steps)]
        p = recurrent.forward(hierarchy, tiled, noise, likelihood=likelihood, prior=prior, analytic_kl=False)
        return recurrent.log_weights(xp, p)

    return importance_estimate(be, x, k, log_w, seed=seed, rows=rows, batch_size=batch_size)
