"""Iterative refinement of the posteriors of a variational hierarchy: gradient
ascent of each datum's ELBO with respect to its own posterior parameters, the
weights held fixed, started at the amortized recognition pass (semi-amortized
inference: Marino, Yue & Mandt 2018, "Iterative amortized inference", ICML,
arXiv:1807.09356; Kim, Wiseman, Miller, Sontag & Rush 2018, "Semi-amortized
variational autoencoders", ICML, arXiv:1802.02550; the amortization gap of
Cremer, Li & Duvenaud 2018, "Inference suboptimality in variational
autoencoders", ICML, arXiv:1801.03558). docs/math.md, "Refined posteriors".

The refined posterior of datum ``b`` is one free diagonal Gaussian per
stochastic area, ``q(z | x_b) = prod_l N(z_l; m_l, exp(v_l))`` (mean field
across areas). Each area's prior ``p(z_l | z_{l+1})`` is predicted by the area
above from its sample (``inference/variational.py``, "Generation"). With
``z_l = m_l + exp(v_l / 2) e_l`` and ``e ~ N(0, I)`` (reparameterization) the
bound is::

    ELBO = E_e[ log p(x | z) - beta sum_l KL(N(m_l, e^{v_l}) || N(m^p_l, e^{v^p_l})) ]

with the closed-form KL, exact here at every area: q of area ``l`` does not
depend on the sample above, so its KL to a prior conditioned on that sample is
the conditional expectation the bound needs. Its gradient is predictive coding
on the stochastic hierarchy: per area, the top-down mismatch

    eps_l = (m_l - m^p_l) e^{-v^p_l}                   (precision-weighted prior error)

and the bottom-up error ``g_l = dlog p(below | z_l)/dz_l`` that the area's
prediction of the area below sends back up (through ``W_fb^T``, ``phi'`` and
the deterministic decoder areas in between, from the data's error ``x -
E[x | z]`` or the next stochastic area's ``beta eps`` and variance error)::

    dELBO/dm_l = E_e[g_l] - beta eps_l
    dELBO/dv_l = E_e[g_l (z_l - m_l)] / 2 - beta (e^{v_l - v^p_l} - 1) / 2

Each datum's bound is the mean of ``samples`` draws; the ascent is plain
gradient ascent (``"sgd"``) or Adam on the posterior parameters (``"adam"``;
0.9, 0.999, 1e-8), with fresh noise from the seeded host generator at every
step unless fixed noise is given. With one stochastic area the starting q is
the amortized q itself; with several, the start takes each area's amortized
mean and log-variance along the noise-free recognition pass (bottom-up or
ladder), and the amortized q proper (each area conditioned on a sample) is a
different distribution, evaluated by :func:`refined_bounds` beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..model.hierarchy import Hierarchy
from ..validation import (
    check_choice, check_int, check_keys, check_number, invalid, located, settings_keys,
)
from .importance import log_likelihood_estimate
from .variational import (
    LIKELIHOODS,
    POSTERIORS,
    Pass,
    forward,
    generate,
    kl_analytic,
    kl_sampled,
    log_likelihood,
    log_weights,
    sigmoid,
    stochastic_areas,
)

__all__ = [
    "OPTIMIZERS", "Refined", "Refinement", "amortized_posterior", "elbo_and_gradient",
    "refine", "refined_bounds", "refined_log_weights",
]

OPTIMIZERS = ("adam", "sgd")
_ADAM = (0.9, 0.999, 1e-8)


@dataclass(frozen=True)
class Refinement:
    """Settings of the iterative refinement.

    Parameters
    ----------
    steps : int
        Ascent steps (>= 0; 0 returns the amortized start).
    step_size : float
        Step on the posterior parameters (> 0): the learning rate of Adam, or
        the factor of the gradient in plain ascent.
    optimizer : str
        ``"adam"`` (Adam in latent space) or ``"sgd"`` (plain gradient ascent).
    samples : int
        Reparameterized draws per datum in each step's ELBO estimate (>= 1).
    start : str
        The amortized pass the posteriors start from: ``"bottom_up"`` or ``"ladder"``.
    seed : int
        Seeds the host generator of the noise.
    """

    steps: int = 50
    step_size: float = 0.05
    optimizer: str = "adam"
    samples: int = 1
    start: str = "bottom_up"
    seed: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str = "refinement") -> None:
        """Raise ``ConfigurationError`` naming the offending key."""
        check_int(self.steps, f"{where}.steps")
        check_number(self.step_size, f"{where}.step_size", positive=True)
        check_choice(self.optimizer, OPTIMIZERS, f"{where}.optimizer")
        check_int(self.samples, f"{where}.samples", minimum=1)
        check_choice(self.start, POSTERIORS, f"{where}.start")
        check_int(self.seed, f"{where}.seed")

    @classmethod
    def from_dict(cls, data: Any, where: str = "refinement") -> Refinement:
        """Settings from a table (a study file's), errors located at ``where``."""
        check_keys(data, settings_keys(cls), where)
        with located(where, owner="refinement"):
            return cls(**data)


@dataclass
class Refined:
    """Refined posteriors: per-area lists (None on deterministic areas and area 0)
    of (batch, n_l) backend arrays, and the per-datum bound at every step."""

    mean: list[Any]
    logvar: list[Any]
    trace: Any               # (steps + 1, batch): the ELBO estimate at each step's parameters
    settings: Refinement

    @property
    def elbo(self) -> Any:
        """(batch,) the estimate at the final parameters."""
        return self.trace[-1, ...]


def _on_backend(hierarchy: Hierarchy, x: Any) -> Any:
    be = hierarchy.backend
    return be.asarray(x if isinstance(x, np.ndarray) else be.to_numpy(x))


def _tile(xp: Any, a: Any, times: int) -> Any:
    return a if times == 1 else xp.concat([a] * times, axis=0)


def _per_datum(xp: Any, rows: Any, batch: int) -> Any:
    """Mean over the replicates of replicate-major rows (R * batch, ...) -> (batch, ...)."""
    times = rows.shape[0] // batch
    if times == 1:
        return rows
    return xp.mean(xp.reshape(rows, (times, batch) + tuple(rows.shape[1:])), axis=0)


def amortized_posterior(
    hierarchy: Hierarchy, x: Any, start: str = "bottom_up"
) -> tuple[list[Any], list[Any]]:
    """Each stochastic area's amortized mean and log-variance (batch, n_l) along
    the noise-free recognition pass (``forward`` with zero noise): the
    starting point of :func:`refine`."""
    check_choice(start, POSTERIORS, "refinement.start")
    be = hierarchy.backend
    flags = stochastic_areas(hierarchy)
    x = _on_backend(hierarchy, x)
    zeros = [be.zeros((x.shape[0], a.size)) if f else None for a, f in zip(hierarchy.areas, flags)]
    p = forward(hierarchy, x, zeros, posterior=start)
    return ([None if m is None else be.copy(m) for m in p.q_mean],
            [None if v is None else be.copy(v) for v in p.q_logvar])


def _generate(hierarchy: Hierarchy, flags: list[bool], x: Any, M: list[Any], V: list[Any],
              noise: list[Any], likelihood: str) -> Pass:
    """Samples of the mean-field q on every row and the decoder, top-down
    (``variational.generate`` on a pass that holds only the samples)."""
    xp = hierarchy.backend.xp
    none = [None] * len(hierarchy.areas)
    z = [M[l] + xp.exp(0.5 * V[l]) * noise[l] if flag and l > 0 else None
         for l, flag in enumerate(flags)]
    p = Pass(x=x, a=list(none), h=list(none), mean=list(none), bu_logvar=list(none),
             q_mean=list(M), q_logvar=list(V), p_mean=list(none), p_logvar=list(none),
             noise=list(noise), z=z, d=list(none), u=list(none), likelihood=likelihood)
    return generate(hierarchy, p, flags)


def _rows(
    hierarchy: Hierarchy, x: Any, mean: list[Any], logvar: list[Any], noise: list[Any]
) -> tuple[Any, list, list, int]:
    """Data and posterior parameters tiled to the noise's rows (replicate-major)."""
    xp = hierarchy.backend.xp
    batch = x.shape[0]
    rows = next(e.shape[0] for e in noise if e is not None)
    if rows % batch:
        raise invalid("noise", f"needs a whole number of replicates of the batch ({batch} rows), "
                               f"got {rows} rows")
    times = rows // batch
    M = [None if m is None else _tile(xp, m, times) for m in mean]
    V = [None if v is None else _tile(xp, v, times) for v in logvar]
    return _tile(xp, x, times), M, V, batch


def elbo_and_gradient(
    hierarchy: Hierarchy, x: Any, mean: list[Any], logvar: list[Any], noise: list[Any], *,
    likelihood: str = "bernoulli", beta: float = 1.0, gradient: bool = True,
) -> tuple[Any, list[Any], list[Any]]:
    """The mean-field ELBO of each datum at the given noise, and its exact
    gradient with respect to every stochastic area's posterior mean and
    log-variance, written as prediction errors (module docstring).

    Parameters
    ----------
    x : array (batch, n_0)
        Data, on the hierarchy's backend.
    mean, logvar : lists of arrays
        ``mean[l]``, ``logvar[l]`` (batch, n_l) for every stochastic area (None elsewhere).
    noise : list of arrays
        ``noise[l]`` (R * batch, n_l) standard normal draws, replicate-major;
        each datum's bound is the mean over its ``R`` rows.
    beta : float
        Weight of the KL terms (1: the ELBO).
    gradient : bool
        False returns the bound alone (the gradient lists are all None).

    Returns
    -------
    elbo : array (batch,)
    grad_mean, grad_logvar : lists of arrays
        ``dELBO/dm_l``, ``dELBO/dv_l`` (batch, n_l): ascent directions.
    """
    be, xp = hierarchy.backend, hierarchy.backend.xp
    T = xp.matrix_transpose
    areas = hierarchy.areas
    top = len(areas) - 1
    flags = stochastic_areas(hierarchy)
    X, M, V, batch = _rows(hierarchy, x, mean, logvar, noise)
    g = _generate(hierarchy, flags, X, M, V, noise, likelihood)
    elbo_rows = g.log_px
    for l in range(1, top + 1):
        if flags[l]:
            kl = kl_analytic(xp, M[l], V[l], g.p_mean[l], g.p_logvar[l])
            elbo_rows = elbo_rows - beta * xp.sum(kl, axis=1)
    elbo = _per_datum(xp, elbo_rows, batch)
    none = [None] * (top + 1)
    grad_mean, grad_logvar = list(none), list(none)
    if not gradient:
        return elbo, grad_mean, grad_logvar

    # The data's prediction error: dlog p(x | z)/d(area 1's prediction of x).
    if likelihood == "bernoulli":
        error_below = X - sigmoid(xp, g.out)
    else:
        error_below = areas[0].precision * (X - g.out)
    variance_error_below = None   # dELBO/d(predicted log-variance) of a stochastic area below
    for l in range(1, top + 1):   # up the decoder: each area receives the error of its prediction
        area = areas[l]
        up = error_below @ T(area.W_fb)
        if variance_error_below is not None:
            up = up + variance_error_below @ T(area.W_fb_logvar)
        fp = area.feedback_activation.derivative(be, g.d[l], g.u[l], xp.empty_like(g.d[l]))
        bottom_up = up if fp is None else up * fp          # g_l: the error sent up from below
        if not flags[l]:   # a deterministic decoder area: d_l is its prediction; pass the error on
            error_below, variance_error_below = bottom_up, None
            continue
        precision = xp.exp(-g.p_logvar[l])
        eps = (M[l] - g.p_mean[l]) * precision             # the top-down prior mismatch
        sample = g.z[l] - M[l]                             # exp(v_l / 2) e_l
        grad_mean[l] = _per_datum(xp, bottom_up - beta * eps, batch)
        grad_logvar[l] = _per_datum(
            xp, 0.5 * bottom_up * sample - 0.5 * beta * (xp.exp(V[l]) * precision - 1.0), batch)
        # what this area's prior mismatch tells the area above that predicted it
        error_below = beta * eps
        mismatch = M[l] - g.p_mean[l]
        variance_error_below = 0.5 * beta * ((xp.exp(V[l]) + mismatch * mismatch) * precision - 1.0)
    return elbo, grad_mean, grad_logvar


def refined_log_weights(
    hierarchy: Hierarchy, x: Any, mean: list[Any], logvar: list[Any], noise: list[Any], *,
    likelihood: str = "bernoulli",
) -> Any:
    """``log p(x, z) - log q(z | x)`` per row (R * batch,) at samples of the
    mean-field q given by ``mean``, ``logvar``: importance log weights with the
    refined posterior as the proposal."""
    xp = hierarchy.backend.xp
    flags = stochastic_areas(hierarchy)
    X, M, V, _ = _rows(hierarchy, x, mean, logvar, noise)
    g = _generate(hierarchy, flags, X, M, V, noise, likelihood)
    total = g.log_px
    for l, flag in enumerate(flags):
        if flag and l > 0:
            term = kl_sampled(xp, noise[l], V[l], g.z[l], g.p_mean[l], g.p_logvar[l])
            total = total - xp.sum(term, axis=1)
    return total


def _draw(
    hierarchy: Hierarchy, flags: list[bool], rng: np.random.Generator, rows: int
) -> list[Any]:
    """One standard normal (rows, n_l) per stochastic area, bottom first, on the backend."""
    return [hierarchy.backend.asarray(rng.standard_normal(size=(rows, area.size))) if flag else None
            for area, flag in zip(hierarchy.areas, flags)]


def refine(
    hierarchy: Hierarchy, x: Any, settings: Refinement | None = None, *,
    likelihood: str = "bernoulli", beta: float = 1.0, noise: list[Any] | None = None,
    rng: np.random.Generator | None = None,
    initial: tuple[list[Any], list[Any]] | None = None,
) -> Refined:
    """Ascend each datum's ELBO with respect to its posterior parameters.

    Parameters
    ----------
    hierarchy : Hierarchy
        A variational model; its weights are read, never written.
    x : array (batch, n_0)
        Data, on the host or the hierarchy's backend.
    settings : Refinement
        Steps, step size, optimizer, samples, start, seed (defaults: ``Refinement()``).
    likelihood : str
        ``"bernoulli"`` or ``"gaussian"``, as for the ``elbo`` rule.
    beta : float
        Weight of the KL terms in the ascended bound.
    noise : list of arrays, optional
        Fixed draws ``noise[l]`` (samples * batch, n_l) used at every step (a
        deterministic ascent of a sample-average bound); None draws afresh each step.
    rng : numpy.random.Generator, optional
        Draws the fresh noise (a learning rule's own stream); None seeds one
        with ``settings.seed`` at every call.
    initial : (means, log-variances), optional
        The starting posterior (per-area lists, as :func:`amortized_posterior`
        returns them, which is the default); copied, never written.

    Returns
    -------
    Refined
        The refined means and log-variances and the per-datum bound at each
        step (the trace's row t before update t; its last row at the result).
    """
    settings = Refinement() if settings is None else settings
    if not isinstance(settings, Refinement):
        raise invalid("refinement", f"expected Refinement settings, got {settings!r}")
    check_choice(likelihood, LIKELIHOODS, "likelihood")
    beta = check_number(beta, "beta")
    if beta < 0:
        raise invalid("beta", f"must be >= 0, got {beta!r}")
    xp = hierarchy.backend.xp
    flags = stochastic_areas(hierarchy)
    x = _on_backend(hierarchy, x)
    batch = x.shape[0]
    rows = settings.samples * batch
    if noise is not None:
        for l, (area, flag) in enumerate(zip(hierarchy.areas, flags)):
            if flag and (noise[l] is None or tuple(noise[l].shape) != (rows, area.size)):
                got = None if noise[l] is None else tuple(noise[l].shape)
                raise invalid(f"noise[{l}]", f"needs shape {(rows, area.size)} "
                                              f"(samples * batch, units), got {got}")
    rng = np.random.default_rng(settings.seed) if rng is None else rng
    if initial is None:
        mean, logvar = amortized_posterior(hierarchy, x, settings.start)
    else:
        mean, logvar = list(initial[0]), list(initial[1])
    stochastic = [l for l, flag in enumerate(flags) if flag and l > 0]
    first = {l: (xp.zeros_like(mean[l]), xp.zeros_like(logvar[l])) for l in stochastic}
    second = {l: (xp.zeros_like(mean[l]), xp.zeros_like(logvar[l])) for l in stochastic}
    b1, b2, tiny = _ADAM
    trace = []
    for t in range(settings.steps + 1):
        draws = noise if noise is not None else _draw(hierarchy, flags, rng, rows)
        last = t == settings.steps
        elbo, g_mean, g_logvar = elbo_and_gradient(
            hierarchy, x, mean, logvar, draws, likelihood=likelihood, beta=beta, gradient=not last)
        trace.append(elbo)
        if last:
            break
        for l in stochastic:
            grads = (g_mean[l], g_logvar[l])
            if settings.optimizer == "sgd":
                steps = tuple(settings.step_size * g for g in grads)
            else:
                m1 = tuple(b1 * m + (1.0 - b1) * g for m, g in zip(first[l], grads))
                m2 = tuple(b2 * v + (1.0 - b2) * g * g for v, g in zip(second[l], grads))
                first[l], second[l] = m1, m2
                c1, c2 = 1.0 - b1 ** (t + 1), 1.0 - b2 ** (t + 1)
                steps = tuple(settings.step_size * (m / c1) / (xp.sqrt(v / c2) + tiny)
                              for m, v in zip(m1, m2))
            mean[l] = mean[l] + steps[0]
            logvar[l] = logvar[l] + steps[1]
    return Refined(mean=mean, logvar=logvar, trace=xp.stack(trace, axis=0), settings=settings)


def _log_mean_exp(chunks: list[np.ndarray]) -> np.ndarray:
    """log (1/k) sum_j exp(w_j) over the stacked (k_chunk, batch) host chunks, in float64."""
    w = np.concatenate(chunks, axis=0)
    peak = w.max(axis=0)
    return np.log(np.exp(w - peak).sum(axis=0)) + peak - math.log(w.shape[0])


def refined_bounds(
    hierarchy: Hierarchy, x: Any, settings: Refinement | None = None, *,
    likelihood: str = "bernoulli", samples: int = 100, k: int = 1000, seed: int = 0,
    batch_size: int = 100, rows: int = 100_000,
) -> dict[str, np.ndarray]:
    """Per image: the bounds of the amortized and the refined posteriors and
    importance-sampled ``log p(x)``, for the amortization gap (Cremer et al. 2018).

    Parameters
    ----------
    settings : Refinement
        The refinement (its ``start`` is also the amortized posterior evaluated).
    samples : int
        Draws per image for each ELBO estimate; the three ELBOs share them.
    k : int
        Importance samples per image of each ``L_k`` estimate.
    seed : int
        Seeds the evaluation noise (the refinement has its own ``settings.seed``).
    batch_size, rows : int
        Images refined together, and at most this many rows per pass.

    Returns
    -------
    dict of numpy.ndarray (N,), float64
        ``amortized_elbo``: the amortized q of ``settings.start`` (the rule's own
        conditional posterior, closed-form KL where exact); ``start_elbo``: the
        mean-field q the refinement starts from (equal to the amortized one with
        a single stochastic area); ``refined_elbo``: the refined q;
        ``refined_iw``: ``L_k`` with the refined q as proposal;
        ``amortized_iw``: Burda et al.'s ``L_k`` with the amortized q.
        The amortization gap closed is ``refined_elbo - amortized_elbo``; the
        tighter of the two ``L_k`` is the better estimate of ``log p(x)``.
    """
    settings = Refinement() if settings is None else settings
    samples = check_int(samples, "samples", minimum=1)
    k = check_int(k, "k", minimum=1)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    rows = check_int(rows, "rows", minimum=1)
    check_choice(likelihood, LIKELIHOODS, "likelihood")
    be, xp = hierarchy.backend, hierarchy.backend.xp
    flags = stochastic_areas(hierarchy)
    x = _on_backend(hierarchy, x)
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    keys = ("amortized_elbo", "start_elbo", "refined_elbo", "refined_iw", "amortized_iw")
    result = {key: np.empty(n) for key in keys}
    host = lambda a: np.asarray(be.to_numpy(a), dtype=np.float64)  # noqa: E731
    for begin in range(0, n, batch_size):
        stop = min(begin + batch_size, n)
        data = x[begin:stop, ...]
        batch = stop - begin
        per = max(1, rows // batch)
        start_mean, start_logvar = amortized_posterior(hierarchy, data, settings.start)
        refined = refine(hierarchy, data, settings, likelihood=likelihood)
        sums = {key: np.zeros(batch) for key in keys[:3]}
        for first in range(0, samples, per):
            count = min(per, samples - first)
            noise = _draw(hierarchy, flags, rng, count * batch)
            tiled = _tile(xp, data, count)
            p = forward(hierarchy, tiled, noise, posterior=settings.start, likelihood=likelihood,
                        analytic_kl=True)
            sums["amortized_elbo"] += count * host(_per_datum(xp, log_weights(xp, p), batch))
            for key, (m, v) in (("start_elbo", (start_mean, start_logvar)),
                                ("refined_elbo", (refined.mean, refined.logvar))):
                elbo, _, _ = elbo_and_gradient(hierarchy, data, m, v, noise, likelihood=likelihood,
                                               gradient=False)
                sums[key] += count * host(elbo)
        for key, total in sums.items():
            result[key][begin:stop] = total / samples
        chunks = []
        for first in range(0, k, per):
            count = min(per, k - first)
            noise = _draw(hierarchy, flags, rng, count * batch)
            logw = refined_log_weights(hierarchy, data, refined.mean, refined.logvar, noise,
                                       likelihood=likelihood)
            chunks.append(host(logw).reshape(count, batch))
        result["refined_iw"][begin:stop] = _log_mean_exp(chunks)
        result["amortized_iw"][begin:stop] = log_likelihood_estimate(
            hierarchy, data, k=k, likelihood=likelihood, posterior=settings.start,
            seed=int(rng.integers(2 ** 32)), rows=rows, batch_size=batch)
    return result
