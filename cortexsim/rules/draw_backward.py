"""Exact gradients of the recurrent VAE's negative bound by backpropagation
through time, written as one explicit backward step per time step (the forward
equations are in ``inference/recurrent.py``; the cells' and the attention's
own backward steps in ``model/cells.py`` and ``model/attention.py``).

The loss is ``-sum_r c_r (log p(x | c_T) - sum_t beta_t KL_t)`` with row
weights ``c_r`` (``1/B``). Going back from ``t = T`` to 1, each step carries
the gradients at the canvas ``c_t``, at ``h^dec_t`` and ``h^enc_t`` (and the
LSTM's cell states) from the steps after it::

    canvas   c_t = c_{t-1} + write_t:  G_write = G_c;  G_{c_{t-1}} = G_c - G_x^_t m'(c_{t-1})
    decoder  G_hdec_t += G_write d write / d h^dec_t;  back through DEC -> G_{phi(z_t)}, G_hdec_{t-1}
    sample   G_z = G_{phi(z)} phi'(z);  G_mq = G_z + beta c dKL/dm_q;  G_vq = G_z s / 2 + beta c dKL/dv_q
    prior    (learned) G_mp = beta c dKL/dm_p, G_vp = beta c dKL/dv_p -> W_prior.., G_hdec_{t-1}
    encoder  G_henc_t += G_mq f' W_ff^z^T + G_vq W_ff_logvar^z^T;  back through ENC
             -> G_[r_t, h^dec_{t-1}], G_henc_{t-1};  G_r -> G_x^_t (and the read's attention)

with ``s = exp(v_q / 2) e`` and the KL derivatives of ``rules/elbo_backward.py``
(analytic: ``dm_q = (m_q - m_p)/v_p``, ``dv_q = (exp(v_q - v_p) - 1)/2``).
"""

from __future__ import annotations

from typing import Any

from ..inference.recurrent import LEARNED_PRIOR, RecurrentPass, recurrent_areas
from ..inference.variational import sigmoid
from ..model.attention import filterbank_back, read_back, write_back
from ..model.cells import get_cell
from ..model.hierarchy import Hierarchy
from .local import Gradients

__all__ = ["backward"]


def _acc(grads: Gradients, key: tuple[str, str], value: Any) -> None:
    grads[key] = value if key not in grads else grads[key] + value


def backward(hierarchy: Hierarchy, p: RecurrentPass, weights: Any, beta: Any) -> Gradients:
    """Gradients of ``-sum_r weights_r log w_r`` for every parameter of the recurrent VAE.

    Parameters
    ----------
    p : RecurrentPass
        The forward pass with analytic KL terms and every step's latent from
        the posterior (its noise held fixed: the reparameterization trick).
    weights : array (rows,)
        The row weights ``c_r``.
    beta : float or sequence of float
        Weight of the KL terms, one for all steps or one per step.

    Returns
    -------
    dict
        Descent directions keyed (area, parameter).
    """
    be, xp = hierarchy.backend, hierarchy.backend.xp
    T_ = xp.matrix_transpose
    rnn, top = recurrent_areas(hierarchy)
    cell = get_cell(rnn.spec.cell)
    R, Z = rnn.name, top.name
    c = xp.reshape(weights, (-1, 1))
    n_read = p.enc_in[0].shape[1] - rnn.size  # the read vector's share of the varying input
    W_varying = rnn.W_ff[p.fixed:, :]
    g_drive = None  # summed over steps: x's rows of W_ff need one product, not one per step
    grads: Gradients = {}

    def put(area: str, weight: str, bias: str | None, pre: Any, g: Any) -> None:
        _acc(grads, (area, weight), T_(pre) @ g)
        if bias is not None:
            _acc(grads, (area, bias), xp.sum(g, axis=0))

    if p.likelihood == "bernoulli":  # d(-log p(x | c_T)) / d c_T
        g_c = c * (sigmoid(xp, p.out) - p.x)
    else:
        g_c = c * (hierarchy.areas[0].precision * (p.out - p.x))
    g_hdec = g_henc = xp.zeros_like(p.h_dec[0])
    g_cdec = g_cenc = None
    for t in range(p.steps, 0, -1):
        j = t - 1
        b = beta if isinstance(beta, (int, float)) else beta[j]
        cb = b * c
        h_prev = p.h_dec[j]
        # the write: c_t = c_{t-1} + write(patch_t)
        if p.writes[j] is None:
            g_patch = g_c
        else:
            glimpse, written = p.writes[j]
            g_patch, g_fx, g_fy, g_gamma = write_back(xp, glimpse, p.patch[j], written, g_c)
            g_att = filterbank_back(xp, glimpse, g_fx, g_fy, g_gamma)
            put(R, "W_write", "b_write", p.h_dec[t], g_att)
            g_hdec = g_hdec + g_att @ T_(rnn.W_write)
        put(R, "W_fb", "b_fb", p.h_dec[t], g_patch)
        g_hdec = g_hdec + g_patch @ T_(rnn.W_fb)
        # the decoder cell
        g_ax, g_ah, direct, g_cdec = cell.back(xp, p.dec[j], g_hdec, g_cdec)
        put(Z, "W_fb", "b_fb", p.u[j], g_ax)
        put(R, "U_fb", None, h_prev, g_ah)
        g_hprev = g_ah @ T_(rnn.U_fb)
        if direct is not None:
            g_hprev = g_hprev + direct
        g_u = g_ax @ T_(top.W_fb)
        fp = top.feedback_activation.grad(be, p.z[j])
        g_z = g_u * fp
        # the sample and the KL term
        ip = xp.exp(-p.p_logvar[j])
        diff = p.q_mean[j] - p.p_mean[j]
        s = xp.exp(0.5 * p.q_logvar[j]) * p.noise[j]
        g_qm = g_z + cb * diff * ip
        g_qv = g_z * 0.5 * s + cb * 0.5 * (xp.exp(p.q_logvar[j] - p.p_logvar[j]) - 1.0)
        if p.prior == "learned":
            g_pm = -cb * diff * ip
            g_pv = cb * 0.5 * (1.0 - (xp.exp(p.q_logvar[j]) + diff * diff) * ip)
            put(Z, LEARNED_PRIOR[0], LEARNED_PRIOR[1], h_prev, g_pm)
            put(Z, LEARNED_PRIOR[2], LEARNED_PRIOR[3], h_prev, g_pv)
            g_hprev = g_hprev + g_pm @ T_(top.W_prior) + g_pv @ T_(top.W_prior_logvar)
        # the posterior heads and the encoder cell
        g_aq = g_qm * top.activation.grad(be, p.a_q[j])
        put(Z, "W_ff", "b_ff", p.h_enc[t], g_aq)
        put(Z, "W_ff_logvar", "b_ff_logvar", p.h_enc[t], g_qv)
        g_henc = g_henc + g_aq @ T_(top.W_ff) + g_qv @ T_(top.W_ff_logvar)
        g_ax, g_ah, direct, g_cenc = cell.back(xp, p.enc[j], g_henc, g_cenc)
        put(R, "W_ff", "b_ff", p.enc_in[j], g_ax)
        if p.fixed:
            g_drive = g_ax if g_drive is None else g_drive + g_ax
        put(R, "U_ff", None, p.h_enc[j], g_ah)
        g_henc = g_ah @ T_(rnn.U_ff)
        if direct is not None:
            g_henc = g_henc + direct
        g_in = g_ax @ T_(W_varying)
        g_hprev = g_hprev + g_in[:, n_read:]
        g_r = g_in[:, :n_read]
        # the read: r_t = [x, x^_t] or its glimpses
        if p.reads[j] is None:
            g_xhat = g_r
        else:
            glimpse, raw = p.reads[j]
            g_fx, g_fy, g_gamma, g_images = read_back(xp, glimpse, [p.x, p.xhat[j]], raw, g_r,
                                                      [False, True])
            g_att = filterbank_back(xp, glimpse, g_fx, g_fy, g_gamma)
            put(R, "W_read", "b_read", h_prev, g_att)
            g_hprev = g_hprev + g_att @ T_(rnn.W_read)
            g_xhat = g_images[1]
        # x^_t = x - m(c_{t-1})
        if p.likelihood == "bernoulli":
            m = sigmoid(xp, p.canvas[j])
            g_c = g_c - g_xhat * m * (1.0 - m)
        else:
            g_c = g_c - g_xhat
        g_hdec = g_hprev
    if p.fixed:  # W_ff's rows: x's (one product over all steps) above the varying input's
        grads[(R, "W_ff")] = xp.concat([T_(p.x) @ g_drive, grads[(R, "W_ff")]], axis=0)
    return grads
