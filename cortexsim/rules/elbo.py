"""The evidence lower bound: a variational autoencoder on the areas, the
recognition weights the encoder and the generative weights the decoder
(Kingma & Welling 2014, "Auto-encoding variational Bayes", arXiv:1312.6114;
Rezende, Mohamed & Wierstra 2014; the importance-weighted bound of Burda,
Grosse & Salakhutdinov 2016, "Importance weighted autoencoders",
arXiv:1509.00519; ladder inference of Sønderby, Raiko, Maaløe, Sønderby &
Winther 2016, "Ladder variational autoencoders", NeurIPS, arXiv:1602.02282).

The model is that of ``inference/variational.py`` (docs/math.md, "Variational
areas"): stochastic areas ``z_l`` with Gaussian posteriors q from the
recognition path and Gaussian priors p from the generative path (standard
normal, or the top area's Gaussian ``prior``, at the top), deterministic areas
in between, and a Bernoulli (logits) or Gaussian (variance ``1/precision`` of
area 0) likelihood ``p(x | z)`` from area 1's generative weights.

Each datum is repeated ``R = samples * k`` times with its own noise ``e``
(reparameterization: ``z = m_q + exp(v_q / 2) e``). With

    log w = log p(x | z) - beta_t sum_l KL_l

the loss of datum ``b`` is the negative importance-weighted bound, averaged
over the ``samples`` independent sets of ``k`` (mean over the batch ``B``)::

    loss = -(1/B) sum_b (1/S) sum_s log (1/k) sum_j w_{s,j,b}        k = 1: the negative ELBO

``KL_l`` is the closed-form ``KL(q(z_l | .) || p(z_l | z_{l+1}))`` where that
is exactly the expectation the bound needs (the top area; every area under
ladder inference), otherwise the single-sample ``log q(z_l) - log p(z_l)`` at
the sample (lower stochastic areas of bottom-up inference, whose prior
conditions on a sample drawn after them; every area with ``kl = "sampled"``
and whenever ``k > 1``, where ``w`` must be the importance weight
``p(x, z) / q(z | x)``). ``beta_t = beta * min(1, t / warmup)`` at training
batch ``t = 0, 1, ...`` (the linear KL warm-up of Sønderby et al. 2016, counted
in batches, i.e. ``gradients`` calls); ``warmup = 0`` means ``beta`` throughout.
The gradients are exact (``rules/elbo_backward.py``) at the drawn noise.

``infer`` returns a ``State`` of mode ``"variational"``:

- ``loss``: the negative bound per datum with ``beta = 1`` (for ``k = 1`` the
  negative ELBO), comparable across settings and during warm-up;
- ``energy`` (1,): the objective actually descended (``beta_t``);
- ``reconstruction``: ``-log p(x | z)`` per datum; ``kl[l]``: area ``l``'s KL
  term per datum; ``kl_units[l]`` (n_l,): the same per latent unit (means over
  all ``R`` rows; ``loss = reconstruction + sum_l kl[l]`` when ``k = 1``);
- ``mu[l]`` (R * B, n_l): the sample (stochastic areas) or encoder activity,
  replicate-major; ``predictions[l]``: the generative prediction (the mean of
  ``p(x | z)`` at area 0, the prior mean on stochastic areas, the decoder
  activity on deterministic ones); ``eps[l]``: precision-weighted prediction
  errors ``(z_l - m_p) / var_p`` of stochastic areas and ``precision_0 (x -
  E[x | z])`` at area 0; ``sweep``: the recognition pre-activations and means;
  ``errors[l]`` (filled by ``gradients``): ``-B dloss/da_l`` at the encoder.

Noise is drawn on the host from the rule's seeded ``numpy.random.Generator``
and copied to the backend, one (R * B, n_l) standard normal array per
stochastic area, bottom first, at each ``infer``; the generator's position and
the warm-up count are in ``state_dict`` for checkpoints.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from ..model.hierarchy import Hierarchy
from ..inference import State, Sweep
from ..inference.importance import log_likelihood_estimate
from ..inference.variational import (
    LIKELIHOODS,
    POSTERIORS,
    forward,
    log_weights,
    sigmoid,
    stochastic_areas,
)
from ..validation import check_choice, check_int, check_number, invalid
from .elbo_backward import backward
from .base import Capabilities, Rule, register
from .local import Gradients

__all__ = ["ELBO"]


@register("elbo")
class ELBO(Rule):
    """Descend the negative (importance-weighted) evidence lower bound.

    Parameters
    ----------
    beta : float
        Weight of the KL terms (>= 0; 1 is the ELBO, others the beta-VAE objective).
    warmup : int
        Training batches over which the KL weight rises linearly from 0 to
        ``beta`` (0: no warm-up).
    likelihood : str
        ``"bernoulli"`` (area 1's generative path gives logits) or
        ``"gaussian"`` (it gives the mean; variance ``1/precision`` of area 0).
    samples : int
        Independent bounds averaged per datum (>= 1).
    k : int
        Importance samples per bound (>= 1; 1 is the ELBO, more the IWAE bound).
    posterior : str
        ``"bottom_up"`` (each stochastic area sampled from its recognition
        estimate) or ``"ladder"`` (precision-weighted merge with the prior, top-down).
    kl : str or None
        ``"analytic"`` (closed form where exact) or ``"sampled"``; None picks
        analytic for ``k = 1`` and sampled for ``k > 1`` (the only choice there).
    seed : int
        Seeds the noise generator.
    """

    name = "elbo"

    @property
    def capabilities(self) -> Capabilities:
        """Unsupervised; sampled latents; the bound is its held-out loss."""
        return Capabilities(supervised=False, inference="stochastic", setting="variational",
                            held_out_loss=True)

    def __init__(
        self, beta: float = 1.0, warmup: int = 0, likelihood: str = "bernoulli", samples: int = 1,
        k: int = 1, posterior: str = "bottom_up", kl: str | None = None, seed: int = 0,
    ) -> None:
        self.beta = check_number(beta, "rule.beta")
        if self.beta < 0:
            raise invalid("rule.beta", f"must be >= 0, got {beta!r}")
        self.warmup = check_int(warmup, "rule.warmup")
        check_choice(likelihood, LIKELIHOODS, "rule.likelihood")
        check_choice(posterior, POSTERIORS, "rule.posterior")
        self.likelihood, self.posterior = likelihood, posterior
        self.samples = check_int(samples, "rule.samples", minimum=1)
        self.k = check_int(k, "rule.k", minimum=1)
        if kl is not None:
            check_choice(kl, ("analytic", "sampled"), "rule.kl")
            if kl == "analytic" and self.k > 1:
                raise invalid(
                    "rule.kl", "the importance-weighted bound (k > 1) weighs samples by "
                    "p(x, z) / q(z | x), which needs sampled KL terms; use kl = 'sampled'"
                )
        self.kl = kl if kl is not None else ("analytic" if self.k == 1 else "sampled")
        self.seed = check_int(seed, "rule.seed")
        self._rng = np.random.default_rng(self.seed)
        self.batches = 0  # training batches so far: the warm-up clock

    # -- bookkeeping -------------------------------------------------------------
    def learned_parameters(self, hierarchy: Hierarchy) -> list[tuple[str, str]]:
        """Encoder and decoder weights of every area, with the log-variance heads."""
        heads = ("W_ff_logvar", "b_ff_logvar", "W_fb_logvar", "b_fb_logvar")
        return [(a.name, p) for a in hierarchy.areas[1:]
                for p in ("W_ff", "b_ff", "W_fb", "b_fb") + heads if p in a.parameters()]

    def state_dict(self) -> dict[str, Any]:
        """The noise generator's position and the warm-up clock (JSON-able)."""
        return {"rng": self._rng.bit_generator.state, "batches": self.batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue where a checkpoint left off."""
        self._rng.bit_generator.state = state["rng"]
        self.batches = int(state["batches"])

    def kl_weight(self) -> float:
        """``beta_t`` for the next training batch."""
        if self.warmup == 0:
            return self.beta
        return self.beta * min(1.0, self.batches / self.warmup)

    def draw_noise(self, hierarchy: Hierarchy, rows: int) -> list[Any]:
        """Standard normal (rows, n_l) per stochastic area, bottom first, on the backend."""
        flags = stochastic_areas(hierarchy)
        return [
            hierarchy.backend.asarray(self._rng.standard_normal(size=(rows, area.size))) if flag else None
            for area, flag in zip(hierarchy.areas, flags)
        ]

    # -- inference ---------------------------------------------------------------
    def infer(self, hierarchy: Hierarchy, x: Any, y: Any = None, observe: Any = None) -> State:
        """Sample the latent areas for data ``x`` (batch, n_0) and evaluate the bound.

        ``y`` is ignored (the rule is unsupervised) and ``observe`` unused
        (nothing relaxes). See the module docstring for the state's fields.
        """
        be, xp = hierarchy.backend, hierarchy.backend.xp
        batch = x.shape[0]
        replicates = self.samples * self.k
        rows = x if replicates == 1 else xp.concat([x] * replicates, axis=0)
        noise = self.draw_noise(hierarchy, replicates * batch)
        p = forward(hierarchy, rows, noise, posterior=self.posterior, likelihood=self.likelihood,
                    analytic_kl=self.kl == "analytic")
        beta = self.kl_weight()
        trained, weights = self._bound(xp, log_weights(xp, p, beta), batch)
        loss = trained if beta == 1.0 else self._bound(xp, log_weights(xp, p, 1.0), batch)[0]
        energy = be.zeros((1,))
        energy[0] = trained
        top = len(hierarchy.areas) - 1
        kl = [None if t is None else xp.sum(t) / t.shape[0] for t in p.kl]
        kl_units = [None if t is None else xp.mean(t, axis=0) for t in p.kl]
        mean_x = sigmoid(xp, p.out) if self.likelihood == "bernoulli" else p.out
        predictions = [mean_x] + [p.p_mean[l] if p.z[l] is not None else p.d[l] for l in range(1, top)]
        eps = [(rows - mean_x) * hierarchy.areas[0].precision] + [
            None if p.z[l] is None else (p.z[l] - p.p_mean[l]) * xp.exp(-p.p_logvar[l])
            for l in range(1, top + 1)
        ]
        mu = [p.z[l] if p.z[l] is not None else p.h[l] for l in range(top + 1)]
        return State(
            mode="variational", sweep=Sweep(a=p.a, h=p.mean), mu=mu, eps=eps,
            presynaptic=[None] + p.h[:-1], errors=[None] * (top + 1),
            predictions=predictions + [None], energy=energy, producer=self, loss=loss,
            reconstruction=-xp.sum(p.log_px) / p.log_px.shape[0], kl=kl, kl_units=kl_units,
            variational={"pass": p, "weights": weights, "beta": beta, "batch": batch},
        )

    def _bound(self, xp: Any, logw: Any, batch: int) -> tuple[Any, Any]:
        """Negative bound per datum (0-d) and the row weights of its gradient (rows,)."""
        scale = 1.0 / (self.samples * batch)
        if self.k == 1:
            return -xp.sum(logw) * scale, xp.full(logw.shape, scale, dtype=logw.dtype)
        grid = xp.reshape(logw, (self.samples, self.k, batch))
        top = xp.max(grid, axis=1, keepdims=True)
        w = xp.exp(grid - top)
        total = xp.sum(w, axis=1, keepdims=True)
        bound = xp.log(total) + top - math.log(self.k)
        return -xp.sum(bound) * scale, xp.reshape(w / total, (-1,)) * scale

    def evaluate(self, hierarchy: Hierarchy, x: Any) -> float:
        """The negative bound per datum of held-out ``x`` (``beta = 1``, the rule's
        ``k``, sampled KL terms), with noise from a generator seeded by ``seed``
        afresh at each call: epochs are compared on the same noise, and the
        training stream is left untouched (resume stays bit-identical)."""
        estimate = log_likelihood_estimate(
            hierarchy, x, k=self.k, likelihood=self.likelihood, posterior=self.posterior, seed=self.seed)
        return -float(np.mean(estimate))

    # -- learning ------------------------------------------------------------------
    def gradients(self, hierarchy: Hierarchy, state: State) -> Gradients:
        """Exact gradients of the state's objective for every encoder and decoder
        parameter (descent directions); advances the warm-up clock."""
        if state.mode != "variational" or state.producer is not self:
            raise ConfigurationError(
                f"rule {self.name!r} needs the state of its own infer (samples of the "
                f"approximate posterior), got a state of mode {state.mode!r}"
            )
        v = state.variational
        grads, g_a = backward(hierarchy, v["pass"], v["weights"], v["beta"])
        for l, g in enumerate(g_a):
            if g is not None:
                state.errors[l] = g * (-float(v["batch"]))
        self.batches += 1
        return grads

    def __repr__(self) -> str:
        return (
            f"ELBO(beta={self.beta}, warmup={self.warmup}, likelihood={self.likelihood!r}, "
            f"samples={self.samples}, k={self.k}, posterior={self.posterior!r}, kl={self.kl!r}, "
            f"seed={self.seed})"
        )
