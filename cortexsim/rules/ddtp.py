"""Direct DTP with linear feedback (``DDTPLinear``; Meulemans, Carzaniga,
Suykens, Sacramento & Grewe 2020, "A theoretical framework for target
propagation", NeurIPS, arXiv:2006.14331, sections 3-4, the "DDTP-linear"
variant of their experiments): every hidden area ``l`` gets its target
straight from the output through a learned linear map ``Q_l`` (n_L, n_l),
kept on the area as the extra parameter ``Q_fb``. Their direct feedback
``g_l(h_L) = h_L Q_l + c_l`` inserted in the difference correction gives (the
bias cancels, so none is kept)::

    t_l = h_l + g_l(t_L) - g_l(h_L) = h_l + (t_L - h_L) @ Q_l

``Q_l`` is trained by their difference reconstruction loss (DRL, without its
optional regularisation term): perturb the area, ``h~_l = h_l + noise * eps``,
run the forward path from area ``l`` to the output, ``h~_L = f_{l+1 -> L}(h~_l)``,
and reconstruct the perturbation through the difference-corrected feedback::

    DRL_l = (1 / noise^2) * 0.5 |h_l + (h~_L - h_L) @ Q_l - h~_l|^2
          = (1 / noise^2) * 0.5 |(h~_L - h_L) @ Q_l - noise * eps|^2

(sum over units, mean over the batch). At its minimum ``Q_l`` approximates
the pseudo-inverse of the Jacobian of the output with respect to ``h_l``, so
the targets approximate Gauss-Newton targets (their theory), and the hidden
updates align with backprop's better than DTP's do (tested). The output target of their code
is ``t_L`` above, and their last layer is, as here, trained by its loss
gradient. Differences from their code: they feed back the output's
pre-activation (the same as ``h_L`` for a linear output, the case of their
softmax classifiers) while we use ``h_L`` for every output nonlinearity, and
they scale the squared error by ``1/(batch * n_l)`` (``F.mse_loss``) where we
sum over units.

``infer`` returns a ``State`` of mode ``"target"`` as the other target rules
do (``rules/target_prop.py``), and noise comes from the rule's own seeded
host generator.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from ..model.hierarchy import Hierarchy
from ..inference import State, Sweep
from ..validation import check_number
from .local import Gradients
from .base import register
from .target_prop import _TargetRule

__all__ = ["DDTPLinear"]


@register("ddtp_linear")
class DDTPLinear(_TargetRule):
    """Direct difference target propagation with linear direct feedback
    (DDTP-linear of Meulemans et al. 2020), feedback trained by the
    difference reconstruction loss.

    Parameters
    ----------
    loss : str
        ``"mse"`` or ``"cross_entropy"`` (linear top area).
    top_step : float
        ``t_L = h_L - top_step * dloss_b/dh_L``, per sample (> 0).
    noise : float
        Standard deviation ``sigma`` of the perturbation in the difference
        reconstruction loss (> 0: the loss divides by ``sigma^2``).
    seed : int
        Seeds the noise generator and the initial ``Q_l``.
    scale : float
        ``Q_l`` starts uniform on ``[-scale * r, scale * r]`` with the Glorot
        limit ``r = sqrt(6 / (n_L + n_l))``.

    Notes
    -----
    ``Q_l`` (n_L, n_l) of hidden area ``l`` is an added parameter ``Q_fb`` of
    the area (``Area.add_parameter``), created by ``prepare`` (the scheduler
    calls it) from ``numpy.random.default_rng((seed, hierarchy.seed, l))`` in
    float64, so every backend starts from the same matrices; optimizers,
    checkpoints, probes and divergence checks see it like any weight, and a
    restored ``Q_fb`` is kept.
    """

    name = "ddtp_linear"
    tag = "ddtp"

    def __init__(
        self,
        loss: str = "mse",
        top_step: float = 0.33,
        noise: float = 0.36,
        seed: int = 0,
        scale: float = 1.0,
    ) -> None:
        super().__init__(loss, top_step, noise, seed, positive_noise=True)
        self.scale = check_number(scale, "rule.scale", positive=True)
        self._prepared_for: Hierarchy | None = None  # the hierarchy whose areas hold Q_fb

    def direct_feedback(self, hierarchy: Hierarchy) -> list[Any]:
        """``Q_l`` (n_L, n_l) on the backend for ``1 <= l < L`` (None elsewhere),
        created on the areas at first use."""
        top = len(hierarchy.areas) - 1
        n_top = hierarchy.areas[top].size
        if self._prepared_for is not hierarchy:
            for l in range(1, top):
                area = hierarchy.areas[l]
                existing = getattr(area, "Q_fb", None)
                if existing is not None and tuple(existing.shape) == (n_top, area.size):
                    continue
                rng = np.random.default_rng([self.seed, hierarchy.seed, l])
                limit = self.scale * math.sqrt(6.0 / (n_top + area.size))
                area.add_parameter(
                    "Q_fb", hierarchy.backend.asarray(rng.uniform(-limit, limit, size=(n_top, area.size)))
                )
            self._prepared_for = hierarchy
        return [None] + [hierarchy.areas[l].Q_fb for l in range(1, top)] + [None]

    def prepare(self, hierarchy: Hierarchy) -> None:
        """Create the direct feedback ``Q_fb`` before a run, so probes and
        checkpoints see it from the start."""
        self.direct_feedback(hierarchy)

    def learned_parameters(self, hierarchy: Hierarchy) -> list[tuple[str, str]]:
        """Forward weights of every area and ``Q_fb`` of the hidden areas."""
        keys = [(a.name, p) for a in hierarchy.areas[1:] for p in ("W_ff", "b_ff")]
        return keys + [(a.name, "Q_fb") for a in hierarchy.areas[1:-1]]

    def _targets(self, hierarchy: Hierarchy, sweep: Sweep, t_top: Any, e_top: Any) -> list[Any]:
        be = hierarchy.backend
        top = len(hierarchy.areas) - 1
        Q = self.direct_feedback(hierarchy)
        targets: list[Any] = [None] * (top + 1)
        step = be.subtract(
            t_top, sweep.h[top], out=hierarchy.buffer(f"{self.tag}.dt", top, tuple(t_top.shape))
        )
        for l in range(1, top):
            t = be.matmul(
                step, Q[l], out=hierarchy.buffer(f"{self.tag}.t", l, tuple(sweep.h[l].shape))
            )
            t += sweep.h[l]
            targets[l] = t
        return targets

    def _feedback_gradients(
        self, hierarchy: Hierarchy, state: State, noise: float
    ) -> tuple[Gradients, dict[str, Any]]:
        if noise <= 0:
            raise ConfigurationError(
                f"noise: the difference reconstruction loss of rule {self.name!r} divides by "
                f"noise^2, so it must be > 0, got {noise!r}"
            )
        be = hierarchy.backend
        xp = be.xp
        top = len(hierarchy.areas) - 1
        Q = self.direct_feedback(hierarchy)
        tag = f"{self.tag}.rec"
        grads: Gradients = {}
        losses: dict[str, Any] = {}
        h_top = state.sweep.h[top]
        for l in range(1, top):
            shape = tuple(state.sweep.h[l].shape)
            kick = be.multiply(
                self._gaussian(hierarchy, shape),
                noise,
                out=hierarchy.buffer(f"{tag}.kick", l, shape),
            )
            below = be.add(state.sweep.h[l], kick, out=hierarchy.buffer(f"{tag}.c", l, shape))
            for k in range(l + 1, top + 1):
                _, below = self._forward_area(hierarchy, k, below, tag)
            delta = be.subtract(
                below, h_top, out=hierarchy.buffer(f"{tag}.d", l, tuple(h_top.shape))
            )
            # The reconstruction misses the perturbation by delta @ Q_l - noise * eps.
            e = be.matmul(delta, Q[l], out=hierarchy.buffer(f"{tag}.e", l, shape))
            be.subtract(kick, e, out=e)
            losses[hierarchy.areas[l].name] = 0.5 * be.sum_of_squares(e) / (shape[0] * noise**2)
            e *= -1.0 / (shape[0] * noise**2)
            grads[(hierarchy.areas[l].name, "Q_fb")] = be.matmul(
                xp.matrix_transpose(delta),
                e,
                out=hierarchy.buffer(f"{tag}.Q", l, tuple(Q[l].shape)),
            )
        return grads, losses

    def __repr__(self) -> str:
        return (
            f"DDTPLinear(loss={self.loss.name!r}, top_step={self.top_step}, "
            f"noise={self.noise}, seed={self.seed}, scale={self.scale})"
        )
