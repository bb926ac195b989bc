"""The recurrent VAE's bound: DRAW (Gregor, Danihelka, Graves, Rezende &
Wierstra 2015, "DRAW: a recurrent neural network for image generation", ICML,
arXiv:1502.04623) and conceptual compression (Gregor, Besse, Rezende,
Danihelka & Wierstra 2016, "Towards conceptual compression", NeurIPS,
arXiv:1604.08772) on a hierarchy ``[data, recurrent area, stochastic area]``
(``inference/recurrent.py``, docs/math.md, "Recurrent areas").

The encoder cell (the recurrent area's recognition path) reads the image and
the error of the canvas, a Gaussian latent ``z_t`` is drawn, the decoder cell
(its generative path) adds to the canvas; after ``steps`` steps the canvas is
the likelihood's logits (Bernoulli) or mean (Gaussian). The loss per datum::

    loss = -(1/B) sum_b [ log p(x_b | c_T) - sum_t beta_t KL(q(z_t | .) || p(z_t | h^dec_{t-1})) ]

with closed-form KL terms (exact: posterior and prior of step ``t`` condition
on the same history) against the standard normal or a learned prior
(``prior = "learned"``: Gregor et al. 2016's ``p(z_t | h^dec_{t-1})``, whose
parameters the rule adds to the stochastic area at zero, so it starts standard
normal). ``beta`` weighs every step alike (the beta-VAE) or, given as a list,
each step on its own. Gradients are exact, by backpropagation through time
written as explicit steps (``rules/draw_backward.py``).

``infer`` returns a ``State`` of mode ``"variational"`` like the ``elbo``
rule's: ``loss`` (``beta = 1``), ``energy`` (the objective descended),
``reconstruction``, ``kl[2]`` (the summed KL over steps, per datum) and
``kl_units[2]`` (per latent unit, summed over steps); ``mu`` holds the data,
the last encoder state and the last sample; ``variational["kl_steps"]`` the KL
of each step per datum. Held-out images are scored by the importance-weighted
``L_k`` (``k`` samples, seeded afresh by ``seed`` at each call).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from ..inference import State, Sweep
from ..inference.recurrent import LEARNED_PRIOR, PRIORS, forward, log_weights, recurrent_areas
from ..inference.importance import recurrent_log_likelihood
from ..inference.variational import LIKELIHOODS, sigmoid
from ..model.hierarchy import Hierarchy
from ..validation import check_choice, check_int, check_number, invalid
from .base import Capabilities, Rule, register
from .draw_backward import backward
from .local import Gradients

__all__ = ["RecurrentELBO"]


@register("draw")
class RecurrentELBO(Rule):
    """Descend the negative bound of the recurrent VAE.

    Parameters
    ----------
    steps : int
        Time steps ``T`` (>= 1; DRAW used 64 on MNIST).
    beta : float or list of float
        Weight of the KL terms (>= 0): one for every step, or ``steps`` values.
    likelihood : str
        ``"bernoulli"`` (the canvas is logits) or ``"gaussian"`` (the mean;
        variance ``1/precision`` of area 0).
    prior : str
        ``"standard"`` (N(0, I), or the stochastic area's Gaussian ``prior``)
        or ``"learned"`` (conditioned on the decoder state).
    k : int
        Importance samples of the held-out estimate ``L_k`` (``evaluate``).
    seed : int
        Seeds the noise generator.
    """

    name = "draw"

    @property
    def capabilities(self) -> Capabilities:
        """Unsupervised; sampled latents; the bound is its held-out loss."""
        return Capabilities(supervised=False, inference="stochastic", setting="variational",
                            held_out_loss=True)

    def __init__(self, steps: int = 16, beta: float | Sequence[float] = 1.0, likelihood: str = "bernoulli",
                 prior: str = "standard", k: int = 1, seed: int = 0) -> None:
        self.steps = check_int(steps, "rule.steps", minimum=1)
        if isinstance(beta, Sequence) and not isinstance(beta, str):
            if len(beta) != self.steps:
                raise invalid("rule.beta", f"a list needs one weight per step ({self.steps}), got {len(beta)}")
            self.beta: float | list[float] = [check_number(b, f"rule.beta[{i}]") for i, b in enumerate(beta)]
            values = self.beta
        else:
            self.beta = check_number(beta, "rule.beta")
            values = [self.beta]
        if min(values) < 0:
            raise invalid("rule.beta", f"must be >= 0, got {beta!r}")
        check_choice(likelihood, LIKELIHOODS, "rule.likelihood")
        check_choice(prior, PRIORS, "rule.prior")
        self.likelihood, self.prior = likelihood, prior
        self.k = check_int(k, "rule.k", minimum=1)
        self.seed = check_int(seed, "rule.seed")
        self._rng = np.random.default_rng(self.seed)

    # -- bookkeeping -------------------------------------------------------------
    def prepare(self, hierarchy: Hierarchy) -> None:
        """Check the model's shape; add the learned prior's parameters (at zero) if asked."""
        _, top = recurrent_areas(hierarchy)
        if self.prior == "learned":
            n, size = hierarchy.areas[1].size, top.size
            for name in LEARNED_PRIOR:
                if name not in top.extra_parameters:
                    shape = (n, size) if name.startswith("W") else (size,)
                    top.add_parameter(name, hierarchy.backend.zeros(shape))

    def learned_parameters(self, hierarchy: Hierarchy) -> list[tuple[str, str]]:
        """Both cells, the write (and attention), the posterior heads, the decoder's
        input weights and, with a learned prior, its heads."""
        rnn, top = recurrent_areas(hierarchy)
        names = ["W_ff", "b_ff", "W_fb", "b_fb", "W_ff_logvar", "b_ff_logvar"]
        if self.prior == "learned":
            names += list(LEARNED_PRIOR)
        return [(rnn.name, name) for name in rnn.parameters()] + [(top.name, name) for name in names]

    def state_dict(self) -> dict[str, Any]:
        """The noise generator's position (JSON-able)."""
        return {"rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue where a checkpoint left off."""
        self._rng.bit_generator.state = state["rng"]

    def draw_noise(self, hierarchy: Hierarchy, rows: int) -> list[Any]:
        """Standard normal (rows, n_z) per step, first step first, on the backend."""
        size = hierarchy.areas[2].size
        return [hierarchy.backend.asarray(self._rng.standard_normal(size=(rows, size)))
                for _ in range(self.steps)]

    # -- inference ---------------------------------------------------------------
    def infer(self, hierarchy: Hierarchy, x: Any, y: Any = None, observe: Any = None) -> State:
        """Run the model for ``steps`` steps on data ``x`` (batch, n_0) and evaluate the bound."""
        self.prepare(hierarchy)
        be, xp = hierarchy.backend, hierarchy.backend.xp
        batch = x.shape[0]
        p = forward(hierarchy, x, self.draw_noise(hierarchy, batch), likelihood=self.likelihood,
                    prior=self.prior)
        trained = -xp.sum(log_weights(xp, p, self.beta)) / batch
        loss = trained if self.beta == 1.0 else -xp.sum(log_weights(xp, p, 1.0)) / batch
        energy = be.zeros((1,))
        energy[0] = trained
        summed = p.kl[0]
        for term in p.kl[1:]:
            summed = summed + term
        mean_x = sigmoid(xp, p.out) if self.likelihood == "bernoulli" else p.out
        eps = [(x - mean_x) * hierarchy.areas[0].precision, None, None]
        return State(
            mode="variational", sweep=Sweep(a=[None, None, p.a_q[-1]], h=[x, p.h_enc[-1], p.q_mean[-1]]),
            mu=[x, p.h_enc[-1], p.z[-1]], eps=eps, presynaptic=[None, x, p.h_enc[-1]],
            errors=[None, None, None], predictions=[mean_x, p.h_dec[-1], None], energy=energy,
            producer=self, loss=loss, reconstruction=-xp.sum(p.log_px) / batch,
            kl=[None, None, xp.sum(summed) / batch], kl_units=[None, None, xp.mean(summed, axis=0)],
            variational={"pass": p, "batch": batch,
                         "kl_steps": [xp.sum(term) / batch for term in p.kl]},
        )

    def evaluate(self, hierarchy: Hierarchy, x: Any) -> float:
        """The negative ``L_k`` per datum of held-out ``x`` (``beta = 1``), noise seeded
        afresh by ``seed`` (the training stream is left untouched)."""
        self.prepare(hierarchy)
        return -float(np.mean(recurrent_log_likelihood(
            hierarchy, x, k=self.k, steps=self.steps, likelihood=self.likelihood, prior=self.prior,
            seed=self.seed)))

    # -- learning ------------------------------------------------------------------
    def gradients(self, hierarchy: Hierarchy, state: State) -> Gradients:
        """Exact gradients of the state's objective (descent directions)."""
        if state.mode != "variational" or state.producer is not self:
            raise ConfigurationError(
                f"rule {self.name!r} needs the state of its own infer, got a state of mode {state.mode!r}")
        v = state.variational
        weights = hierarchy.backend.xp.full((v["batch"],), 1.0 / v["batch"], dtype=hierarchy.backend.dtype)
        return backward(hierarchy, v["pass"], weights, self.beta)

    def __repr__(self) -> str:
        return (f"RecurrentELBO(steps={self.steps}, beta={self.beta!r}, likelihood={self.likelihood!r}, "
                f"prior={self.prior!r}, k={self.k}, seed={self.seed})")
