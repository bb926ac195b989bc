"""Hierarchical difference target propagation, unsupervised: the generative
member of the target-propagation family (Bengio 2014, "How auto-encoders
could provide credit assignment in deep networks via target propagation",
arXiv:1407.7906, sections 2-4; Lee, Zhang, Fischer & Bengio 2015, "Difference
target propagation", ECML-PKDD, arXiv:1412.7525, sections 2.2-2.3 and their
auto-encoder of section 3.3), on the variational stack of
``rules/generative_target_prop.py`` (same bottom-up pass ``h_l``, samples
``z_l = m_l + exp(v_l / 2) e_l`` on stochastic areas, same decoder).

Forward maps ``f_l(v) = f_l(v @ W_ff_l + b_ff_l)`` (the mean on a stochastic
area); feedback maps, the decoder's conditionals (their means), applied to
any activity ``v`` of area ``l``::

    g_l(v) = phi_l(v) @ W_fb_l + b_fb_l        (l = 1: sigmoid of that for a Bernoulli x)

**Top target**: a step on the log prior of the top activity and a
reconstruction step::

    t_L = h_L + top_step * (mu_0 - h_L) / sigma_0^2 + reconstruction * (r_L - h_L)

The reconstruction target ``r_L`` is Lee et al.'s auto-encoder target carried
up through every level: decode the top activity, ``d_L = h_L``, ``d_{l-1} =
g_l(d_l)`` (means, down to the pixel mean ``d_0``); the target of ``d_0`` is
the data, ``r_0 = x``, and each encoder, the approximate inverse of the
decoder step below it, carries it up with the difference correction::

    r_l = d_l + f_l(r_{l-1}) - f_l(d_{l-1})          l = 1 .. L

**Targets descend** through the feedback maps with the difference correction,
and a stochastic area also takes a step on the log of its top-down prior
``N(pm_l, e^{pv_l})`` (the decoder's prediction from the decoder pass,
``docs/math.md``), as the top takes one on the independence prior::

    t_l = h_l + g_{l+1}(t_{l+1}) - g_{l+1}(h_{l+1})  [ + top_step (pm_l - h_l) e^{-pv_l}  if stochastic ]

**Forward weights** of area ``l`` descend the local loss (sum over units,
mean over the batch), the target held fixed::

    deterministic:  0.5 |h_l - t_l|^2                              e_a = (t_l - h_l) f_l'(a_l)
    stochastic:     0.5 |z_l - t_l|^2 - (top_step / 2) sum v_l       (z_l = m_l + e^{v_l/2} e_l)
                    -dloss/dm_l = t_l - z_l,   -dloss/dv_l = (t_l - z_l) e^{v_l/2} e_l / 2 + top_step / 2

The entropy term makes the prior part of a stochastic area's update
``top_step`` times the single-sample gradient of ``KL(q(z_l | .) || prior)``
(with the target ``h + top_step grad log p`` alone, ``0.5 |z - t|^2`` has the
gradient of ``top_step * (-log p(z))``; without the entropy the variance
would shrink to zero).

**Feedback weights** are trained as approximate inverses (decoders) of the
forward maps on noise-corrupted activities (Lee et al.'s inverse training):
``c_0 = x`` (the data is not corrupted) and ``c_{l-1} = h_{l-1} + noise *
eps_{l-1}`` above it; area ``l`` (``l = 1 .. L``) drives ``up_l = f_l(c_{l-1})``
(on a stochastic area the sample ``m_l(c) + e^{v_l(c)/2} e_l``, the pass's own
``e_l``) and its feedback weights descend::

    l = 1:   -log p(x | g_1(up_1))      (Bernoulli or Gaussian, as the decoder's likelihood)
    l > 1:   0.5 |c_{l-1} - (phi_l(up_l) @ W_fb_l + b_fb_l)|^2

The log-variance heads of the top-down priors (``W_fb_logvar``) are not used
by the targets; they descend ``-log N(z_{l-1}; pm_{l-1}, e^{pv_{l-1}})`` on the
decoder pass (the generative delta rule of ``generative_target_prop``), so
that the model the bound measures has calibrated priors.

Under Adam only the ratio ``top_step / reconstruction`` matters (scaling
both scales every forward update alike). Measured on binarized digits
(64-32-8, Adam 3e-3, batch 32, 630 steps, the 360 test images;
``docs/generative_target_prop.md``), with the defaults: held-out negative
ELBO 27.30 nats (untrained 47.35, ``elbo`` 24.99), reconstruction 23.83, top
KL 3.55, 8 of 8 active units; without the reconstruction step (``reconstruction
= 0``) the recognition collapses like the literal rule's (KL 0.08, 2 of 8
active, reconstruction 27.42). ``top_step = 0.1`` keeps too much (KL 38.8,
bound 58.0), 1.0 too little (KL 0.19). On the two-level 64-32-16-16-8 stack
the default's top collapses (0 of 8 active, bound 27.77); ``top_step = 0.2``
keeps 6 of 8 (bound 27.84).

**Locality.** No gradient crosses an area boundary: every update is the
gradient of a loss of the area's own parameters with the target (forward
weights), the corrupted input (feedback weights) or the decoder activity and
sample (variance heads) held fixed. Through the bottom-up pass, the feedback
update of area ``l`` depends on enc(1 .. l) and fb(l) only (tested); the
targets are a function of the whole stack, as in DTP (with ``reconstruction =
0``, ``t_l`` reads enc(1 .. L) and fb(l+1 .. L) only: targets descend only
through the feedback maps above, tested).

``infer`` is that of ``elbo`` plus the targets: ``state.variational["local"]``
holds ``"targets"`` (``t_l``), ``"reconstruction_target"`` (``r_l``) and
``"corrupted"`` (``c_l``) besides the decoder predictions; the draws of the
corruption follow those of ``elbo``: one (B, n_l) standard normal per latent
area ``l = 1 .. L-1``, bottom first (none with ``noise = 0``).
"""

from __future__ import annotations

import math
from typing import Any

from ..inference import State
from ..inference.variational import Pass, stochastic_areas, top_prior
from ..model.hierarchy import Hierarchy
from ..validation import check_number, invalid
from .base import register
from .generative_target_prop import _GenerativeTargetRule
from .local import Gradients

__all__ = ["GenerativeDTP"]


def _non_negative(value: Any, where: str) -> float:
    value = check_number(value, where)
    if value < 0:
        raise invalid(where, f"must be >= 0, got {value!r}")
    return value


@register("generative_dtp")
class GenerativeDTP(_GenerativeTargetRule):
    """Hierarchical difference target propagation on a variational stack
    (module docstring).

    Parameters
    ----------
    top_step : float
        Step on the log prior in the top target (and on each lower stochastic
        area's top-down prior); also the weight of the entropy term (> 0).
    reconstruction : float
        Weight of the reconstruction step ``r_L - h_L`` in the top target (>= 0;
        0 leaves only the prior step, and the recognition collapses).
    noise : float
        Standard deviation of the corruption of the activities the feedback
        maps are trained on (>= 0; Lee et al. 0.36 on tanh layers).
    likelihood : str
        ``"bernoulli"`` or ``"gaussian"``, the decoder's likelihood of x.
    seed : int
        Seeds the noise generator (samples and corruption).
    """

    name = "generative_dtp"
    tag = "gdtp"

    def __init__(
        self, top_step: float = 0.5, reconstruction: float = 1.0, noise: float = 0.1,
        likelihood: str = "bernoulli", seed: int = 0,
    ) -> None:
        self.top_step = check_number(top_step, "rule.top_step", positive=True)
        self.reconstruction_step = _non_negative(reconstruction, "rule.reconstruction")
        self.noise = _non_negative(noise, "rule.noise")
        super().__init__(likelihood, seed)

    # -- maps ----------------------------------------------------------------------
    def encode(self, hierarchy: Hierarchy, l: int, v: Any) -> Any:
        """``f_l(v @ W_ff_l + b_ff_l)``: area ``l``'s forward map (the mean on a stochastic area)."""
        area = hierarchy.areas[l]
        return area.activation(hierarchy.backend, v @ area.W_ff + area.b_ff)

    def inverse(self, hierarchy: Hierarchy, l: int, v: Any) -> Any:
        """``g_l(v)``: area ``l``'s feedback map (the pixel mean at ``l = 1``)."""
        _, mean, _ = self.predict(hierarchy, l, v)
        return self.pixel_mean(hierarchy, mean) if l == 1 else mean

    # -- targets ------------------------------------------------------------------------
    def _complete(self, hierarchy: Hierarchy, p: Pass, local: dict[str, Any]) -> None:
        be, xp = hierarchy.backend, hierarchy.backend.xp
        areas = hierarchy.areas
        top = len(areas) - 1
        flags = stochastic_areas(hierarchy)
        h = p.h
        # the reconstruction target, carried up from the data (Lee et al.'s auto-encoder)
        decoded: list[Any] = [None] * (top + 1)
        decoded[top] = h[top]
        for l in range(top, 0, -1):
            decoded[l - 1] = self.inverse(hierarchy, l, decoded[l])
        rec: list[Any] = [None] * (top + 1)
        rec[0] = p.x
        for l in range(1, top + 1):
            rec[l] = decoded[l] + self.encode(hierarchy, l, rec[l - 1]) - self.encode(hierarchy, l, decoded[l - 1])
        # the top target: prior step and reconstruction step
        mean, logvar = top_prior(hierarchy)
        targets: list[Any] = [None] * (top + 1)
        t = h[top] + (self.top_step * math.exp(-logvar)) * (mean - h[top])
        if self.reconstruction_step:
            t = t + self.reconstruction_step * (rec[top] - h[top])
        targets[top] = t
        for l in range(top - 1, 0, -1):  # down through the feedback maps
            t = h[l] + self.inverse(hierarchy, l + 1, targets[l + 1]) - self.inverse(hierarchy, l + 1, h[l + 1])
            if flags[l]:
                t = t + self.top_step * (p.p_mean[l] - h[l]) * xp.exp(-p.p_logvar[l])
            targets[l] = t
        corrupted: list[Any] = [None] * (top + 1)
        corrupted[0] = p.x
        for l in range(1, top):
            corrupted[l] = h[l]
            if self.noise > 0:
                draw = be.asarray(self._rng.standard_normal(size=(p.x.shape[0], areas[l].size)))
                corrupted[l] = h[l] + self.noise * draw
        local.update(targets=targets, reconstruction_target=rec, decoded=decoded, corrupted=corrupted)

    # -- learning ---------------------------------------------------------------------
    def gradients(self, hierarchy: Hierarchy, state: State) -> Gradients:
        """Forward weights towards their targets, feedback weights as inverses
        of the forward maps, log-variance heads on the decoder pass (descent
        directions; module docstring)."""
        self._check_state(state)
        xp = hierarchy.backend.xp
        areas = hierarchy.areas
        top = len(areas) - 1
        flags = stochastic_areas(hierarchy)
        p, local = state.variational["pass"], state.variational["local"]
        c = local["corrupted"]
        # inverse training of the feedback means
        u, e_p, inverse_losses = [None] * (top + 1), [None] * (top + 1), [None] * (top + 1)
        for l in range(1, top + 1):
            area = areas[l]
            a = c[l - 1] @ area.W_ff + area.b_ff
            up = area.activation(hierarchy.backend, a)
            if flags[l]:
                v = c[l - 1] @ area.W_ff_logvar + area.b_ff_logvar
                up = up + xp.exp(0.5 * v) * p.noise[l]
            u[l], mean, _ = self.predict(hierarchy, l, up)
            if l == 1:
                e_p[l], _, inverse_losses[l] = self.generative_errors(hierarchy, 1, c[0], mean, None)
            else:
                diff = c[l - 1] - mean
                e_p[l], inverse_losses[l] = diff, 0.5 * xp.sum(diff * diff) / diff.shape[0]
        grads = self._hebbian(hierarchy, u, e_p, ("W_fb", "b_fb"), f"{self.tag}.fb")
        # variance heads of the top-down priors, on the decoder pass
        e_s = [None] * (top + 1)
        for l in range(2, top + 1):
            if flags[l - 1]:
                diff = p.z[l - 1] - local["mean"][l]
                e_s[l] = 0.5 * (diff * diff * xp.exp(-local["logvar"][l]) - 1.0)
        grads.update(self._hebbian(hierarchy, local["u"], e_s, ("W_fb_logvar", "b_fb_logvar"),
                                   f"{self.tag}.fbv"))
        # forward weights towards the targets
        e_m, e_v, forward_losses = [None] * (top + 1), [None] * (top + 1), [None] * (top + 1)
        for l in range(1, top + 1):
            diff = local["targets"][l] - p.h[l]
            e_m[l] = diff
            forward_losses[l] = 0.5 * xp.sum(diff * diff) / diff.shape[0]
            if flags[l]:
                e_v[l] = diff * (0.5 * xp.exp(0.5 * p.bu_logvar[l]) * p.noise[l]) + 0.5 * self.top_step
                forward_losses[l] = forward_losses[l] - 0.5 * self.top_step * xp.sum(p.bu_logvar[l]) / diff.shape[0]
        return self._finish(hierarchy, state, grads, e_m, e_v, inverse_losses, forward_losses)

    def __repr__(self) -> str:
        return (f"GenerativeDTP(top_step={self.top_step}, reconstruction={self.reconstruction_step}, "
                f"noise={self.noise}, likelihood={self.likelihood!r}, seed={self.seed})")
