"""Exact gradients of the (importance-weighted) negative ELBO through a
variational pass (``inference/variational.py``), written as one explicit
backward step per area, no autodiff: first up the decoder (the generative
pass ran top-down), then down the encoder (the recognition pass ran bottom-up).

The loss is ``-sum_r c_r log w_r`` over the pass's rows ``r``, with
``log w_r = log p(x|z) - beta sum_l KL_l`` and fixed row weights ``c_r``
(``1/(S B)`` for the ELBO; for the IWAE bound ``1/(S B)`` times the normalised
importance weights, the gradient of ``log mean_j w_j``). ``G`` below is the
gradient of that loss with respect to a row quantity; parameters get
``dW = pre^T G`` and ``db = sum_rows G``.

Per stochastic area, with ``s = exp(v_q / 2) e`` (so ``z = m_q + s``) and
``ip = exp(-v_p)``, the KL terms contribute (times ``beta c``)::

    analytic KL:  dm_q = (m_q - m_p) ip        dv_q = (exp(v_q - v_p) - 1) / 2
                  dm_p = -dm_q                 dv_p = (1 - (exp(v_q) + (m_q - m_p)^2) ip) / 2
    sampled:      dz = (z - m_p) ip            dv_q = -1/2  (log q = -(v_q + e^2)/2 at fixed e)
                  dm_p = -dz                   dv_p = (1 - (z - m_p)^2 ip) / 2

and the sample passes its gradient on by ``G_mq = G_z``, ``G_vq = G_z s / 2``.
The ladder merge ``m_q = m_p + w (m^ - m_p)``, ``v_q = v^ - softplus(v^ - v_p)``,
``w = sigmoid(v_p - v^)`` passes it on by::

    G_m^ = w G_mq                    G_v^ = w G_vq - w (1 - w) (m^ - m_p) G_mq
    G_mp = (1 - w) G_mq              G_vp = (1 - w) G_vq + w (1 - w) (m^ - m_p) G_mq
"""

from __future__ import annotations

from typing import Any

from ..model.hierarchy import Hierarchy
from ..inference.variational import Pass, sigmoid, stochastic_areas
from .local import Gradients

__all__ = ["backward"]


def _plus(a: Any, b: Any) -> Any:
    """a + b where either may be None (no gradient)."""
    return b if a is None else a if b is None else a + b


def _kl_terms(xp: Any, p: Pass, l: int, cb: Any) -> tuple[Any, Any, Any, Any, Any]:
    """(dz, dm_q, dv_q, dm_p, dv_p) of ``beta c KL_l`` (None where zero)."""
    ip = xp.exp(-p.p_logvar[l])
    if p.analytic[l]:
        diff = p.q_mean[l] - p.p_mean[l]
        dqm = cb * diff * ip
        dqv = cb * 0.5 * (xp.exp(p.q_logvar[l] - p.p_logvar[l]) - 1.0)
        dpv = cb * 0.5 * (1.0 - (xp.exp(p.q_logvar[l]) + diff * diff) * ip)
        return None, dqm, dqv, -dqm, dpv
    diff = p.z[l] - p.p_mean[l]
    dz = cb * diff * ip
    dqv = cb * (-0.5) * xp.ones_like(p.z[l])
    dpv = cb * 0.5 * (1.0 - diff * diff * ip)
    return dz, None, dqv, -dz, dpv


def backward(
    hierarchy: Hierarchy, p: Pass, weights: Any, beta: float, *, encoder: bool = True
) -> tuple[Gradients, list[Any]]:
    """Gradients of ``-sum_r weights_r log w_r`` for every encoder and decoder parameter.

    Parameters
    ----------
    p : Pass
        The forward pass (its noise is held fixed: the reparameterization trick).
    weights : array (rows,)
        The row weights ``c_r``.
    beta : float
        Weight of the KL terms in ``log w``.
    encoder : bool
        False stops after the decoder: only ``W_fb``, ``b_fb`` and the decoder's
        log-variance heads (for rules that train the encoder otherwise).

    Returns
    -------
    gradients : dict
        Descent directions keyed (area, parameter), for ``W_ff``, ``b_ff``,
        ``W_fb``, ``b_fb`` of every area and the log-variance heads (the
        decoder's alone with ``encoder=False``).
    encoder_errors : list of arrays
        ``G_a[l]``, the loss gradient at each area's recognition pre-activation
        (rows, n_l); all None with ``encoder=False``.
    """
    be, xp = hierarchy.backend, hierarchy.backend.xp
    T = xp.matrix_transpose
    areas = hierarchy.areas
    top = len(areas) - 1
    flags = stochastic_areas(hierarchy)
    ladder = p.posterior == "ladder"
    c = xp.reshape(weights, (-1, 1))
    cb = beta * c
    grads: Gradients = {}

    def put(l: int, weight: str, bias: str, pre: Any, g: Any) -> None:
        grads[(areas[l].name, weight)] = T(pre) @ g
        grads[(areas[l].name, bias)] = xp.sum(g, axis=0)

    if p.likelihood == "bernoulli":  # d(-log p(x|z))/d logits
        g_below = c * (sigmoid(xp, p.out) - p.x)
    else:
        g_below = c * (areas[0].precision * (p.out - p.x))

    none = [None] * (top + 1)
    g_pm, g_pv, g_bm, g_bv, g_zdec = list(none), list(none), list(none), list(none), list(none)
    for l in range(1, top + 1):  # the decoder, bottom-up
        area = areas[l]
        put(l, "W_fb", "b_fb", p.u[l], g_below)
        g_u = g_below @ T(area.W_fb)
        if l > 1 and flags[l - 1]:
            put(l, "W_fb_logvar", "b_fb_logvar", p.u[l], g_pv[l - 1])
            g_u = g_u + g_pv[l - 1] @ T(area.W_fb_logvar)
        fp = area.feedback_activation.derivative(be, p.d[l], p.u[l], xp.empty_like(p.d[l]))
        g_d = g_u if fp is None else g_u * fp
        if not flags[l]:
            g_below = g_d  # d_l = m_l: the decoder continues through area l's prediction
            continue
        dz, dqm, dqv, dpm, dpv = _kl_terms(xp, p, l, cb)
        g_z = _plus(g_d, dz)
        if not ladder:  # z_l came from the encoder: resolved there, with its use above
            g_zdec[l], g_bm[l], g_bv[l], g_pm[l], g_pv[l] = g_z, dqm, dqv, dpm, dpv
        else:
            s = xp.exp(0.5 * p.q_logvar[l]) * p.noise[l]
            g_qm, g_qv = _plus(g_z, dqm), _plus(g_z * 0.5 * s, dqv)
            if l == top:  # q is the bottom-up estimate itself
                g_bm[l], g_bv[l] = g_qm, g_qv
            else:
                w = sigmoid(xp, p.p_logvar[l] - p.bu_logvar[l])
                cross = w * (1.0 - w) * (p.mean[l] - p.p_mean[l]) * g_qm
                g_bm[l], g_bv[l] = w * g_qm, w * g_qv - cross
                g_pm[l] = dpm + (1.0 - w) * g_qm
                g_pv[l] = dpv + (1.0 - w) * g_qv + cross
        g_below = g_pm[l]

    encoder_errors: list[Any] = list(none)
    if not encoder:
        return grads, encoder_errors
    g_h = None
    for l in range(top, 0, -1):  # the encoder, top-down
        area = areas[l]
        g_v = None
        if flags[l] and not ladder:  # h_l = z_l = m^_l + exp(v^_l / 2) e_l
            g_z = _plus(g_zdec[l], g_h)
            g_m = _plus(g_z, g_bm[l])
            g_v = _plus(g_z * (0.5 * xp.exp(0.5 * p.bu_logvar[l]) * p.noise[l]), g_bv[l])
        elif flags[l]:  # ladder: h_l = m^_l
            g_m, g_v = _plus(g_bm[l], g_h), g_bv[l]
        else:
            g_m = g_h
        fp = area.activation.derivative(be, p.a[l], p.mean[l], xp.empty_like(p.a[l]))
        g_a = g_m if fp is None else g_m * fp
        encoder_errors[l] = g_a
        put(l, "W_ff", "b_ff", p.h[l - 1], g_a)
        if g_v is not None:
            put(l, "W_ff_logvar", "b_ff_logvar", p.h[l - 1], g_v)
        if l > 1:
            g_h = g_a @ T(area.W_ff)
            if g_v is not None:
                g_h = g_h + g_v @ T(area.W_ff_logvar)
    return grads, encoder_errors
