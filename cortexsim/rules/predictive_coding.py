"""Predictive coding (inference learning): relax the activities, then change
each weight by the local product of presynaptic activity and postsynaptic
prediction error, ``dF/dW = -(1/B) pre^T err`` at the relaxed state.

Discriminative mode learns the recognition weights (Whittington & Bogacz 2017);
with ``fixed_prediction`` the presynaptic activities are the feedforward ones
and the update equals backprop's (Millidge et al. 2020; Rosenbaum 2022).
Generative mode learns the generative weights from the prediction errors of
the area below (Rao & Ballard 1999) and, with ``learn_recognition``, trains the
recognition weights to predict the relaxed activities (amortized inference).
"""

from __future__ import annotations

import warnings
from typing import Any

from ..errors import ConfigurationError, did_you_mean
from ..model.hierarchy import Hierarchy
from ..inference import Relaxation, State, relax_discriminative, relax_generative
from ..model.losses import get_loss
from ..validation import invalid
from .base import Capabilities, Rule, register
from .local import Gradients, hebbian_gradients

__all__ = ["PredictiveCoding", "MODES"]

MODES = ("discriminative", "generative")


@register("predictive_coding")
class PredictiveCoding(Rule):
    """Predictive-coding inference followed by local Hebbian learning.

    Parameters
    ----------
    mode : str
        ``"discriminative"`` (input and label clamped) or ``"generative"``
        (data clamped, prior on the top area).
    loss : str
        Energy of the top area in discriminative mode: ``"mse"`` or ``"cross_entropy"``.
    inference : Relaxation
        Steps, step size, tolerance, start, fixed-prediction switch.
    learn_recognition : bool
        Generative mode: also train the recognition weights towards the
        relaxed activities, so the feedforward sweep learns to start inference
        near its end.
    """

    name = "predictive_coding"

    def __init__(
        self,
        mode: str = "discriminative",
        loss: str = "mse",
        inference: Relaxation | None = None,
        learn_recognition: bool = False,
    ) -> None:
        if mode not in MODES:
            raise invalid(
                "rule.mode",
                f"unknown mode {mode!r}; allowed: {', '.join(MODES)}{did_you_mean(mode, MODES)}",
            )
        self.mode = mode
        self.loss = get_loss(loss, "rule.loss")
        self.inference = Relaxation() if inference is None else inference
        self.learn_recognition = bool(learn_recognition)

    @property
    def capabilities(self) -> Capabilities:
        """Relaxation; discriminative mode learns from labels, generative mode
        models the data alone."""
        return Capabilities(
            supervised=self.mode == "discriminative", inference="relaxation",
            setting=self.mode, relaxation_steps=self.inference.steps,
            relaxation_tolerance=self.inference.tolerance,
        )

    def prepare(self, hierarchy: Hierarchy) -> None:
        """Warn when fixed prediction is set up as the exact backprop equivalent
        (``step_size = 1``) but a hidden area's precision breaks it, or when a
        hidden area's ``precision x step_size`` exceeds 2, where the errors
        grow without bound (docs/math.md, "Fixed prediction")."""
        settings = self.inference
        if self.mode != "discriminative" or not settings.fixed_prediction:
            return
        hidden = hierarchy.areas[1:-1]
        products = {area.name: area.precision * settings.step_size for area in hidden}
        unstable = [f"{n!r} ({p:g})" for n, p in products.items() if p > 2.0]
        if unstable:
            warnings.warn(
                f"inference.step_size: under fixed prediction each hidden area's error is "
                f"multiplied by (1 - precision x step_size) per step; above 2 it grows without "
                f"bound: {', '.join(unstable)}; lower the step size",
                RuntimeWarning, stacklevel=2,
            )
        elif settings.step_size == 1.0 and any(p != 1.0 for p in products.values()):
            broken = [f"{n!r} ({p:g})" for n, p in products.items() if p != 1.0]
            warnings.warn(
                f"inference.step_size: fixed prediction equals backprop after L - 1 steps only "
                f"when precision x step_size = 1 in every hidden area, here {', '.join(broken)}; "
                f"use step_size = 1 / precision there, or many small steps",
                RuntimeWarning, stacklevel=2,
            )

    def learned_parameters(self, hierarchy: Hierarchy) -> list[tuple[str, str]]:
        """The (area, parameter) keys this rule returns gradients for."""
        names = ["W_ff", "b_ff"] if self.mode == "discriminative" else ["W_fb", "b_fb"]
        if self.mode == "generative" and self.learn_recognition:
            names += ["W_ff", "b_ff"]
        return [(a.name, p) for a in hierarchy.areas[1:] for p in names]

    def infer(self, hierarchy: Hierarchy, x: Any, y: Any = None, observe: Any = None) -> State:
        """Relax the activities on one batch; ``observe(t, snapshot)`` sees every step."""
        if self.mode == "generative":
            return relax_generative(hierarchy, x, self.inference, observe)
        if y is None:
            raise ConfigurationError(
                "discriminative predictive coding clamps the top area to a target; "
                "pass y (one-hot labels or regression targets)"
            )
        return relax_discriminative(hierarchy, x, y, self.loss, self.inference, observe)

    def gradients(self, hierarchy: Hierarchy, state: State) -> Gradients:
        """Local updates (as descent directions) of the weights this mode learns."""
        if self.mode == "discriminative":
            return hebbian_gradients(hierarchy, state.presynaptic, state.errors, tag="pc")
        grads = hebbian_gradients(
            hierarchy, state.presynaptic, state.errors, ("W_fb", "b_fb"), tag="pc"
        )
        if self.learn_recognition:
            grads.update(self._recognition_gradients(hierarchy, state))
        return grads

    def _recognition_gradients(self, hierarchy: Hierarchy, state: State) -> Gradients:
        """Gradients of 0.5 |mu_l - f(mu_{l-1} @ W_ff + b_ff)|^2: amortization."""
        be = hierarchy.backend
        errors: list[Any] = [None]
        for l, area in enumerate(hierarchy.areas[1:], start=1):
            shape = tuple(state.mu[l].shape)
            a = be.matmul(state.mu[l - 1], area.W_ff, out=hierarchy.buffer("rec.a", l, shape))
            a += area.b_ff
            fa = area.activation.apply(be, a, hierarchy.buffer("rec.h", l, shape))
            e = be.subtract(state.mu[l], fa, out=hierarchy.buffer("rec.e", l, shape))
            fprime = area.activation.derivative(be, a, fa, hierarchy.buffer("rec.fp", l, shape))
            if fprime is not None:
                e *= fprime
            errors.append(e)
        return hebbian_gradients(hierarchy, [None] + state.mu[:-1], errors, tag="rec")

    def __repr__(self) -> str:
        return (
            f"PredictiveCoding(mode={self.mode!r}, loss={self.loss.name!r}, "
            f"inference={self.inference!r})"
        )
