"""Variational areas: Gaussian posteriors from the recognition path, Gaussian
priors from the generative path, reparameterized samples and the terms of the
evidence lower bound (docs/math.md, "Variational areas").

An area with ``stochastic = true`` holds a diagonal Gaussian latent ``z_l``;
the other latent areas are deterministic hidden layers that carry both an
encoder (``W_ff``, ``f_l``) and a decoder (``W_fb`` of the area, ``phi_l``)
path. With ``h_0 = x`` and rows of ``rows = replicates * batch`` (replicate-major):

Recognition, bottom-up, ``l = 1 .. L``::

    a_l = h_{l-1} @ W_ff_l + b_ff_l
    deterministic:  h_l = f_l(a_l)
    stochastic:     m^_l = f_l(a_l),  v^_l = h_{l-1} @ W_ff_logvar_l + b_ff_logvar_l
                    bottom_up: z_l = m^_l + exp(v^_l / 2) * e_l,  h_l = z_l
                    ladder:    h_l = m^_l  (the bottom-up pass stays deterministic)

Generation, top-down, ``d_L = z_L``, ``l = L .. 1``::

    u_l = phi_l(d_l),   m_{l-1} = u_l @ W_fb_l + b_fb_l
    area l-1 deterministic:  d_{l-1} = m_{l-1}
    area l-1 stochastic:     prior N(m_{l-1}, exp(u_l @ W_fb_logvar_l + b_fb_logvar_l)),  d_{l-1} = z_{l-1}
    area 0:                  m_0 = Bernoulli logits or the Gaussian mean of x

The top prior is the top area's Gaussian ``prior`` (standard normal when none
is given). The posterior of the top area is its bottom-up estimate; in ladder
inference (Sønderby et al. 2016) every lower stochastic area merges its
bottom-up estimate with its prior by precision, and is sampled top-down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from ..model.hierarchy import Hierarchy

__all__ = [
    "LIKELIHOODS",
    "POSTERIORS",
    "Pass",
    "decode",
    "forward",
    "generate",
    "kl_analytic",
    "kl_sampled",
    "log_likelihood",
    "log_weights",
    "merge",
    "sigmoid",
    "stochastic_areas",
    "top_prior",
]

LIKELIHOODS = ("bernoulli", "gaussian")
POSTERIORS = ("bottom_up", "ladder")
_LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class Pass:
    """One pass through a variational hierarchy; per-area lists are indexed by
    area (None where an entry does not apply) and hold (rows, n_l) arrays."""

    x: Any
    a: list[Any]
    h: list[Any]
    mean: list[Any]          # recognition mean f_l(a_l) of every area (x for area 0)
    bu_logvar: list[Any]     # stochastic areas: bottom-up log-variance v^_l
    q_mean: list[Any]        # stochastic areas: the posterior the sample is drawn from
    q_logvar: list[Any]
    p_mean: list[Any]        # stochastic areas: the prior (top: constant (n_L,) arrays)
    p_logvar: list[Any]
    noise: list[Any]         # stochastic areas: the standard normal draws e_l
    z: list[Any]             # stochastic areas: the samples
    d: list[Any]             # decoder activity of every latent area
    u: list[Any]             # phi_l(d_l)
    out: Any = None          # area 0's prediction m_0 (logits or mean)
    log_px: Any = None       # (rows,) log p(x | z)
    kl: list[Any] = field(default_factory=list)   # per-unit KL terms (rows, n_l)
    analytic: list[bool] = field(default_factory=list)
    posterior: str = "bottom_up"
    likelihood: str = "bernoulli"


def stochastic_areas(hierarchy: Hierarchy) -> list[bool]:
    """Which areas are stochastic; refuses hierarchies the ELBO cannot model."""
    areas = hierarchy.areas
    top = len(areas) - 1
    flags = [area.spec.stochastic for area in areas]
    if not flags[top]:
        raise ConfigurationError(
            f"model.areas[{top}].stochastic: a variational model needs a stochastic top area "
            f"(the latent with the prior); set stochastic = true on {areas[top].name!r}"
        )
    for l, area in enumerate(areas[:top]):
        if area.prior is not None:
            raise ConfigurationError(
                f"model.areas[{l}].prior: in a variational model only the top area has a prior; "
                f"the prior of a lower stochastic area is predicted by the area above"
            )
    prior = areas[top].prior
    if prior is not None and prior.kind != "gaussian":
        raise ConfigurationError(
            f"model.areas[{top}].prior.kind: a variational model needs a Gaussian top prior "
            f"(the KL term is Gaussian), got {prior.kind!r}"
        )
    return flags


def top_prior(hierarchy: Hierarchy) -> tuple[float, float]:
    """Mean and log-variance of the top prior (0 and 0 unless the area gives one)."""
    prior = hierarchy.top.prior
    return (0.0, 0.0) if prior is None else (float(prior.mean), 2.0 * math.log(prior.scale))


def sigmoid(xp: Any, a: Any) -> Any:
    """1 / (1 + exp(-a)) as 0.5 (1 + tanh(a / 2)): no overflow."""
    return 0.5 * (1.0 + xp.tanh(0.5 * a))


def _softplus(xp: Any, a: Any) -> Any:
    return xp.maximum(a, xp.zeros_like(a)) + xp.log1p(xp.exp(-xp.abs(a)))


def merge(xp: Any, bu_mean: Any, bu_logvar: Any, p_mean: Any, p_logvar: Any) -> tuple[Any, Any, Any]:
    """Precision-weighted merge of a bottom-up estimate and a prior (Sønderby et
    al. 2016, eq. 19-20): ``1/var_q = 1/var_bu + 1/var_p``, ``mean_q = var_q
    (mean_bu/var_bu + mean_p/var_p)``, as ``w = var_p / (var_bu + var_p) =
    sigmoid(v_p - v_bu)``, ``mean_q = m_p + w (m_bu - m_p)``, ``v_q = v_bu - softplus(v_bu - v_p)``.
    Returns (mean_q, logvar_q, w)."""
    w = sigmoid(xp, p_logvar - bu_logvar)
    return p_mean + w * (bu_mean - p_mean), bu_logvar - _softplus(xp, bu_logvar - p_logvar), w


def kl_analytic(xp: Any, q_mean: Any, q_logvar: Any, p_mean: Any, p_logvar: Any) -> Any:
    """KL(N(q_mean, e^q_logvar) || N(p_mean, e^p_logvar)) per unit."""
    diff = q_mean - p_mean
    return 0.5 * (p_logvar - q_logvar + (xp.exp(q_logvar) + diff * diff) * xp.exp(-p_logvar) - 1.0)


def kl_sampled(xp: Any, noise: Any, q_logvar: Any, z: Any, p_mean: Any, p_logvar: Any) -> Any:
    """``log q(z) - log p(z)`` per unit at the sample ``z = q_mean + exp(q_logvar/2) noise``."""
    diff = z - p_mean
    return 0.5 * (p_logvar - q_logvar - noise * noise + diff * diff * xp.exp(-p_logvar))


def log_likelihood(xp: Any, x: Any, out: Any, likelihood: str, precision: float) -> Any:
    """``log p(x | z)`` per row from area 0's prediction ``out`` (logits or mean)."""
    if likelihood == "bernoulli":
        return xp.sum(x * out - _softplus(xp, out), axis=1)
    diff = x - out
    const = 0.5 * x.shape[1] * (math.log(precision) - _LOG_2PI)
    return const - 0.5 * precision * xp.sum(diff * diff, axis=1)


def _sample(be: Any, mean: Any, logvar: Any, noise: Any) -> Any:
    return mean + be.xp.exp(0.5 * logvar) * noise


def forward(
    hierarchy: Hierarchy, x: Any, noise: list[Any], *, posterior: str = "bottom_up",
    likelihood: str = "bernoulli", analytic_kl: bool = True,
    given: tuple[list[Any], list[Any]] | None = None,
) -> Pass:
    """Recognition, sampling and generation for data rows ``x`` (rows, n_0).

    Parameters
    ----------
    noise : list of arrays
        ``noise[l]`` (rows, n_l) standard normal draws for each stochastic area
        (None elsewhere), on the hierarchy's backend.
    posterior : str
        ``"bottom_up"`` or ``"ladder"``.
    analytic_kl : bool
        Use the closed-form KL where it is the exact conditional expectation:
        the top area, and every stochastic area under ladder inference (its
        posterior and prior condition on the same sample above). Elsewhere the
        KL term is the single-sample ``log q(z) - log p(z)``.
    given : (means, log-variances), optional
        A posterior other than the recognition pass's: per-area lists (None
        off the stochastic areas) of (rows, n_l) means and log-variances of a
        mean-field q (each area's q independent of the samples above, as
        ``inference/refine.py`` finds it). The stochastic areas are sampled
        from it, the deterministic recognition areas above them computed from
        those samples, and every KL term is closed-form (exact for such a q).
        Only with ``posterior = "bottom_up"``.
    """
    be, xp = hierarchy.backend, hierarchy.backend.xp
    areas = hierarchy.areas
    top = len(areas) - 1
    flags = stochastic_areas(hierarchy)
    if given is not None and posterior != "bottom_up":
        raise ConfigurationError("a given posterior replaces the recognition pass's; it needs "
                                 "posterior = 'bottom_up', got " + repr(posterior))
    none = [None] * (top + 1)
    p = Pass(x=x, a=list(none), h=list(none), mean=list(none), bu_logvar=list(none),
             q_mean=list(none), q_logvar=list(none), p_mean=list(none), p_logvar=list(none),
             noise=list(noise), z=list(none), d=list(none), u=list(none),
             posterior=posterior, likelihood=likelihood)
    p.h[0] = p.mean[0] = x
    for l in range(1, top + 1):  # recognition, bottom-up
        area = areas[l]
        p.a[l] = p.h[l - 1] @ area.W_ff + area.b_ff
        p.mean[l] = p.h[l] = area.activation(be, p.a[l])
        if flags[l]:
            p.bu_logvar[l] = p.h[l - 1] @ area.W_ff_logvar + area.b_ff_logvar
            if given is not None:
                p.q_mean[l], p.q_logvar[l] = given[0][l], given[1][l]
            elif posterior == "bottom_up":
                p.q_mean[l], p.q_logvar[l] = p.mean[l], p.bu_logvar[l]
            if posterior == "bottom_up":
                p.z[l] = p.h[l] = _sample(be, p.q_mean[l], p.q_logvar[l], noise[l])
    generate(hierarchy, p, flags)
    p.kl, p.analytic = list(none), [False] * (top + 1)
    for l in range(1, top + 1):
        if not flags[l]:
            continue
        p.analytic[l] = given is not None or (analytic_kl and (posterior == "ladder" or l == top))
        if p.analytic[l]:
            p.kl[l] = kl_analytic(xp, p.q_mean[l], p.q_logvar[l], p.p_mean[l], p.p_logvar[l])
        else:
            p.kl[l] = kl_sampled(xp, noise[l], p.q_logvar[l], p.z[l], p.p_mean[l], p.p_logvar[l])
    return p


def generate(hierarchy: Hierarchy, p: Pass, flags: list[bool] | None = None) -> Pass:
    """The top-down half of :func:`forward` ("Generation" in the module
    docstring) on a pass whose samples ``p.z`` are drawn (bottom-up posterior)
    or drawn here (ladder: each lower area's merge, from ``p.mean``,
    ``p.bu_logvar`` and ``p.noise``): fills ``p.p_mean``, ``p.p_logvar``,
    ``p.d``, ``p.u``, ``p.out`` and ``p.log_px``, and returns ``p``."""
    be, xp = hierarchy.backend, hierarchy.backend.xp
    areas = hierarchy.areas
    top = len(areas) - 1
    flags = stochastic_areas(hierarchy) if flags is None else flags
    posterior, noise = p.posterior, p.noise
    mean, logvar = top_prior(hierarchy)
    p.p_mean[top] = be.asarray([mean] * areas[top].size)
    p.p_logvar[top] = be.asarray([logvar] * areas[top].size)
    if posterior == "ladder":
        p.q_mean[top], p.q_logvar[top] = p.mean[top], p.bu_logvar[top]
        p.z[top] = _sample(be, p.mean[top], p.bu_logvar[top], noise[top])
    p.d[top] = p.z[top]
    for l in range(top, 0, -1):  # generation, top-down
        area = areas[l]
        p.u[l] = area.feedback_activation(be, p.d[l])
        below = p.u[l] @ area.W_fb + area.b_fb
        if l == 1:
            p.out = below
        elif flags[l - 1]:
            p.p_mean[l - 1] = below
            p.p_logvar[l - 1] = p.u[l] @ area.W_fb_logvar + area.b_fb_logvar
            if posterior == "ladder":
                p.q_mean[l - 1], p.q_logvar[l - 1], _ = merge(
                    xp, p.mean[l - 1], p.bu_logvar[l - 1], below, p.p_logvar[l - 1])
                p.z[l - 1] = _sample(be, p.q_mean[l - 1], p.q_logvar[l - 1], noise[l - 1])
            p.d[l - 1] = p.z[l - 1]
        else:
            p.d[l - 1] = below
    p.log_px = log_likelihood(xp, p.x, p.out, p.likelihood, areas[0].precision)
    return p


def log_weights(xp: Any, p: Pass, beta: float = 1.0) -> Any:
    """``log p(x|z) - beta * sum_l KL_l`` per row (rows,): with sampled KL terms
    and ``beta = 1`` the importance log weight ``log p(x, z) - log q(z | x)``."""
    total = p.log_px
    for kl in p.kl:
        if kl is not None:
            total = total - beta * xp.sum(kl, axis=1)
    return total


def decode(hierarchy: Hierarchy, z: Any, noise: list[Any] | None = None, *,
           likelihood: str = "bernoulli") -> Any:
    """The generative path alone: the mean of ``p(x | z)`` for top-area codes ``z``.

    The top-down half of :func:`forward` ("Generation" in the module
    docstring), started from given codes instead of a recognition sample: prior
    samples, latent traversals and reconstructions from posterior means.

    Parameters
    ----------
    z : array (rows, n_L)
        Codes of the top area, on the host or the hierarchy's backend.
    noise : list of arrays, optional
        ``noise[l]`` (rows, n_l) standard normal draws for lower stochastic
        areas, which are then sampled from their priors
        (``z_l = m_p + exp(v_p / 2) noise[l]``); where ``noise`` or its entry is
        None the area takes its prior mean.
    likelihood : str
        ``"bernoulli"`` (returns ``sigmoid`` of the logits: pixel probabilities)
        or ``"gaussian"`` (returns the mean).

    Returns
    -------
    array (rows, n_0)
        On the hierarchy's backend.
    """
    if likelihood not in LIKELIHOODS:
        raise ConfigurationError(f"likelihood: unknown value {likelihood!r}; allowed: {', '.join(LIKELIHOODS)}")
    be, xp = hierarchy.backend, hierarchy.backend.xp
    areas = hierarchy.areas
    flags = stochastic_areas(hierarchy)
    d = be.asarray(z if isinstance(z, np.ndarray) else be.to_numpy(z))
    for l in range(len(areas) - 1, 0, -1):
        area = areas[l]
        u = area.feedback_activation(be, d)
        d = u @ area.W_fb + area.b_fb
        if l > 1 and flags[l - 1] and noise is not None and noise[l - 1] is not None:
            d = _sample(be, d, u @ area.W_fb_logvar + area.b_fb_logvar, noise[l - 1])
    return sigmoid(xp, d) if likelihood == "bernoulli" else d
