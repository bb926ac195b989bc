"""Reweighted wake–sleep on variational areas: the VAE's encoder and decoder
trained without any gradient crossing a stochastic area (Bornschein & Bengio
2015, "Reweighted wake-sleep", ICLR, arXiv:1406.2751; with ``k = 1`` the
wake–sleep algorithm of Hinton, Dayan, Frey & Neal 1995, Science 268:1158).

The model is that of ``inference/variational.py`` and the ``elbo`` rule
(docs/math.md, "Variational areas"): stochastic Gaussian areas ``z_l`` with
recognition posteriors ``q(z_l | z_{l-1})`` (mean and log-variance heads of the
encoder) and generative priors ``p(z_l | z_{l+1})`` (the decoder's mean and
log-variance heads; the top area's Gaussian ``prior``, standard normal when
none is given, at the top), deterministic hidden areas between them, and a
Bernoulli (logits) or Gaussian (variance ``1/precision_0``) likelihood
``p(x | z_1)``. Inference is bottom-up only: ``q(z | x) = q(z_1 | x) q(z_2 |
z_1) ..``, each conditional computed by the encoder's deterministic areas
from the sample below.

With ``k`` samples ``z^(j) ~ q(z | x)`` per datum (the ``infer`` of ``elbo``,
reparameterized but the reparameterization is not used here) and normalized
importance weights

    w_j = p(x, z^(j)) / q(z^(j) | x),      wt_j = w_j / sum_j' w_j'      (k = 1: wt = 1)

the three updates of Bornschein & Bengio, as descent
directions averaged over the batch ``B``, are::

    p wake:   d theta = -(1/B) sum_b sum_j wt_j  grad_theta log p(x, z^(j))
    q wake:   d phi   = -(1/B) sum_b sum_j wt_j  grad_phi   log q(z^(j) | x)      z^(j) held fixed
    q sleep:  d phi   = -(1/B') sum_b'          grad_phi   log q(z' | x'),      (x', z') ~ p(x, z)

``theta`` is the decoder (``W_fb``, ``b_fb``, ``W_fb_logvar``, ``b_fb_logvar``),
``phi`` the encoder (``W_ff``, ``b_ff``, ``W_ff_logvar``, ``b_ff_logvar``).
The p-wake update is the gradient of the importance-weighted bound with
respect to the decoder (the samples do not depend on it), so it is the decoder
part of ``rules/elbo_backward.backward`` at the same pass and row weights. The
encoder follows the q-wake update, the q-sleep update or their average
(``recognition = "wake" | "sleep" | "both"``; Bornschein & Bengio recommend the
average best). ``k = 1`` with ``recognition = "sleep"`` is the classic
wake–sleep algorithm. At ``k = 1`` the q-wake update is zero in expectation
(``E_q[grad_phi log q] = 0``, the score-function identity): it only adds noise,
and ``recognition = "wake"`` alone does not train the encoder there (on
probabilistic PCA its Adam steps random-walk and the run diverges); it needs
``k > 1``, where the importance weights tilt it towards the posterior.

Both q-updates descend ``-sum_r c_r log q(z_r | inputs)`` over rows ``r`` with
every stochastic area's sample fixed (no path through the reparameterization):
per stochastic area ``l``, with ``m = f_l(a_l)``, ``v`` the log-variance head
and the input ``h_{l-1}`` computed by the encoder's deterministic areas from
the sample of the stochastic area below (or the data)::

    -log q(z_l | h_{l-1}) = sum_units 0.5 (log 2 pi + v + (z_l - m)^2 e^{-v})
    dloss/dm = -c (z_l - m) e^{-v},     dloss/dv = c 0.5 (1 - (z_l - m)^2 e^{-v})

back-propagated through ``f_l`` and down the deterministic areas of that
conditional, stopping at the sample below. Wake: the pass's own samples, ``c``
the importance row weights ``wt / B``. Sleep: ``B'`` dreams (``sleep_samples``,
default the wake batch) drawn top-down from p, ``c = 1/B'``, the encoder
"teacher-forced" by the dreamed samples.

So no gradient crosses a stochastic area or passes from the decoder to the
encoder; the deterministic areas inside one conditional are trained by
backpropagation within it, as in Bornschein & Bengio.

Noise is drawn on the host from the rule's seeded ``numpy.random.Generator``
and copied to the backend: ``infer`` draws as ``elbo`` does (one (k B, n_l)
standard normal per stochastic area, bottom first); ``gradients`` then dreams
(unless ``recognition = "wake"``): a (B', n_L) standard normal for the top
prior, one (B', n_l) standard normal per lower stochastic area top-down, and
for x a (B', n_0) uniform (Bernoulli) or standard normal (Gaussian). The last
dreams stay in ``self.dreams`` (per area: ``x`` at area 0, the sample on
stochastic areas, the decoder activity ``d_l`` on deterministic ones).

``infer`` and its ``State`` are those of ``elbo`` (``beta = 1``, ``samples =
1``, the analytic top KL for ``k = 1`` in the reported loss, sampled KL terms
for ``k > 1``): ``loss`` is the negative (importance-weighted) bound, comparable
with ``elbo``. ``errors[l]`` (filled by ``gradients`` when the q-wake update
is computed) is ``-B`` times the q-wake loss gradient at the encoder
pre-activation of area ``l``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigurationError
from ..model.hierarchy import Hierarchy
from ..inference import State
from ..inference.variational import sigmoid, stochastic_areas, top_prior
from ..validation import check_choice, check_int
from .base import register
from .elbo import ELBO
from .elbo_backward import backward
from .local import Gradients

__all__ = ["ReweightedWakeSleep", "RECOGNITION", "recognition_gradients", "teacher_forced"]

RECOGNITION = ("sleep", "wake", "both")


def teacher_forced(hierarchy: Hierarchy, x: Any, samples: list[Any]) -> tuple[list[Any], ...]:
    """The encoder on data rows ``x`` with every stochastic area's output set to
    its given sample: per area the pre-activation ``a``, the output ``h`` (the
    sample on stochastic areas, ``h[0] = x``), the mean ``f(a)`` and, on
    stochastic areas, the log-variance head. A bottom-up ``Pass`` of
    ``inference.variational.forward`` holds the same for its own samples."""
    be = hierarchy.backend
    areas = hierarchy.areas
    top = len(areas) - 1
    flags = stochastic_areas(hierarchy)
    a, h, mean, logvar = [None] * (top + 1), [x] + [None] * top, [None] * (top + 1), [None] * (top + 1)
    for l in range(1, top + 1):
        area = areas[l]
        a[l] = h[l - 1] @ area.W_ff + area.b_ff
        mean[l] = area.activation(be, a[l])
        if flags[l]:
            logvar[l] = h[l - 1] @ area.W_ff_logvar + area.b_ff_logvar
            h[l] = samples[l]
        else:
            h[l] = mean[l]
    return a, h, mean, logvar


def recognition_gradients(
    hierarchy: Hierarchy, x: Any, samples: list[Any], weights: Any,
    encoded: tuple[list[Any], ...] | None = None,
) -> tuple[Gradients, list[Any]]:
    """Encoder gradients of ``-sum_r weights_r log q(samples_r | inputs_r)``.

    Parameters
    ----------
    x : array (rows, n_0)
        The data rows (the input of the lowest conditional).
    samples : list of arrays
        ``samples[l]`` (rows, n_l), the fixed sample of every stochastic area
        (other entries ignored). Each is the target of its area's Gaussian and
        the input, through the encoder's deterministic areas, of the next
        stochastic area above.
    weights : array (rows,)
        The row weights ``c_r``.
    encoded : tuple, optional
        :func:`teacher_forced` of ``x`` and ``samples`` when the caller has it
        already (the wake phase: the pass that drew the samples); computed otherwise.

    Returns
    -------
    gradients : dict
        Descent directions for ``W_ff``, ``b_ff`` of every area above the data
        and ``W_ff_logvar``, ``b_ff_logvar`` of the stochastic ones.
    pre_errors : list of arrays
        The loss gradient at each area's encoder pre-activation (rows, n_l).
    """
    be, xp = hierarchy.backend, hierarchy.backend.xp
    T = xp.matrix_transpose
    areas = hierarchy.areas
    top = len(areas) - 1
    flags = stochastic_areas(hierarchy)
    c = xp.reshape(weights, (-1, 1))
    a, h, mean, logvar = teacher_forced(hierarchy, x, samples) if encoded is None else encoded
    grads: Gradients = {}
    pre_errors: list[Any] = [None] * (top + 1)
    g_h = None  # loss gradient at h_l from the area above
    for l in range(top, 0, -1):
        area = areas[l]
        g_v = None
        if flags[l]:  # the Gaussian of z_l; what reaches the sample from above stops here
            diff = samples[l] - mean[l]
            ratio = diff * xp.exp(-logvar[l])
            g_m = -c * ratio
            g_v = c * (0.5 * (1.0 - diff * ratio))
        else:
            g_m = g_h
        fp = area.activation.derivative(be, a[l], mean[l], xp.empty_like(a[l]))
        g_a = g_m if fp is None else g_m * fp
        pre_errors[l] = g_a
        grads[(area.name, "W_ff")] = T(h[l - 1]) @ g_a
        grads[(area.name, "b_ff")] = xp.sum(g_a, axis=0)
        if g_v is not None:
            grads[(area.name, "W_ff_logvar")] = T(h[l - 1]) @ g_v
            grads[(area.name, "b_ff_logvar")] = xp.sum(g_v, axis=0)
        if l > 1 and not flags[l - 1]:  # down into the deterministic area below
            g_h = g_a @ T(area.W_ff)
            if g_v is not None:
                g_h = g_h + g_v @ T(area.W_ff_logvar)
        else:
            g_h = None
    return grads, pre_errors


@register("reweighted_wake_sleep")
class ReweightedWakeSleep(ELBO):
    """Reweighted wake–sleep (``k = 1``: wake–sleep) on a variational model.

    Parameters
    ----------
    likelihood : str
        ``"bernoulli"`` (area 1's generative path gives logits) or
        ``"gaussian"`` (it gives the mean; variance ``1/precision`` of area 0).
    k : int
        Importance samples per datum in the wake phase (>= 1).
    recognition : str
        Which q-updates train the encoder: ``"sleep"`` (on dreams, as in
        wake–sleep), ``"wake"`` (on the importance-weighted posterior samples)
        or ``"both"`` (their average, Bornschein & Bengio's recommendation).
    sleep_samples : int or None
        Dreams per sleep phase (>= 1); None dreams as many as the wake batch holds.
    seed : int
        Seeds the noise generator (posterior samples and dreams).
    """

    name = "reweighted_wake_sleep"

    def __init__(
        self, likelihood: str = "bernoulli", k: int = 1, recognition: str = "both",
        sleep_samples: int | None = None, seed: int = 0,
    ) -> None:
        super().__init__(beta=1.0, warmup=0, likelihood=likelihood, samples=1, k=k,
                         posterior="bottom_up", kl=None, seed=seed)
        check_choice(recognition, RECOGNITION, "rule.recognition")
        self.recognition = recognition
        if sleep_samples is not None:
            sleep_samples = check_int(sleep_samples, "rule.sleep_samples", minimum=1)
        self.sleep_samples = sleep_samples
        self.dreams: list[Any] | None = None  # the last sleep phase's dreams, area 0 = x

    # -- sleep -------------------------------------------------------------------
    def _normal(self, hierarchy: Hierarchy, rows: int, size: int) -> Any:
        return hierarchy.backend.asarray(self._rng.standard_normal(size=(rows, size)))

    def dream(self, hierarchy: Hierarchy, samples: int) -> list[Any]:
        """``samples`` ancestral samples of p(x, z), top-down (draws in the order
        of the module docstring). Returns per area (samples, n_l): x at area 0,
        the sample on stochastic areas, the decoder activity on deterministic ones."""
        samples = check_int(samples, "samples", minimum=1)
        be, xp = hierarchy.backend, hierarchy.backend.xp
        areas = hierarchy.areas
        top = len(areas) - 1
        flags = stochastic_areas(hierarchy)
        out: list[Any] = [None] * (top + 1)
        mean, logvar = top_prior(hierarchy)
        out[top] = mean + float(np.exp(0.5 * logvar)) * self._normal(hierarchy, samples, areas[top].size)
        for l in range(top, 0, -1):
            area = areas[l]
            u = area.feedback_activation(be, out[l])
            below = u @ area.W_fb + area.b_fb
            if l > 1 and flags[l - 1]:
                v = u @ area.W_fb_logvar + area.b_fb_logvar
                below = below + xp.exp(0.5 * v) * self._normal(hierarchy, samples, areas[l - 1].size)
            elif l == 1 and self.likelihood == "bernoulli":
                uniform = be.asarray(self._rng.uniform(size=(samples, areas[0].size)))
                below = xp.astype(uniform < sigmoid(xp, below), below.dtype)
            elif l == 1:
                scale = 1.0 / float(np.sqrt(areas[0].precision))
                below = below + scale * self._normal(hierarchy, samples, areas[0].size)
            out[l - 1] = below
        return out

    # -- learning ------------------------------------------------------------------
    def gradients(self, hierarchy: Hierarchy, state: State) -> Gradients:
        """The p-wake update of the decoder and the chosen q-updates of the
        encoder (descent directions); dreams unless ``recognition = "wake"``."""
        if state.mode != "variational" or state.producer is not self:
            raise ConfigurationError(
                f"rule {self.name!r} needs the state of its own infer (samples of the "
                f"approximate posterior), got a state of mode {state.mode!r}"
            )
        v = state.variational
        p, weights = v["pass"], v["weights"]
        grads, _ = backward(hierarchy, p, weights, 1.0, encoder=False)
        wake = sleep = None
        if self.recognition != "sleep":
            wake, pre_errors = recognition_gradients(hierarchy, p.x, p.z, weights,
                                                     encoded=(p.a, p.h, p.mean, p.bu_logvar))
            for l, g in enumerate(pre_errors):
                if g is not None:
                    state.errors[l] = g * (-float(v["batch"]))
        if self.recognition != "wake":
            rows = self.sleep_samples or int(v["batch"])
            self.dreams = self.dream(hierarchy, rows)
            xp = hierarchy.backend.xp
            c = xp.full((rows,), 1.0 / rows, dtype=self.dreams[0].dtype)
            sleep, _ = recognition_gradients(hierarchy, self.dreams[0], self.dreams, c)
        if wake is None or sleep is None:
            grads.update(wake if sleep is None else sleep)
        else:
            for key, g in wake.items():  # the average, in place: these are the largest arrays
                g += sleep[key]
                g *= 0.5
            grads.update(wake)
        self.batches += 1
        return grads

    def __repr__(self) -> str:
        return (
            f"ReweightedWakeSleep(likelihood={self.likelihood!r}, k={self.k}, "
            f"recognition={self.recognition!r}, sleep_samples={self.sleep_samples}, seed={self.seed})"
        )
