"""Hybrid generative target propagation: iterative inference finds the
posterior, the recognition network learns to predict it (amortization as the
learning target), and the generative network learns locally to predict the
activities it implies. After Tschantz, Millidge, Seth & Buckley (2023),
"Hybrid predictive coding: inferring, fast and slow", PLOS Comput. Biol.
19(8): e1011280 (amortized bottom-up guesses refined by predictive coding; the
amortized network trained on the refined activities), on the variational
stack of ``rules/generative_target_prop.py`` (same passes, same local
generative rule; conventions of docs/math.md, "Variational areas" and
"Refined posteriors").

**Inference**, per batch, three passes:

1. The amortized guess: the noise-free recognition pass (``h_0 = x``, every
   stochastic area at its mean ``h_l = m_l``), which gives each stochastic area
   its amortized mean and log-variance ``(m_l, v_l)``.
2. Iterative inference (``inference/refine.py``): from ``(m_l, v_l)``, ``steps``
   ascent steps of each datum's ELBO on its own mean-field posterior
   ``q*(z) = prod_l N(z_l; M_l, e^{V_l})``, the weights held fixed. The ascent
   direction is predictive coding on the stochastic hierarchy: each area's
   top-down prior mismatch and the prediction error it sends to the area below
   (refine.py's docstring); it is inference, not learning, and moves no weight.
3. The refined pass: ``z_l = M_l + e^{V_l/2} e_l`` on every stochastic area, the
   deterministic recognition areas above them computed from those samples
   (``h_l``), and the decoder pass from the refined samples: ``d_L = z_L``,
   ``u_l = phi_l(d_l)``, area ``l``'s prediction ``p_{l-1}`` (and ``s_{l-1}``) of
   area ``l-1``, ``d_{l-1} = z_{l-1}`` on a stochastic area, ``p_{l-1}`` on a
   deterministic one.

**Generative (feedback) weights** of area ``l`` descend, as in the other
members of the family, ``G_l = -log p(h_{l-1} | d_l)`` on the refined pass (the
delta rule on the prediction error; ``rules.local.hebbian_gradients``)::

    dG_l/dW_fb_l = -(1/B) u_l^T e_p,     dG_l/dW_fb_logvar_l = -(1/B) u_l^T e_s

with ``e_p``, ``e_s`` the errors of ``generative_target_prop.py``. On a model
whose latent areas are all stochastic this is the decoder's ELBO gradient at
the refined posterior (the decoder update of semi-amortized inference, Kim et
al. 2018).

**Recognition (feedforward) weights** of area ``l`` descend, on the
noise-free pass of step 1, the target held fixed:

    stochastic l:     A_l = KL( N(M_l, e^{V_l}) || N(m_l, e^{v_l}) )      (learn to predict q*)
                      -dA/dm_l = (M_l - m_l) e^{-v_l},   -dA/dv_l = ((e^{V_l} + (M_l - m_l)^2) e^{-v_l} - 1) / 2
    deterministic l:  A_l = 0.5 pi_l |h_l - t_l|^2,   t_l = p_l + rho eps_l / pi_l
                      p_l: area l+1's prediction on the refined pass (top: the prior's mean)
                      eps_l = -dG_l/dd_l: area l's own prediction error of the level below,
                      sent back through its own generative weights (rho = reconstruction)

so a stochastic area's amortized posterior moves towards the one iterative
inference found (the KL from the refined to the amortized posterior: zero, with
zero gradient, when refinement changes nothing; ``steps = 0`` learns nothing
there), and a deterministic recognition area towards the decoder's
prediction of it, corrected by the error that prediction leaves below (the
reconstructive target of ``generative_target_prop``). Without the correction
(``reconstruction = 0``) the rule collapses as the literal one does, although
the refined posterior carries information: measured on binarized digits
(64-32-8, the 630 steps of docs/generative_target_prop.md), 0 of 8 active
units and a held-out negative ELBO of 27.89 nats; with ``rho = 1``, 8 of 8 and
26.38 (``elbo``: 24.99). The pull towards ``p_l`` alone makes the encoder's
hidden activity copy the decoder's, which depends on the input only through
``z``; once ``z`` carries little, nothing keeps the hidden activity informative. ``dA/dW_ff_l = -(1/B) h_{l-1}^T [(-dA/dm_l) f_l'(a_l)]``, ``dA/dW_ff_logvar_l
= -(1/B) h_{l-1}^T (-dA/dv_l)``, ``h_{l-1}`` the noise-free pass's input.

**Locality.** No gradient crosses an area boundary: each update is the
gradient of a loss of the area's own parameters with every activity of
another area (its input, the refined posterior, the prediction from above)
held fixed, and ``gradients`` reads only the state of ``infer`` (not even the
area's own weights). The refinement of step 2 exchanges prediction errors
between areas, as predictive coding's inference does; learning never does.

``loss`` and ``evaluate`` are ``elbo``'s (the negative ELBO of the amortized
bottom-up posterior, ``k = 1``), so the bound, the report's log-likelihood and
its active units measure this rule's model and recognition network with the
same estimator as every other rule's. ``state.variational["local"]``
holds ``"amortized"`` (the pass of step 1), ``"refined"`` (the pass of step 3),
``"start_elbo"`` and ``"refined_elbo"`` (batch means of the refinement's
first and last bound) and, after ``gradients``, the local losses
``"generative"`` (``G_l``) and ``"recognition"`` (``A_l``). Noise (the sampled
bound, every refinement step, the refined samples) comes from the rule's own
generator, so a checkpoint continues it.
"""

from __future__ import annotations

from typing import Any

from ..inference import State
from ..inference.refine import Refinement, refine
from ..inference.variational import Pass, forward, stochastic_areas
from ..model.hierarchy import Hierarchy
from ..validation import check_choice, check_int, check_number, invalid
from .base import register
from .generative_target_prop import _GenerativeTargetRule
from .local import Gradients

__all__ = ["GenerativeHybrid"]


@register("generative_hybrid")
class GenerativeHybrid(_GenerativeTargetRule):
    """Recognition learns the iteratively refined posterior; the generative
    weights learn locally from it (module docstring).

    Parameters
    ----------
    steps : int
        Refinement steps per batch (>= 0).
    step_size : float
        Step of the refinement (> 0): Adam's learning rate in latent space, or
        the factor of plain gradient ascent.
    ascent : str
        ``"adam"`` or ``"sgd"``, the refinement's optimizer in latent space
        (``inference.refine``; ``optimizer`` in a study's rule table is the
        optimizer of the weights).
    reconstruction : float
        ``rho`` (>= 0), the weight of a deterministic recognition area's own
        reconstruction error in its target (module docstring); 0 leaves the
        pull towards the prediction from above alone, which collapses.
    beta : float
        Weight (>= 0) of every KL term in the bound the refinement ascends:
        the posterior the recognition network learns is a β-VAE's.
    likelihood : str
        ``"bernoulli"`` or ``"gaussian"``.
    seed : int
        Seeds the noise generator (bound, refinement, refined samples).
    """

    name = "generative_hybrid"
    tag = "ghy"

    def __init__(
        self, steps: int = 10, step_size: float = 0.1, ascent: str = "adam",
        reconstruction: float = 1.0, beta: float = 1.0, likelihood: str = "bernoulli", seed: int = 0,
    ) -> None:
        steps = check_int(steps, "rule.steps")
        self.reconstruction = check_number(reconstruction, "rule.reconstruction")
        if self.reconstruction < 0:
            raise invalid("rule.reconstruction", f"must be >= 0, got {reconstruction!r}")
        step_size = check_number(step_size, "rule.step_size", positive=True)
        check_choice(ascent, ("adam", "sgd"), "rule.ascent")
        super().__init__(likelihood, seed, beta)
        self.refinement = Refinement(steps=steps, step_size=step_size, optimizer=ascent,
                                     samples=1, start="bottom_up", seed=self.seed)

    def _local(self, hierarchy: Hierarchy, p: Pass) -> dict[str, Any]:
        """Steps 1-3 of the module docstring (the predictions of the sampled
        amortized pass ``p``, which no update reads, are not computed)."""
        be, xp = hierarchy.backend, hierarchy.backend.xp
        rows = p.x.shape[0]
        flags = stochastic_areas(hierarchy)
        zeros = [be.zeros((rows, a.size)) if f else None for a, f in zip(hierarchy.areas, flags)]
        amortized = forward(hierarchy, p.x, zeros, likelihood=self.likelihood)
        found = refine(hierarchy, p.x, self.refinement, likelihood=self.likelihood, beta=self.beta,
                       rng=self._rng, initial=(amortized.q_mean, amortized.q_logvar))
        refined = forward(hierarchy, p.x, self.draw_noise(hierarchy, rows), likelihood=self.likelihood,
                          given=(found.mean, found.logvar))
        return {"amortized": amortized, "refined": refined,
                "refined_predictions": self.local_predictions(hierarchy, refined),
                "start_elbo": xp.mean(found.trace[0, ...]), "refined_elbo": xp.mean(found.elbo)}

    def gradients(self, hierarchy: Hierarchy, state: State) -> Gradients:
        """Descent directions of every area's generative and recognition weights
        from its own local loss (module docstring), at the state's activities."""
        self._check_state(state)
        xp = hierarchy.backend.xp
        areas = hierarchy.areas
        top = len(areas) - 1
        flags = stochastic_areas(hierarchy)
        local = state.variational["local"]
        amortized, refined, predicted = local["amortized"], local["refined"], local["refined_predictions"]
        below = [None] + refined.h[:-1]
        grads, e_p, e_s, generative = self.generative_gradients(
            hierarchy, predicted["u"], below, predicted["mean"], predicted["logvar"], self.tag)
        prior_mean, _ = self.top_prior_of(hierarchy)
        e_m, e_v, recognition = [None] * (top + 1), [None] * (top + 1), [None] * (top + 1)
        rows = amortized.x.shape[0]
        for l in range(1, top + 1):
            if flags[l]:  # KL(N(M, e^V) || N(m, e^v)): the amortized q learns the refined one
                m, v = amortized.mean[l], amortized.bu_logvar[l]
                M, V = refined.q_mean[l], refined.q_logvar[l]
                diff, iv = M - m, xp.exp(-v)
                spread = (xp.exp(V) + diff * diff) * iv
                e_m[l] = diff * iv
                e_v[l] = 0.5 * (spread - 1.0)
                recognition[l] = 0.5 * xp.sum(v - V + spread - 1.0) / rows
            else:  # 0.5 pi |h - p|^2 towards the prediction from the refined pass above
                pi = areas[l].precision
                target = prior_mean if l == top else predicted["mean"][l + 1]
                diff = target - amortized.h[l]
                e_m[l] = pi * diff
                recognition[l] = 0.5 * pi * xp.sum(diff * diff) / rows
                if self.reconstruction:  # and the area's own reconstruction error, sent back
                    g = self.reconstruction_error(hierarchy, l, refined.d[l], e_p[l], e_s[l])
                    e_m[l] = e_m[l] + self.reconstruction * g
                    recognition[l] = recognition[l] + self.reconstruction * generative[l]
        return self._finish(hierarchy, state, grads, e_m, e_v, generative, recognition, amortized)

    def __repr__(self) -> str:
        r = self.refinement
        return (f"GenerativeHybrid(steps={r.steps}, step_size={r.step_size}, ascent={r.optimizer!r}, "
                f"likelihood={self.likelihood!r}, seed={self.seed})")
