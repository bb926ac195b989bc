"""Wake–sleep: the feedback pathway carries samples of a learned generative
model, and the recognition pathway is trained on the model's own dreams
(Hinton, Dayan, Frey & Neal 1995, "The wake-sleep algorithm for unsupervised
neural networks", Science 268:1158; real-valued Gaussian units as in Neal &
Dayan 1997, "Factor analysis using delta-rule wake-sleep learning", Neural
Computation 9:1781).

The areas form a Helmholtz machine of Gaussian units. With ``pi_l`` the
area's ``precision`` (an inverse variance, used the same way in both models),
``f_l`` its ``activation`` and ``phi_l`` its ``feedback_activation``
(conventions of ``docs/math.md``; all linear gives linear-Gaussian models):

Recognition model q (bottom-up, ``h_0 = x``), for ``l = 1 .. L``::

    q(h_l | h_{l-1}) = N( f_l(h_{l-1} @ W_ff_l + b_ff_l),  I / pi_l )

i.e. ``h_l = f_l(a_l) + eps / sqrt(pi_l)``, ``eps ~ N(0, I)``, the noise added
after the nonlinearity. ``recognition_noise=False`` drops the noise (q becomes
the deterministic feedforward sweep; the sleep phase is unchanged).

Generative model p (top-down)::

    p(x_L)             = the top area's prior (standard Gaussian when none is
                         given, as generative predictive coding; Laplace and
                         Cauchy priors are sampled exactly)
    p(x_{l-1} | x_l)   = N( phi_l(x_l) @ W_fb_l + b_fb_l,  I / pi_{l-1} )

down to the data area 0 (whose ``precision`` is the variance of the
observation noise). A prior on a middle area has no ancestral sampler and is
refused, and so is a variational model (an area with ``stochastic = true``):
its Gaussian areas have learned variances and deterministic areas between
them, which the rule ``reweighted_wake_sleep`` trains by wake–sleep.

Wake phase (``infer``, then ``gradients``): sample ``h_1 .. h_L`` from q given
the data; the generative weights descend ``-log p(h_0, .., h_L)`` at those
samples (sum over units, mean over the batch ``B``)::

    L_wake = (1/B) sum_b sum_{l=1..L} 0.5 pi_{l-1} |h_{l-1} - pred_{l-1}|^2
    pred_{l-1} = phi_l(h_l) @ W_fb_l + b_fb_l,   eps_{l-1} = pi_{l-1}(h_{l-1} - pred_{l-1})
    dL_wake/dW_fb_l = -(1/B) phi_l(h_l)^T eps_{l-1}

the Hebbian form of generative predictive coding, without the relaxation.

Sleep phase (``gradients``): dream ``B'`` samples ``x_L .. x_0`` top-down from
p (``B' = sleep_samples``, default the wake batch); the recognition weights
descend ``-log q(x_1 .. x_L | x_0)`` at the dreams::

    L_sleep = (1/B') sum_b sum_{l=1..L} 0.5 pi_l |x_l - f_l(a_l)|^2,  a_l = x_{l-1} @ W_ff_l + b_ff_l
    dL_sleep/dW_ff_l = -(1/B') x_{l-1}^T [pi_l (x_l - f_l(a_l)) f_l'(a_l)]

(with unit precisions exactly ``0.5 |x_l - f_l(a_l)|^2``, the amortization
loss of ``PredictiveCoding(learn_recognition=True)``; the precision only scales
each area's step).

The recognition variance is fixed, not learned, so wake–sleep does not reach
the maximum-likelihood scale of the generative weights, only its directions.
For a linear two-area model with data covariance eigenvalue ``lambda`` along a
principal direction, the fixed point of the two delta rules (observation
variance ``s^2 = 1/pi_0``, recognition variance ``sigma^2 = 1/pi_1``) has

    |w|^2 = s sqrt(lambda) / sigma - s^2       (zero where that is negative)

along that direction and nothing elsewhere, while probabilistic PCA's maximum
likelihood (Tipping & Bishop 1999) has ``lambda - s^2``; both span the
principal subspace, which the tests check.

``infer`` returns a ``State`` of mode ``"wake_sleep"``: ``mu[l]`` the wake
samples (``mu[0]`` the data), ``sweep`` the recognition pass that produced
them (``a[l]`` from the sample below, ``h[l] = f_l(a[l])`` the mean of q),
``eps[l]`` (l < L) the precision-weighted generative prediction errors,
``presynaptic[l] = phi_l(h_l)`` and ``errors[l] = eps[l-1]`` (what the wake
update multiplies), ``energy`` (1,) the per-sample ``-log p`` at the samples up
to constants (``L_wake`` plus the top prior's energy), and ``loss`` the mean
reconstruction error of the data given the recognition sample,
``(1/B) sum_b 0.5 |x - phi_1(h_1) @ W_fb_1 - b_fb_1|^2`` (unweighted by the
precision, so comparable across settings; it is the quantity to watch falling).

All noise (recognition noise in ``infer``, the dreams in ``gradients``) is
drawn on the host from the rule's own seeded ``numpy.random.Generator`` and
copied to the backend, so every backend sees the same draws; its position is
in ``state_dict`` for checkpoints. Draw order: ``infer`` draws area 1 .. L
(batch, n_l) standard normals; ``dream`` draws the top area's prior sample,
then standard normals for areas L-1 .. 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from ..model.hierarchy import Hierarchy
from ..inference import State, Sweep
from ..model.priors import Prior
from ..validation import check_int, invalid
from .base import Capabilities, Rule, register
from .local import Gradients, hebbian_gradients

__all__ = ["WakeSleep"]

_STANDARD_GAUSSIAN = Prior("gaussian", 0.0, 1.0)


@register("wake_sleep")
class WakeSleep(Rule):
    """Wake–sleep learning of a Helmholtz machine with Gaussian units.

    Longer than most rules on purpose: the wake pass, the sleep pass (dreams
    drawn top-down) and the two local updates they feed are one algorithm,
    kept in one class so it reads in the order of Hinton et al.'s paper.

    Parameters
    ----------
    sleep_samples : int or None
        Number of dreams per sleep phase (>= 1); None dreams as many as the
        wake batch holds.
    seed : int
        Seeds the rule's noise generator (recognition noise and dreams).
    recognition_noise : bool
        Sample the wake activities from q (``f_l(a_l)`` plus Gaussian noise of
        variance ``1/precision_l``); False uses the noise-free means.
    """

    name = "wake_sleep"

    @property
    def capabilities(self) -> Capabilities:
        """Unsupervised; wake samples from q, sleep dreams from p; a generative model of x."""
        return Capabilities(supervised=False, inference="stochastic", setting="generative")

    def __init__(
        self, sleep_samples: int | None = None, seed: int = 0, recognition_noise: bool = True
    ) -> None:
        if sleep_samples is not None:
            sleep_samples = check_int(sleep_samples, "rule.sleep_samples", minimum=1)
        if not isinstance(recognition_noise, (bool, np.bool_)):
            raise invalid(
                "rule.recognition_noise", f"expected true or false, got {recognition_noise!r}"
            )
        self.sleep_samples = sleep_samples
        self.seed = check_int(seed, "rule.seed")
        self.recognition_noise = bool(recognition_noise)
        self._rng = np.random.default_rng(self.seed)
        self.dreams: list[Any] | None = None  # the last sleep phase's dreams, x_0 .. x_L

    # -- bookkeeping -------------------------------------------------------------
    def learned_parameters(self, hierarchy: Hierarchy) -> list[tuple[str, str]]:
        """Recognition and generative weights of every area above the data."""
        names = ("W_ff", "b_ff", "W_fb", "b_fb")
        return [(a.name, p) for a in hierarchy.areas[1:] for p in names]

    def state_dict(self) -> dict[str, Any]:
        """The noise generator's position, for checkpoints (JSON-able)."""
        return {"rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the noise stream where a checkpoint left it."""
        self._rng.bit_generator.state = state["rng"]

    def top_prior(self, hierarchy: Hierarchy) -> Prior:
        """The prior p(x_L) of the top area; refuses priors on middle areas."""
        areas = hierarchy.areas
        top = len(areas) - 1
        for l, area in enumerate(areas):
            if area.spec.stochastic:
                raise ConfigurationError(
                    f"model.areas[{l}].stochastic: the wake_sleep rule's Helmholtz machine has "
                    f"its own noise in every area and no variational areas; for a model with "
                    f"stochastic areas use rule = \"reweighted_wake_sleep\" (wake-sleep on the "
                    f"variational model, k = 1 with recognition = \"sleep\" the classic algorithm)"
                )
        for l in range(1, top):
            if areas[l].prior is not None:
                raise ConfigurationError(
                    f"model.areas[{l}].prior: wake-sleep samples the generative model "
                    f"top-down, and a prior on the middle area {areas[l].name!r} has no "
                    "ancestral sampler; put the prior on the top area or remove it"
                )
        prior = areas[top].prior
        return _STANDARD_GAUSSIAN if prior is None else prior

    def _normal(self, hierarchy: Hierarchy, shape: tuple[int, ...], std: float) -> Any:
        """``std`` times standard normal draws from the host generator, on the backend."""
        return hierarchy.backend.asarray(std * self._rng.standard_normal(size=shape))

    def _prior_sample(self, hierarchy: Hierarchy, prior: Prior, shape: tuple[int, ...]) -> Any:
        if prior.kind == "gaussian":
            host = self._rng.standard_normal(size=shape)
        elif prior.kind == "laplace":  # density exp(-|z|) / 2
            host = self._rng.laplace(size=shape)
        else:  # density 1 / (pi (1 + z^2)), the energy log(1 + z^2)
            host = self._rng.standard_cauchy(size=shape)
        return hierarchy.backend.asarray(prior.mean + prior.scale * host)

    # -- wake ----------------------------------------------------------------------
    def infer(self, hierarchy: Hierarchy, x: Any, y: Any = None, observe: Any = None) -> State:
        """Wake phase: sample the latent areas from q given data ``x``.

        Parameters
        ----------
        x : array (batch, n_0)
            Data, on the hierarchy's backend.
        y
            Ignored: wake–sleep is unsupervised.
        observe
            Unused: there is no relaxation to watch.

        Returns
        -------
        State
            Mode ``"wake_sleep"``; see the module docstring for its fields.
        """
        prior = self.top_prior(hierarchy)
        be = hierarchy.backend
        areas = hierarchy.areas
        top = len(areas) - 1
        batch = x.shape[0]
        buf = hierarchy.buffer

        def shape(l: int) -> tuple[int, int]:
            return (batch, areas[l].size)

        a: list[Any] = [None]
        means: list[Any] = [x]
        mu: list[Any] = [x]
        for l in range(1, top + 1):
            area = areas[l]
            a_l = be.matmul(mu[l - 1], area.W_ff, out=buf("ws.a", l, shape(l)))
            a_l += area.b_ff
            m = area.activation.apply(be, a_l, buf("ws.m", l, shape(l)))
            h = buf("ws.h", l, shape(l))
            if self.recognition_noise:
                h[...] = self._normal(hierarchy, shape(l), 1.0 / math.sqrt(area.precision))
                h += m
            else:
                h[...] = m
            a.append(a_l)
            means.append(m)
            mu.append(h)

        presynaptic: list[Any] = [None]
        eps: list[Any] = []
        energy: Any = 0.0
        loss: Any = None
        for l in range(1, top + 1):
            area = areas[l]
            q = area.feedback_activation.apply(be, mu[l], buf("ws.q", l, shape(l)))
            e = be.matmul(q, area.W_fb, out=buf("ws.eps", l - 1, shape(l - 1)))
            e += area.b_fb
            be.subtract(mu[l - 1], e, out=e)
            squares = be.sum_of_squares(e)
            if l == 1:
                loss = squares * (0.5 / batch)
            pi = areas[l - 1].precision
            energy = energy + squares * (0.5 * pi)
            if pi != 1.0:
                e *= pi
            presynaptic.append(q)
            eps.append(e)
        energy = energy + prior.energy(be, mu[top])
        trace = be.zeros((1,))
        trace[0] = energy * (1.0 / batch)
        eps.append(None)
        return State(
            mode="wake_sleep",
            sweep=Sweep(a=a, h=means),
            mu=mu,
            eps=eps,
            presynaptic=presynaptic,
            errors=[None] + eps[:top],
            energy=trace,
            producer=self,
            loss=loss,
        )

    def wake_gradients(self, hierarchy: Hierarchy, state: State) -> Gradients:
        """Descent directions of ``L_wake`` for ``W_fb``, ``b_fb`` at the state's samples."""
        self._check_state(state)
        return hebbian_gradients(
            hierarchy, state.presynaptic, state.errors, ("W_fb", "b_fb"), tag="ws.wake"
        )

    # -- sleep ---------------------------------------------------------------------
    def dream(self, hierarchy: Hierarchy, samples: int) -> list[Any]:
        """Draw ``samples`` ancestral samples from p, top-down.

        Returns
        -------
        list of arrays
            ``x_0 .. x_L``, each (samples, n_l), in scratch buffers valid until
            the next dream on this hierarchy.
        """
        samples = check_int(samples, "samples", minimum=1)
        prior = self.top_prior(hierarchy)
        be = hierarchy.backend
        areas = hierarchy.areas
        top = len(areas) - 1
        buf = hierarchy.buffer

        def shape(l: int) -> tuple[int, int]:
            return (samples, areas[l].size)

        x: list[Any] = [None] * (top + 1)
        x[top] = buf("ws.dream", top, shape(top))
        x[top][...] = self._prior_sample(hierarchy, prior, shape(top))
        for l in range(top, 0, -1):
            area = areas[l]
            q = area.feedback_activation.apply(be, x[l], buf("ws.dq", l, shape(l)))
            below = be.matmul(q, area.W_fb, out=buf("ws.dream", l - 1, shape(l - 1)))
            below += area.b_fb
            below += self._normal(hierarchy, shape(l - 1), 1.0 / math.sqrt(areas[l - 1].precision))
            x[l - 1] = below
        return x

    def sleep_gradients(self, hierarchy: Hierarchy, dreams: list[Any]) -> Gradients:
        """Descent directions of ``L_sleep`` for ``W_ff``, ``b_ff`` at fixed ``dreams``
        (``x_0 .. x_L`` as ``dream`` returns them)."""
        be = hierarchy.backend
        areas = hierarchy.areas
        buf = hierarchy.buffer
        errors: list[Any] = [None]
        for l in range(1, len(areas)):
            area = areas[l]
            s = tuple(dreams[l].shape)
            a = be.matmul(dreams[l - 1], area.W_ff, out=buf("ws.sa", l, s))
            a += area.b_ff
            fa = area.activation.apply(be, a, buf("ws.sf", l, s))
            e = be.subtract(dreams[l], fa, out=buf("ws.se", l, s))
            fprime = area.activation.derivative(be, a, fa, buf("ws.sfp", l, s))
            if fprime is not None:
                e *= fprime
            if area.precision != 1.0:
                e *= area.precision
            errors.append(e)
        return hebbian_gradients(hierarchy, [None] + list(dreams[:-1]), errors, tag="ws.sleep")

    # -- the rule --------------------------------------------------------------------
    def gradients(self, hierarchy: Hierarchy, state: State) -> Gradients:
        """Wake updates of the generative weights from the state's samples, then
        a dream and the sleep updates of the recognition weights (descent
        directions; the dreams stay in ``self.dreams``)."""
        grads = self.wake_gradients(hierarchy, state)
        samples = self.sleep_samples or state.mu[0].shape[0]
        self.dreams = self.dream(hierarchy, samples)
        grads.update(self.sleep_gradients(hierarchy, self.dreams))
        return grads

    def _check_state(self, state: State) -> None:
        if state.mode != "wake_sleep":
            raise ConfigurationError(
                f"rule {self.name!r} needs the state of its own infer (samples of the "
                f"recognition model), got a state of mode {state.mode!r}"
            )

    def __repr__(self) -> str:
        return (
            f"WakeSleep(sleep_samples={self.sleep_samples}, seed={self.seed}, "
            f"recognition_noise={self.recognition_noise})"
        )
