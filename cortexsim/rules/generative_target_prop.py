"""Generative target propagation: a hierarchy of latent areas in which the
feedback pathway's predictions are the *targets* of the feedforward pathway,
and both pathways learn locally, by making the top-down prediction and the
bottom-up activity of every level agree.

The model is the variational stack of ``inference/variational.py`` (docs/math.md,
"Variational areas"; the model files ``vae_mnist_iwae``, ``hvae2_mnist_iwae``,
``hvae3_mnist``). A **bottom-up pass** (the ``infer`` of ``elbo``, bottom-up
posterior) draws a sample of the approximate posterior at every stochastic
level; ``h_0 = x`` and, for ``l = 1 .. L``::

    a_l = h_{l-1} @ W_ff_l + b_ff_l
    deterministic area:  h_l = f_l(a_l)
    stochastic area:     m_l = f_l(a_l),  v_l = h_{l-1} @ W_ff_logvar_l + b_ff_logvar_l,
                         h_l = z_l = m_l + exp(v_l / 2) e_l,   e_l ~ N(0, I)

A **feedback pass** (the decoder pass of the same ``infer``) predicts each
level from the level above, top-down: ``d_L = z_L``; ``d_l = z_l`` on a
stochastic area (its posterior sample) and the prediction itself on a
deterministic one::

    u_l = phi_l(d_l),   p_{l-1} = u_l @ W_fb_l + b_fb_l                  l = L .. 1
    area l-1 stochastic:     s_{l-1} = u_l @ W_fb_logvar_l + b_fb_logvar_l,   d_{l-1} = z_{l-1}
    area l-1 deterministic:  d_{l-1} = p_{l-1}
    area 0:                  p_0 are the Bernoulli logits (or the Gaussian mean) of x

and the prediction is the **top-down prior** of the level below:
``N(p_{l-1}, exp(s_{l-1}))`` on a stochastic area, ``N(p_{l-1}, 1/pi_{l-1})``
(``pi`` the area's ``precision``) on a deterministic one; the top area's prior
is the independence prior ``N(mu_0, sigma_0^2 I)`` (its ``prior``; standard
normal when none is given). Sums run over units; every loss is a mean over
the batch ``B``.

**Generative (feedback) weights** of area ``l`` (``W_fb_l``, ``b_fb_l`` and,
above a stochastic area, ``W_fb_logvar_l``, ``b_fb_logvar_l``) learn to
predict the bottom-up activity of the level below: the delta rule on the
prediction error, i.e. they descend ``G_l = -log p(h_{l-1} | d_l)`` with
``e = -dG_l/d(prediction)`` per row::

    area 0, Bernoulli:   G = sum softplus(p_0) - x p_0              e_p = x - sigmoid(p_0)
    area 0, Gaussian:    G = 0.5 pi_0 |x - p_0|^2                  e_p = pi_0 (x - p_0)
    deterministic l-1:   G = 0.5 pi_{l-1} |h_{l-1} - p_{l-1}|^2      e_p = pi_{l-1} (h_{l-1} - p_{l-1})
    stochastic l-1:      G = 0.5 sum (s + (z - p)^2 e^{-s})        e_p = (z - p) e^{-s}
                                                                  e_s = ((z - p)^2 e^{-s} - 1) / 2
    dG_l/dW_fb_l = -(1/B) u_l^T e_p,      dG_l/dW_fb_logvar_l = -(1/B) u_l^T e_s

(``rules.local.hebbian_gradients``; up to constants. On a model whose latent
areas are all stochastic this is the decoder part of the ELBO's gradient, tested.)

**Recognition weights** of area ``l`` (``W_ff_l``, ``b_ff_l`` and, on a
stochastic area, ``W_ff_logvar_l``, ``b_ff_logvar_l``) descend ``F_l``,
with ``-dF_l/dm_l`` at the activity ``f_l(a_l)``, ``-dF_l/dv_l`` on a
stochastic area, and ``dF_l/dW_ff_l = -(1/B) h_{l-1}^T [(-dF_l/dm_l) f_l'(a_l)]``,
``dF_l/dW_ff_logvar_l = -(1/B) h_{l-1}^T (-dF_l/dv_l)``.

``variant = "literal"`` (the seed's rule): move the activity towards the
top-down prediction from the level above, its prior, held fixed::

    deterministic l:  F_l = 0.5 pi_l |h_l - p_l|^2              (the target is t_l = p_l)
    stochastic l:     F_l = KL( N(m_l, e^{v_l}) || N(p_l, e^{s_l}) )    (top: N(mu_0, sigma_0^2))
                      -dF/dm_l = -(m_l - p_l) e^{-s_l},   -dF/dv_l = -(e^{v_l - s_l} - 1) / 2

Nothing in ``F_l`` asks the recognition weights to keep information about the
input: the top area descends its KL to the independence prior alone, which is
least (zero) where ``q(z_L | x)`` is the prior for every ``x``; every level
below is then pulled towards a prediction from noise, and the generative
weights learn the marginal of the data. **The literal rule collapses onto
the prior.** Measured on binarized digits (64-32-8, tanh encoder and decoder,
Adam 3e-3, batch 32, 630 steps, the 360 test images; ``docs/generative_target_prop.md``):
the top KL falls from 1.80 to 0.00 nats, the active units (Burda et al.'s
``Cov_x E_q[z] > 0.01``) from 8 to 0 of 8, and the held-out negative ELBO
stops at 29.54 nats, all of it reconstruction: the bound of a model that
ignores its latents (``elbo``: 24.99).

``variant = "reconstructive"`` (the fix): the recognition target also holds
the area's own reconstruction of the level below, the error of its
generative prediction sent back through its own generative weights
(``rho = reconstruction``, default 1)::

    eps_l = -dG_l/dd_l = (e_p @ W_fb_l^T + e_s @ W_fb_logvar_l^T) * phi_l'(d_l)
    -dF_l/dm_l = [literal] + rho eps_l
    stochastic l: -dF_l/dv_l = [literal] + rho eps_l exp(v_l / 2) e_l / 2

On a stochastic area ``d_l = z_l = m_l + e^{v_l/2} e_l``, so this is the
gradient of ``F_l = KL(q || p_l) + rho G_l(z_l)``: with ``rho = 1`` the negative
ELBO of a one-layer VAE of the level below whose prior is the prediction from
above, and on a model with one stochastic area over the data the VAE's own
gradient (tested against ``elbo``). On a deterministic area ``d_l`` is the
decoder's activity, which is not a function of area ``l``'s recognition
weights: there ``eps_l`` moves the bottom-up activity ``h_l``, the target the
decoder's ``d_l`` is trained towards, in the direction that would let the
decoder explain the level below better; with the mismatch the recognition
target is ``t_l = p_l + rho eps_l / pi_l`` and ``F_l = 0.5 pi_l |h_l - t_l|^2``
(the target held fixed), target propagation of the reconstruction error up
the decoder, one area at a time. Measured as above: the top keeps 8 of 8
active units and the held-out negative ELBO reaches 27.04 nats (``rho = 2``:
25.93). On the two-level 64-32-16-16-8 stack the literal rule ends at 29.64
with no active unit at either level; ``rho = 1`` reaches 27.10 but its top
collapses too (KL 0.06 nats, 0 of 8 active), ``rho = 2`` keeps 8 of 8 and
reaches 26.37 (``elbo``: 25.82): a deterministic area's Gaussian of unit
precision is a weak reconstruction target for the stochastic area above it.

**Locality.** No gradient crosses an area boundary, in either variant: each
area's update is computed from its own presynaptic activity, its own
postsynaptic errors and (reconstructive) its own generative weights, with
every activity of another area (the input ``h_{l-1}``, the prediction and
decoder activity from above) held fixed. Through the two passes, with enc(k)
area ``k``'s recognition parameters, fb(k) its generative ones and ``s(l)``
the lowest stochastic area at or above ``l`` (the decoder pass restarts at
each sample), an update depends on exactly (tested by perturbing each)::

    generative update of area l:    enc(1 .. s(l)),   fb(l .. s(l))
    recognition update of area l:   enc(1 .. s(l+1)), fb(l+1 .. s(l+1))     (top: enc(1 .. L))
                  reconstructive:   and fb(l)

and ``gradients`` reads nothing but the state of ``infer`` and, for the
reconstructive term, the area's own generative weights. Inside a
conditional of the variational model (the two tanh layers between ``x`` and
``z`` of ``vae_mnist_iwae``) the deterministic areas are areas like any
other: each has its own prediction, target and local loss, unlike
``reweighted_wake_sleep``, which back-propagates within a conditional.

``infer`` is that of ``elbo`` (``k = 1``, bottom-up): ``loss`` is the negative
ELBO of the model's decoder (comparable across rules) and ``evaluate`` its
held-out value. ``state.variational["local"]`` holds per area ``l`` the
prediction of area ``l-1`` (``"u"``, ``"mean"``, ``"logvar"``) and, once
``gradients`` ran, the batch-mean local losses ``"generative"`` (``G_l``) and
``"recognition"`` (``F_l``; on a deterministic area of the reconstructive
variant the literal term plus ``rho G_l``, whose gradient it does not follow);
``state.errors[l]`` is ``-dF_l/da_l`` per row. Noise is drawn as ``elbo`` draws
it. The hierarchical difference target propagation of the same family is
``rules/generative_dtp.py``.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigurationError
from ..inference import State
from ..inference.variational import Pass, sigmoid, stochastic_areas, top_prior
from ..model.hierarchy import Hierarchy
from ..validation import check_choice, check_number, invalid
from .base import register
from .elbo import ELBO
from .local import Gradients, hebbian_gradients

__all__ = ["GenerativeTargetProp", "VARIANTS"]

VARIANTS = ("literal", "reconstructive")


class _GenerativeTargetRule(ELBO):
    """Shared plumbing of the family: the bottom-up pass of ``elbo``, the local
    predictions, the generative delta rule and the local recognition update
    (presynaptic activity times postsynaptic error, per area)."""

    name = ""
    tag = ""

    def __init__(self, likelihood: str, seed: int, beta: float = 1.0) -> None:
        beta = check_number(beta, "rule.beta")
        if beta < 0:
            raise invalid("rule.beta", f"must be >= 0, got {beta!r}")
        super().__init__(beta=beta, warmup=0, likelihood=likelihood, samples=1, k=1,
                         posterior="bottom_up", kl=None, seed=seed)

    # -- the feedback pass ---------------------------------------------------------
    def predict(self, hierarchy: Hierarchy, l: int, v: Any) -> tuple[Any, Any, Any]:
        """Area ``l``'s prediction of area ``l-1`` from activity ``v`` of area ``l``:
        ``(u, p, s)`` with ``u = phi_l(v)``, ``p = u @ W_fb_l + b_fb_l`` and, when
        area ``l-1`` is stochastic, its log-variance ``s`` (None otherwise)."""
        be = hierarchy.backend
        area = hierarchy.areas[l]
        u = area.feedback_activation(be, v)
        mean = u @ area.W_fb + area.b_fb
        logvar = None
        if l > 1 and hierarchy.areas[l - 1].spec.stochastic:
            logvar = u @ area.W_fb_logvar + area.b_fb_logvar
        return u, mean, logvar

    def pixel_mean(self, hierarchy: Hierarchy, p0: Any) -> Any:
        """The mean of ``p(x | .)`` from area 1's prediction (sigmoid of the logits)."""
        return sigmoid(hierarchy.backend.xp, p0) if self.likelihood == "bernoulli" else p0

    def generative_errors(
        self, hierarchy: Hierarchy, l: int, below: Any, mean: Any, logvar: Any
    ) -> tuple[Any, Any, Any]:
        """``(e_p, e_s, G)`` of ``G_l = -log p(below | .)`` at area ``l``'s prediction:
        ``e = -dG/d(prediction)`` per row (``e_s`` None unless area ``l-1`` is
        stochastic) and ``G`` the batch mean, up to constants."""
        xp = hierarchy.backend.xp
        rows = below.shape[0]
        if l == 1 and self.likelihood == "bernoulli":
            softplus = xp.maximum(mean, xp.zeros_like(mean)) + xp.log1p(xp.exp(-xp.abs(mean)))
            return below - sigmoid(xp, mean), None, xp.sum(softplus - below * mean) / rows
        diff = below - mean
        if logvar is None:
            pi = hierarchy.areas[l - 1].precision
            return pi * diff, None, 0.5 * pi * xp.sum(diff * diff) / rows
        ratio = diff * xp.exp(-logvar)
        e_s = 0.5 * (diff * ratio - 1.0)
        return ratio, e_s, 0.5 * xp.sum(logvar + diff * ratio) / rows

    def reconstruction_error(self, hierarchy: Hierarchy, l: int, v: Any, e_p: Any, e_s: Any) -> Any:
        """``-dG_l/dv`` at the activity ``v`` area ``l`` predicts from (its decoder
        activity ``d_l``), from the errors ``e_p``, ``e_s`` of that prediction: the
        prediction error of the level below sent back through area ``l``'s own
        generative weights."""
        be, xp = hierarchy.backend, hierarchy.backend.xp
        T = xp.matrix_transpose
        area = hierarchy.areas[l]
        g = e_p @ T(area.W_fb)
        if e_s is not None:
            g = g + e_s @ T(area.W_fb_logvar)
        if area.feedback_activation.is_linear:
            return g
        return g * area.feedback_activation.grad(be, v)

    def top_prior_of(self, hierarchy: Hierarchy) -> tuple[Any, Any]:
        """The independence prior of the top area as (mean, log-variance) rows (n_L,)."""
        be = hierarchy.backend
        mean, logvar = top_prior(hierarchy)
        size = hierarchy.top.size
        return be.asarray([mean] * size), be.asarray([logvar] * size)

    def local_predictions(self, hierarchy: Hierarchy, p: Pass) -> dict[str, list[Any]]:
        """``u[l], mean[l], logvar[l]``: area ``l``'s prediction of area ``l-1``
        from its decoder activity ``d_l`` (the decoder pass of ``p``; index 0 unused)."""
        top = len(hierarchy.areas) - 1
        local: dict[str, list[Any]] = {key: [None] * (top + 1) for key in ("u", "mean", "logvar")}
        for l in range(1, top + 1):
            local["u"][l], local["mean"][l], local["logvar"][l] = self.predict(hierarchy, l, p.d[l])
        return local

    # -- local updates -------------------------------------------------------------------
    def _hebbian(self, hierarchy: Hierarchy, pre: list[Any], errors: list[Any],
                 weights: tuple[str, str], tag: str) -> Gradients:
        if all(e is None for e in errors):
            return {}
        return hebbian_gradients(hierarchy, pre, errors, weights, tag=tag)

    def generative_gradients(
        self, hierarchy: Hierarchy, u: list[Any], below: list[Any], mean: list[Any],
        logvar: list[Any], tag: str,
    ) -> tuple[Gradients, list[Any], list[Any], list[Any]]:
        """Descent directions of ``G_l`` for every area's generative weights,
        from presynaptic ``u[l]``, the activity ``below[l]`` it predicts and the
        prediction ``mean[l], logvar[l]``; also returns ``e_p``, ``e_s`` and ``G`` per area."""
        top = len(hierarchy.areas) - 1
        e_p, e_s, losses = [None] * (top + 1), [None] * (top + 1), [None] * (top + 1)
        for l in range(1, top + 1):
            e_p[l], e_s[l], losses[l] = self.generative_errors(hierarchy, l, below[l], mean[l], logvar[l])
        grads = self._hebbian(hierarchy, u, e_p, ("W_fb", "b_fb"), f"{tag}.fb")
        grads.update(self._hebbian(hierarchy, u, e_s, ("W_fb_logvar", "b_fb_logvar"), f"{tag}.fbv"))
        return grads, e_p, e_s, losses

    def recognition_gradients(
        self, hierarchy: Hierarchy, p: Pass, e_m: list[Any], e_v: list[Any], tag: str
    ) -> tuple[Gradients, list[Any]]:
        """Descent directions of the recognition weights of every area from
        ``e_m[l] = -dF_l/dm_l`` (at the activity ``f_l(a_l)``) and, on stochastic
        areas, ``e_v[l] = -dF_l/dv_l``; the presynaptic activity is ``h_{l-1}``.
        Returns the gradients and ``-dF_l/da_l`` per area."""
        be = hierarchy.backend
        top = len(hierarchy.areas) - 1
        e_a: list[Any] = [None] * (top + 1)
        for l in range(1, top + 1):
            activation = hierarchy.areas[l].activation
            e_a[l] = e_m[l] if activation.is_linear else e_m[l] * activation.grad(be, p.a[l])
        pre = [None] + p.h[:-1]
        grads = self._hebbian(hierarchy, pre, e_a, ("W_ff", "b_ff"), f"{tag}.ff")
        grads.update(self._hebbian(hierarchy, pre, e_v, ("W_ff_logvar", "b_ff_logvar"), f"{tag}.ffv"))
        return grads, e_a

    def _finish(
        self, hierarchy: Hierarchy, state: State, grads: Gradients, e_m: list[Any], e_v: list[Any],
        generative_losses: list[Any], recognition_losses: list[Any], p: Pass | None = None,
    ) -> Gradients:
        """Add the recognition gradients to ``grads`` (on the pass ``p``, the
        state's own by default), keep ``-dF_l/da_l`` as the state's errors and the
        local losses in the state, and count the batch."""
        local = state.variational["local"]
        p = state.variational["pass"] if p is None else p
        recognition, e_a = self.recognition_gradients(hierarchy, p, e_m, e_v, self.tag)
        grads.update(recognition)
        for l in range(1, len(hierarchy.areas)):
            state.errors[l] = e_a[l]
        local["generative"], local["recognition"] = generative_losses, recognition_losses
        self.batches += 1
        return grads

    # -- the rule --------------------------------------------------------------------------
    def infer(self, hierarchy: Hierarchy, x: Any, y: Any = None, observe: Any = None) -> State:
        """The bottom-up pass and bound of ``elbo`` (``y`` ignored, nothing to
        observe), and the local predictions of the feedback pass."""
        state = super().infer(hierarchy, x)
        state.variational["local"] = self._local(hierarchy, state.variational["pass"])
        return state

    def _local(self, hierarchy: Hierarchy, p: Pass) -> dict[str, Any]:
        """What ``gradients`` reads besides the pass: the local predictions of its
        decoder pass and what the variant adds (``_complete``)."""
        local = self.local_predictions(hierarchy, p)
        self._complete(hierarchy, p, local)
        return local

    def _complete(self, hierarchy: Hierarchy, p: Pass, local: dict[str, Any]) -> None:
        """Add what a variant computes at inference time (targets, noise) to ``local``."""

    def _check_state(self, state: State) -> None:
        if state.mode != "variational" or state.producer is not self or "local" not in (
                state.variational or {}):
            raise ConfigurationError(
                f"rule {self.name!r} needs the state of its own infer (the bottom-up pass and "
                f"the local predictions), got a state of mode {state.mode!r}"
            )


@register("generative_target_prop")
class GenerativeTargetProp(_GenerativeTargetRule):
    """Generative target propagation: the feedback pathway's prediction of each
    level is the target (the prior) of the recognition pathway there, and the
    feedback pathway learns to predict the bottom-up activity; see the module
    docstring for the losses of each variant.

    Parameters
    ----------
    variant : str
        ``"literal"`` (the recognition weights descend only the mismatch with
        the prediction from above; collapses onto the prior) or
        ``"reconstructive"`` (their target also holds the area's own
        reconstruction of the level below: a local VAE per stochastic area).
    likelihood : str
        ``"bernoulli"`` (area 1's generative weights give logits) or
        ``"gaussian"`` (the mean; variance ``1/precision`` of area 0).
    reconstruction : float
        ``rho``, the weight of the reconstruction term (> 0; only the
        reconstructive variant has one). 1 makes a stochastic area's loss its
        local ELBO; 2 keeps the top of two-level stacks active (module docstring).
    beta : float
        Weight (>= 0) of the top area's KL to the independence prior in its
        recognition loss, ``F_L = beta KL(q_L || p) + rho G_L``: the β of a
        β-VAE at the top (Higgins et al. 2017). 1: the rule as written above.
    seed : int
        Seeds the noise generator of the bottom-up samples.
    """

    name = "generative_target_prop"
    tag = "gtp"

    def __init__(
        self, variant: str = "literal", likelihood: str = "bernoulli", reconstruction: float = 1.0,
        beta: float = 1.0, seed: int = 0,
    ) -> None:
        check_choice(variant, VARIANTS, "rule.variant")
        reconstruction = check_number(reconstruction, "rule.reconstruction", positive=True)
        if variant == "literal" and reconstruction != 1.0:
            raise invalid("rule.reconstruction", "the literal variant has no reconstruction term; "
                          "set variant = \"reconstructive\" to weigh one")
        super().__init__(likelihood, seed, beta)
        self.variant = variant
        self.reconstruction = reconstruction

    def gradients(self, hierarchy: Hierarchy, state: State) -> Gradients:
        """Descent directions of every area's generative and recognition weights
        from its own local loss (module docstring), at the state's activities."""
        self._check_state(state)
        xp = hierarchy.backend.xp
        areas = hierarchy.areas
        top = len(areas) - 1
        flags = stochastic_areas(hierarchy)
        p, local = state.variational["pass"], state.variational["local"]
        below = [None] + p.h[:-1]
        grads, e_p, e_s, generative = self.generative_gradients(
            hierarchy, local["u"], below, local["mean"], local["logvar"], self.tag)
        prior_mean, prior_logvar = self.top_prior_of(hierarchy)
        e_m, e_v, recognition = [None] * (top + 1), [None] * (top + 1), [None] * (top + 1)
        rows = p.x.shape[0]
        for l in range(1, top + 1):
            if l == top:
                pm, pv = prior_mean, prior_logvar
            else:
                pm, pv = local["mean"][l + 1], local["logvar"][l + 1]
            if flags[l]:  # KL(N(m, e^v) || N(pm, e^pv)), closed form
                m, v = p.mean[l], p.bu_logvar[l]
                diff, ip = m - pm, xp.exp(-pv)
                e_m[l] = -diff * ip
                e_v[l] = -0.5 * (xp.exp(v - pv) - 1.0)
                recognition[l] = 0.5 * xp.sum(pv - v + (xp.exp(v) + diff * diff) * ip - 1.0) / rows
            else:  # 0.5 pi |h - p|^2
                pi = areas[l].precision
                diff = pm - p.h[l]
                e_m[l] = pi * diff
                recognition[l] = 0.5 * pi * xp.sum(diff * diff) / rows
            if l == top and self.beta != 1.0:  # beta KL(q_L || p) at the top
                e_m[l] = self.beta * e_m[l]
                e_v[l] = None if e_v[l] is None else self.beta * e_v[l]
                recognition[l] = self.beta * recognition[l]
            if self.variant == "reconstructive":  # -dG_l/dd_l: area l's own error, sent back
                g = self.reconstruction_error(hierarchy, l, p.d[l], e_p[l], e_s[l])
                if self.reconstruction != 1.0:
                    g = g * self.reconstruction
                e_m[l] = e_m[l] + g
                if flags[l]:
                    e_v[l] = e_v[l] + g * (0.5 * xp.exp(0.5 * p.bu_logvar[l]) * p.noise[l])
                recognition[l] = recognition[l] + self.reconstruction * generative[l]
        return self._finish(hierarchy, state, grads, e_m, e_v, generative, recognition)

    def __repr__(self) -> str:
        return (f"GenerativeTargetProp(variant={self.variant!r}, likelihood={self.likelihood!r}, "
                f"beta={self.beta}, seed={self.seed})")
