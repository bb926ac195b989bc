"""The recurrent variational autoencoder: DRAW (Gregor, Danihelka, Graves,
Rezende & Wierstra 2015, "DRAW: a recurrent neural network for image
generation", ICML, arXiv:1502.04623, eqs. 3-8) and its learned prior (Gregor,
Besse, Rezende, Danihelka & Wierstra 2016, "Towards conceptual compression",
NeurIPS, arXiv:1604.08772), on a hierarchy ``[data, recurrent area, stochastic
area]`` (docs/math.md, "Recurrent areas"; parameters in ``model/recurrent.py``).

With the canvas ``c_0 = 0``, states ``h^enc_0 = h^dec_0 = 0`` and, for
``t = 1 .. T``::

    x^_t    = x - m(c_{t-1})                  m: sigmoid (Bernoulli) or identity (Gaussian)
    r_t     = [x, x^_t]  or  read(x, x^_t; h^dec_{t-1} W_read + b_read)
    h^enc_t = ENC(h^enc_{t-1}; [r_t, h^dec_{t-1}] W_ff + b_ff, h^enc_{t-1} U_ff)
    q(z_t)  = N(f(h^enc_t W_ff^z + b_ff^z), exp(h^enc_t W_ff_logvar^z + b_ff_logvar^z))
    p(z_t)  = N(0, I)  (the z area's Gaussian prior if it has one), or learned:
              N(h^dec_{t-1} W_prior + b_prior, exp(h^dec_{t-1} W_prior_logvar + b_prior_logvar))
    z_t     = m_q + exp(v_q / 2) e_t
    h^dec_t = DEC(h^dec_{t-1}; phi(z_t) W_fb^z + b_fb^z, h^dec_{t-1} U_fb)
    c_t     = c_{t-1} + h^dec_t W_fb + b_fb   or  write(h^dec_t W_fb + b_fb; h^dec_t W_write + b_write)

and ``log p(x | c_T)`` Bernoulli with logits ``c_T`` or Gaussian with mean
``c_T`` and variance ``1/precision`` of area 0. ``f``, ``phi`` are the z area's
``activation`` and ``feedback_activation``. From step ``posterior_steps + 1`` on
the latents are drawn from the prior instead (``z_t = m_p + exp(v_p / 2) e_t``):
the reconstructions of conceptual compression, or samples with ``posterior_steps = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError
from ..model.attention import filterbank, read, write
from ..model.cells import get_cell
from ..model.hierarchy import Hierarchy
from .variational import kl_analytic, kl_sampled, log_likelihood, sigmoid, top_prior

__all__ = ["LEARNED_PRIOR", "PRIORS", "RecurrentPass", "forward", "log_weights", "recurrent_areas", "side"]

PRIORS = ("standard", "learned")
LEARNED_PRIOR = ("W_prior", "b_prior", "W_prior_logvar", "b_prior_logvar")


@dataclass
class RecurrentPass:
    """One pass of the recurrent VAE; per-step lists are indexed ``t - 1``
    (state lists ``t``, from 0) and hold (rows, n) arrays."""

    x: Any
    steps: int
    likelihood: str
    prior: str
    posterior_steps: int
    canvas: list[Any] = field(default_factory=list)      # c_0 .. c_T (rows, n_0)
    xhat: list[Any] = field(default_factory=list)
    reads: list[Any] = field(default_factory=list)       # (glimpse, unscaled glimpses) or None
    enc_in: list[Any] = field(default_factory=list)      # [r_t, h^dec_{t-1}], less x without a read glimpse
    fixed: int = 0                                       # leading rows of W_ff that read x itself
    enc: list[Any] = field(default_factory=list)         # cell caches
    h_enc: list[Any] = field(default_factory=list)       # h^enc_0 .. h^enc_T
    c_enc: list[Any] = field(default_factory=list)
    a_q: list[Any] = field(default_factory=list)         # the posterior mean's pre-activation
    q_mean: list[Any] = field(default_factory=list)
    q_logvar: list[Any] = field(default_factory=list)
    p_mean: list[Any] = field(default_factory=list)
    p_logvar: list[Any] = field(default_factory=list)
    noise: list[Any] = field(default_factory=list)
    z: list[Any] = field(default_factory=list)
    u: list[Any] = field(default_factory=list)           # phi(z_t)
    dec: list[Any] = field(default_factory=list)
    h_dec: list[Any] = field(default_factory=list)       # h^dec_0 .. h^dec_T
    c_dec: list[Any] = field(default_factory=list)
    patch: list[Any] = field(default_factory=list)       # h^dec_t W_fb + b_fb
    writes: list[Any] = field(default_factory=list)      # (glimpse, written image) or None
    kl: list[Any] = field(default_factory=list)          # per step, per unit (rows, n_z)
    analytic: bool = True
    out: Any = None                                      # c_T
    log_px: Any = None                                   # (rows,)


def recurrent_areas(hierarchy: Hierarchy) -> tuple[Any, Any]:
    """The recurrent area and the stochastic area above it; refuses other shapes of model."""
    areas = hierarchy.areas
    if len(areas) != 3 or areas[1].spec.cell is None or not areas[2].spec.stochastic:
        raise ConfigurationError(
            "model.areas: a recurrent VAE has three areas: the data, a recurrent area "
            "(cell = 'lstm' or 'gru') and a stochastic area (stochastic = true); got "
            + ", ".join(f"{a.name!r}" + (f" (cell {a.spec.cell!r})" if a.spec.cell else "")
                        + (" (stochastic)" if a.spec.stochastic else "") for a in areas)
        )
    prior = areas[2].prior
    if prior is not None and prior.kind != "gaussian":
        raise ConfigurationError(f"model.areas[2].prior.kind: a recurrent VAE needs a Gaussian "
                                 f"prior (the KL term is Gaussian), got {prior.kind!r}")
    return areas[1], areas[2]


def side(n: int) -> tuple[int, int]:
    """(rows, columns) of a square image of ``n`` pixels."""
    s = round(n ** 0.5)
    return s, s


def forward(
    hierarchy: Hierarchy, x: Any, noise: list[Any], *, likelihood: str = "bernoulli",
    prior: str = "standard", analytic_kl: bool = True, posterior_steps: int | None = None,
) -> RecurrentPass:
    """Run the recurrent VAE on data rows ``x`` (rows, n_0) for ``len(noise)`` steps.

    Parameters
    ----------
    noise : list of arrays
        ``noise[t-1]`` (rows, n_z): the standard normal draws of step ``t``.
    likelihood : str
        ``"bernoulli"`` or ``"gaussian"``.
    prior : str
        ``"standard"`` or ``"learned"`` (the z area holds ``W_prior``, ...).
    analytic_kl : bool
        Closed-form KL per step (exact: q and p condition on the same history),
        or the single-sample ``log q(z_t) - log p(z_t)`` (importance weights).
    posterior_steps : int, optional
        Steps whose latents come from the posterior; the rest from the prior
        (their KL terms are then not computed). None: every step.
    """
    be, xp = hierarchy.backend, hierarchy.backend.xp
    rnn, top = recurrent_areas(hierarchy)
    cell_enc = cell_dec = get_cell(rnn.spec.cell)
    rows, n, steps = x.shape[0], rnn.size, len(noise)
    known = steps if posterior_steps is None else min(posterior_steps, steps)
    p = RecurrentPass(x=x, steps=steps, likelihood=likelihood, prior=prior, posterior_steps=known,
                      analytic=analytic_kl, noise=list(noise))
    zero = be.zeros((rows, n))
    p.canvas.append(be.zeros((rows, x.shape[1])))
    p.h_enc.append(zero)
    p.h_dec.append(zero)
    lstm = rnn.spec.cell == "lstm"
    p.c_enc.append(zero if lstm else None)
    p.c_dec.append(zero if lstm else None)
    mean0, logvar0 = top_prior(hierarchy)
    image = side(x.shape[1])
    if not rnn.spec.read:  # x's share of the encoder's drive is the same at every step: one product
        p.fixed = x.shape[1]
        drive = x @ rnn.W_ff[:p.fixed, :] + rnn.b_ff
        W_varying = rnn.W_ff[p.fixed:, :]
    for t in range(1, steps + 1):
        h_prev = p.h_dec[t - 1]
        if prior == "learned":
            p.p_mean.append(h_prev @ top.W_prior + top.b_prior)
            p.p_logvar.append(h_prev @ top.W_prior_logvar + top.b_prior_logvar)
        else:
            p.p_mean.append(be.asarray([mean0] * top.size))
            p.p_logvar.append(be.asarray([logvar0] * top.size))
        if t <= known:  # the encoder reads the image and the canvas's error
            c = p.canvas[t - 1]
            xhat = x - (sigmoid(xp, c) if likelihood == "bernoulli" else c)
            if rnn.spec.read:
                glimpse = filterbank(be, h_prev @ rnn.W_read + rnn.b_read, image, rnn.spec.read)
                r, raw = read(xp, glimpse, [x, xhat])
                p.reads.append((glimpse, raw))
                enc_in = xp.concat([r, h_prev], axis=1)
                ax = enc_in @ rnn.W_ff + rnn.b_ff
            else:
                p.reads.append(None)
                enc_in = xp.concat([xhat, h_prev], axis=1)
                ax = drive + enc_in @ W_varying
            h, c_state, cache = cell_enc.step(xp, ax, p.h_enc[t - 1] @ rnn.U_ff, p.h_enc[t - 1], p.c_enc[t - 1])
            a_q = h @ top.W_ff + top.b_ff
            q_mean, q_logvar = top.activation(be, a_q), h @ top.W_ff_logvar + top.b_ff_logvar
            p.xhat.append(xhat), p.enc_in.append(enc_in), p.enc.append(cache)
            p.h_enc.append(h), p.c_enc.append(c_state)
            p.a_q.append(a_q), p.q_mean.append(q_mean), p.q_logvar.append(q_logvar)
            mean, logvar = q_mean, q_logvar
        else:
            mean, logvar = p.p_mean[t - 1], p.p_logvar[t - 1]
        z = mean + xp.exp(0.5 * logvar) * noise[t - 1]
        u = top.feedback_activation(be, z)
        h, c_state, cache = cell_dec.step(xp, u @ top.W_fb + top.b_fb, h_prev @ rnn.U_fb, h_prev,
                                          p.c_dec[t - 1])
        patch = h @ rnn.W_fb + rnn.b_fb
        if rnn.spec.write:
            glimpse = filterbank(be, h @ rnn.W_write + rnn.b_write, image, rnn.spec.write)
            written = write(xp, glimpse, patch)
            p.writes.append((glimpse, written))
        else:
            written = patch
            p.writes.append(None)
        p.z.append(z), p.u.append(u), p.dec.append(cache), p.h_dec.append(h), p.c_dec.append(c_state)
        p.patch.append(patch)
        p.canvas.append(p.canvas[t - 1] + written)
    for t in range(1, known + 1):
        j = t - 1
        if analytic_kl:
            p.kl.append(kl_analytic(xp, p.q_mean[j], p.q_logvar[j], p.p_mean[j], p.p_logvar[j]))
        else:
            p.kl.append(kl_sampled(xp, noise[j], p.q_logvar[j], p.z[j], p.p_mean[j], p.p_logvar[j]))
    p.out = p.canvas[steps]
    p.log_px = log_likelihood(xp, x, p.out, likelihood, hierarchy.areas[0].precision)
    return p


def log_weights(xp: Any, p: RecurrentPass, beta: Any = 1.0) -> Any:
    """``log p(x | c_T) - sum_t beta_t KL_t`` per row; ``beta`` a number or one per step."""
    total = p.log_px
    for t, kl in enumerate(p.kl):
        b = beta if isinstance(beta, (int, float)) else beta[t]
        total = total - b * xp.sum(kl, axis=1)
    return total
