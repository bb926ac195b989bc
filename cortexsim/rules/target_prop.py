"""Target propagation: the feedback pathway carries *targets* for the
activities, and its weights are a learned approximate inverse of the forward
path, trained as a decoder.

Forward, as everywhere (``docs/math.md``): ``a_l = h_{l-1} @ W_ff_l + b_ff_l``,
``h_l = f_l(a_l)``, ``h_0 = x``; areas ``1 .. L``, the top ``L`` is the output.

Top target (``top_step`` plays the part of Lee et al.'s ``lr0``, but per
sample: theirs multiplied the gradient of a batch-mean loss)::

    t_L = h_L - top_step * dloss_b/dh_L

Feedback (inverse) mapping of area ``l+1`` onto area ``l`` (``1 <= l < L``)
uses area ``l+1``'s generative weights ``W_fb_{l+1}`` (n_{l+1}, n_l) and bias
``b_fb_{l+1}`` (n_l,) followed by the *forward* nonlinearity of the area it
predicts::

    g_{l+1}(v) = f_l(v @ W_fb_{l+1} + b_fb_{l+1})

This is the choice of Lee et al. (their inverses ``G_i = tanh(. V_i + C_i)``
mirror the tanh forward layers): ``g`` then ranges over the same set as
``h_l``. The area's ``feedback_activation`` (``phi``, used by generative
predictive coding *before* the product) plays no part here. Area 1's
feedback weights (onto the data) are never used or trained.

Targets travel down (``TargetProp``, Bengio 2014, "How auto-encoders could
provide credit assignment in deep networks via target propagation",
arXiv:1407.7906)::

    t_l = g_{l+1}(t_{l+1})

or with the difference correction (``DifferenceTargetProp``; Lee, Zhang,
Fischer & Bengio 2015, "Difference target propagation", ECML-PKDD,
arXiv:1412.7525), which makes ``t_l = h_l`` whenever ``t_{l+1} =
h_{l+1}`` even for an imperfect inverse::

    t_l = h_l + g_{l+1}(t_{l+1}) - g_{l+1}(h_{l+1})

Lee et al.'s code puts the first target on the last hidden area instead,
``t_{L-1} = h_{L-1} - top_step * dloss_b/dh_{L-1}``, and never inverts the
output layer: ``first_target="last_hidden"``.

Forward weights. Hidden area ``l`` descends its local loss
``0.5 |h_l - t_l|^2`` (sum over units, mean over the batch) through its own
layer only, ``e_l = (t_l - h_l) * f_l'(a_l)``; the top area descends the loss
itself (as in Lee et al., whose output layer is trained by its gradient),
``e_L = -dloss_b/da_L``. Both give ``dW_ff_l = -(1/B) h_{l-1}^T e_l``
(``rules.local.hebbian_gradients``).

Feedback weights, in the same ``gradients`` call (Lee et al.'s "inverse
training" on Gaussian-corrupted activities): with ``h~_l = h_l + noise * eps``,
``eps ~ N(0, 1)`` drawn per sample and unit, area ``l+1``'s inverse descends
``0.5 |g_{l+1}(f_{l+1}(h~_l @ W_ff_{l+1} + b_ff_{l+1})) - h~_l|^2`` (mean over
the batch) with respect to ``W_fb_{l+1}``, ``b_fb_{l+1}`` only.

Direct difference target propagation with linear feedback is in
``rules/ddtp.py``.

``infer`` returns a ``State`` of mode ``"target"`` whose ``mu[l]`` holds the
target ``t_l`` (``mu[0]`` the input) and whose ``errors[l]`` holds ``e_l``;
``reconstruction_losses`` reports the feedback pathway's training loss.

All noise is drawn on the host from the rule's own seeded
``numpy.random.Generator`` and copied to the backend, so every backend sees
the same draws.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigurationError
from ..model.hierarchy import Hierarchy
from ..inference import State, Sweep, feedforward
from ..model.losses import get_loss
from ..validation import check_bool, check_choice, check_int, check_number, invalid
from .base import Capabilities, Rule, register
from .local import Gradients, hebbian_gradients

__all__ = ["FIRST_TARGETS", "DifferenceTargetProp", "TargetProp"]

FIRST_TARGETS = ("output", "last_hidden")


def _check_noise(value: Any, where: str, positive: bool) -> float:
    value = check_number(value, where, positive=positive)
    if value < 0:
        raise invalid(where, f"must be >= 0, got {value!r}")
    return value


class _TargetRule(Rule):
    """Shared plumbing: sweep, top target, local forward updates, noise."""

    name = ""

    @property
    def capabilities(self) -> Capabilities:
        """Supervised; one feedforward sweep; targets for the recognition weights."""
        return Capabilities(supervised=True, inference="sweep", setting="discriminative")
    tag = ""

    def __init__(
        self, loss: str, top_step: float, noise: float, seed: int, positive_noise: bool
    ) -> None:
        self.loss = get_loss(loss, "rule.loss")
        self.top_step = check_number(top_step, "rule.top_step", positive=True)
        self.noise = _check_noise(noise, "rule.noise", positive_noise)
        self.seed = check_int(seed, "rule.seed")
        self._rng = np.random.default_rng(self.seed)

    def state_dict(self) -> dict[str, Any]:
        """The noise generator's position, for checkpoints (JSON-able)."""
        return {"rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the noise stream where a checkpoint left it."""
        self._rng.bit_generator.state = state["rng"]

    # -- pieces --------------------------------------------------------------
    def _gaussian(self, hierarchy: Hierarchy, shape: tuple[int, ...]) -> Any:
        """Standard normal draws from the rule's host generator, on the backend."""
        return hierarchy.backend.asarray(self._rng.standard_normal(size=shape))

    def _top(self, hierarchy: Hierarchy, sweep: Sweep, y: Any) -> tuple[Any, Any, Any]:
        """Return (top target t_L, top error -dloss_b/da_L, batch-mean loss)."""
        be = hierarchy.backend
        top = len(hierarchy.areas) - 1
        area = hierarchy.areas[top]
        self.loss.check_output(area.activation, area.name)
        shape = (y.shape[0], area.size)
        buf = hierarchy.buffer
        # With no f' the loss writes -dloss_b/dh_L (mse: y - h; cross-entropy,
        # whose top is linear: y - softmax(a)).
        dh = buf(f"{self.tag}.dh", top, shape)
        value = self.loss.evaluate(be, sweep.a[top], sweep.h[top], None, y, dh)
        t = be.multiply(dh, self.top_step, out=buf(f"{self.tag}.t", top, shape))
        t += sweep.h[top]
        fprime = area.activation.derivative(
            be, sweep.a[top], sweep.h[top], buf(f"{self.tag}.fp", top, shape)
        )
        # ".err", not ".e": hebbian_gradients scales into "{tag}.e" in place.
        e = be.multiply(dh, 1.0, out=buf(f"{self.tag}.err", top, shape))
        if fprime is not None:
            e *= fprime
        return t, e, value / y.shape[0]

    def _forward_area(self, hierarchy: Hierarchy, k: int, below: Any, tag: str) -> tuple[Any, Any]:
        """(a, f(a)) of area ``k`` driven by ``below``, in scratch of its own
        (the sweep's buffers must stay intact)."""
        be = hierarchy.backend
        area = hierarchy.areas[k]
        shape = (below.shape[0], area.size)
        a = be.matmul(below, area.W_ff, out=hierarchy.buffer(f"{tag}.a", k, shape))
        a += area.b_ff
        return a, area.activation.apply(be, a, hierarchy.buffer(f"{tag}.h", k, shape))

    def _targets(self, hierarchy: Hierarchy, sweep: Sweep, t_top: Any, e_top: Any) -> list[Any]:
        raise NotImplementedError

    # -- the rule --------------------------------------------------------------
    def infer(self, hierarchy: Hierarchy, x: Any, y: Any, observe: Any = None) -> State:
        """The feedforward sweep, the top target and its propagation down.

        Parameters
        ----------
        x : array (batch, n_0)
            Inputs.
        y : array (batch, n_L)
            Targets of the top area (one-hot labels for classification).
        observe
            Unused: there is no relaxation to watch.

        Returns
        -------
        State
            ``mode = "target"``; ``mu[l]`` is the target ``t_l`` of area ``l``
            (``mu[0]`` the input); ``errors[l]`` the error area ``l``'s forward
            weights follow (``(t_l - h_l) * f_l'(a_l)`` below the top,
            ``-dloss_b/da_L`` at the top); ``loss`` the sweep's loss; ``target`` y.
            The mode is not ``"feedforward"`` on purpose: ``Backprop.gradients``
            takes the errors of a feedforward-mode state as backprop's own, and
            it must recompute them here for alignment to mean anything.
        """
        if y is None:
            raise ConfigurationError(
                f"rule {self.name!r} sets the top area's target from the loss; "
                "pass y (one-hot labels or regression targets)"
            )
        be = hierarchy.backend
        sweep = feedforward(hierarchy, x)
        t_top, e_top, loss_value = self._top(hierarchy, sweep, y)
        top = len(hierarchy.areas) - 1
        targets = self._targets(hierarchy, sweep, t_top, e_top)
        targets[top] = t_top
        errors: list[Any] = [None] * (top + 1)
        errors[top] = e_top
        for l in range(1, top):
            area = hierarchy.areas[l]
            shape = tuple(sweep.h[l].shape)
            e = be.subtract(
                targets[l], sweep.h[l], out=hierarchy.buffer(f"{self.tag}.err", l, shape)
            )
            fprime = area.activation.derivative(
                be, sweep.a[l], sweep.h[l], hierarchy.buffer(f"{self.tag}.fp", l, shape)
            )
            if fprime is not None:
                e *= fprime
            errors[l] = e
        targets[0] = x
        return State(
            mode="target",
            sweep=sweep,
            mu=targets,
            target=y,
            loss=loss_value,
            presynaptic=[None] + sweep.h[:-1],
            errors=errors,
        )

    def _feedback_gradients(
        self, hierarchy: Hierarchy, state: State, noise: float
    ) -> tuple[Gradients, dict[str, Any]]:
        raise NotImplementedError

    def gradients(self, hierarchy: Hierarchy, state: State) -> Gradients:
        """Descent directions of the forward weights (local, towards the
        targets) and of the feedback weights (reconstruction of
        noise-corrupted activities), from a state this rule inferred."""
        if state.mode != "target":
            raise ConfigurationError(
                f"rule {self.name!r} needs the state of its own infer (with targets), "
                f"got a state of mode {state.mode!r}"
            )
        grads = hebbian_gradients(hierarchy, state.presynaptic, state.errors, tag=self.tag)
        feedback, _ = self._feedback_gradients(hierarchy, state, self.noise)
        grads.update(feedback)
        return grads

    def reconstruction_losses(
        self, hierarchy: Hierarchy, state: State, noise: float | None = None
    ) -> dict[str, Any]:
        """The feedback pathway's training loss per area, on fresh noise.

        Parameters
        ----------
        state : State
            From this rule's ``infer``.
        noise : float, optional
            Standard deviation of the corruption (default: the rule's); draws
            come from the rule's generator (zero noise draws nothing).

        Returns
        -------
        dict
            Area name (the owner of the feedback weights) -> 0-d backend array,
            the batch-mean reconstruction loss.
        """
        noise = self.noise if noise is None else _check_noise(noise, "noise", False)
        _, losses = self._feedback_gradients(hierarchy, state, noise)
        return losses


@register("target_prop")
class TargetProp(_TargetRule):
    """Target propagation through learned layer-wise inverses (Bengio 2014),
    or, with ``difference=True``, difference target propagation (Lee et al. 2015).

    Parameters
    ----------
    loss : str
        ``"mse"`` or ``"cross_entropy"`` (linear top area).
    top_step : float
        ``t_L = h_L - top_step * dloss_b/dh_L``, per sample (> 0). Lee et al.'s
        ``lr0 = 0.327`` multiplied the gradient of a *batch-mean* loss (batch
        100), i.e. a per-sample step of 0.0033; here the step is per sample.
    noise : float
        Standard deviation of the Gaussian corruption of the activities the
        inverses are trained on (>= 0; Lee et al. 0.36).
    difference : bool
        Apply the difference correction ``h_l - g(h_{l+1})``.
    seed : int
        Seeds the rule's noise generator.
    first_target : str
        ``"output"`` (default): the top target ``t_L`` is sent down through
        the output area's learned inverse ``g_L``. ``"last_hidden"``: Lee et
        al.'s code (``conti_dtp.py``): the first target is a gradient step on
        the last hidden area, ``t_{L-1} = h_{L-1} - top_step *
        dloss_b/dh_{L-1}`` (backprop through ``W_ff_L`` only), ``g_L`` is
        neither used nor trained. Plain TP needs it: a 10-unit output cannot
        be inverted onto a wide hidden area, and ``g_L(t_L)`` is a poor target.
    """

    name = "target_prop"
    tag = "tp"

    def __init__(
        self,
        loss: str = "mse",
        top_step: float = 0.33,
        noise: float = 0.36,
        difference: bool = False,
        seed: int = 0,
        first_target: str = "output",
    ) -> None:
        super().__init__(loss, top_step, noise, seed, positive_noise=False)
        check_bool(difference, "rule.difference")
        check_choice(first_target, FIRST_TARGETS, "rule.first_target")
        self.difference = difference
        self.first_target = first_target
        if difference and type(self) is TargetProp:
            self.name, self.tag = DifferenceTargetProp.name, DifferenceTargetProp.tag

    def learned_parameters(self, hierarchy: Hierarchy) -> list[tuple[str, str]]:
        """Forward weights of every area; feedback weights of areas 2 .. L
        (area 1's feedback would predict the data, which needs no target)."""
        keys = [(a.name, p) for a in hierarchy.areas[1:] for p in ("W_ff", "b_ff")]
        return keys + [(a.name, p) for a in self._inverted(hierarchy) for p in ("W_fb", "b_fb")]

    def _inverted(self, hierarchy: Hierarchy) -> list[Any]:
        """The areas whose inverse carries targets: 2 .. L, or 2 .. L-1 when
        the first target is set on the last hidden area."""
        stop = len(hierarchy.areas) - (1 if self.first_target == "last_hidden" else 0)
        return hierarchy.areas[2:stop]

    def inverse(self, hierarchy: Hierarchy, k: int, v: Any, tag: str) -> tuple[Any, Any]:
        """``g_k(v) = f_{k-1}(v @ W_fb_k + b_fb_k)`` for area ``k >= 2``; returns
        (pre-activation, value), both in scratch named by ``tag``."""
        be = hierarchy.backend
        below = hierarchy.areas[k - 1]
        shape = (v.shape[0], below.size)
        z = be.matmul(v, hierarchy.areas[k].W_fb, out=hierarchy.buffer(f"{tag}.z", k, shape))
        z += hierarchy.areas[k].b_fb
        return z, below.activation.apply(be, z, hierarchy.buffer(f"{tag}.g", k, shape))

    def _targets(self, hierarchy: Hierarchy, sweep: Sweep, t_top: Any, e_top: Any) -> list[Any]:
        be = hierarchy.backend
        top = len(hierarchy.areas) - 1
        targets: list[Any] = [None] * (top + 1)
        targets[top] = t_top
        start = top - 1
        if self.first_target == "last_hidden" and top > 1:
            # Lee et al.'s code: t_{L-1} = h_{L-1} - top_step * dloss_b/dh_{L-1},
            # one exact step back through W_ff_L (e_top is -dloss_b/da_L).
            shape = tuple(sweep.h[start].shape)
            t = be.matmul(
                e_top,
                be.xp.matrix_transpose(hierarchy.areas[top].W_ff),
                out=hierarchy.buffer(f"{self.tag}.t", start, shape),
            )
            t *= self.top_step
            t += sweep.h[start]
            targets[start] = t
            start -= 1
        for l in range(start, 0, -1):
            shape = tuple(sweep.h[l].shape)
            t = hierarchy.buffer(f"{self.tag}.t", l, shape)
            _, g_t = self.inverse(hierarchy, l + 1, targets[l + 1], f"{self.tag}.inv_t")
            t[...] = g_t
            if self.difference:
                _, g_h = self.inverse(hierarchy, l + 1, sweep.h[l + 1], f"{self.tag}.inv_h")
                t -= g_h
                t += sweep.h[l]
            targets[l] = t
        return targets

    def _feedback_gradients(
        self, hierarchy: Hierarchy, state: State, noise: float
    ) -> tuple[Gradients, dict[str, Any]]:
        be = hierarchy.backend
        top = len(hierarchy.areas) - 1
        tag = f"{self.tag}.rec"
        presynaptic: list[Any] = [None] * (top + 1)
        errors: list[Any] = [None] * (top + 1)
        losses: dict[str, Any] = {}
        for k in (area.index for area in self._inverted(hierarchy)):
            l = k - 1
            h = state.sweep.h[l]
            shape = tuple(h.shape)
            corrupted = hierarchy.buffer(f"{tag}.c", l, shape)
            if noise > 0:
                be.multiply(self._gaussian(hierarchy, shape), noise, out=corrupted)
                corrupted += h
            else:
                corrupted[...] = h
            _, up = self._forward_area(hierarchy, k, corrupted, tag)
            z, rec = self.inverse(hierarchy, k, up, tag)
            e = be.subtract(corrupted, rec, out=hierarchy.buffer(f"{tag}.err", k, shape))
            losses[hierarchy.areas[k].name] = 0.5 * be.sum_of_squares(e) / shape[0]
            fprime = hierarchy.areas[l].activation.derivative(
                be, z, rec, hierarchy.buffer(f"{tag}.fp", k, shape)
            )
            if fprime is not None:
                e *= fprime
            presynaptic[k], errors[k] = up, e
        grads = hebbian_gradients(hierarchy, presynaptic, errors, ("W_fb", "b_fb"), tag=tag)
        return grads, losses

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(loss={self.loss.name!r}, top_step={self.top_step}, "
            f"noise={self.noise}, difference={self.difference}, seed={self.seed}, "
            f"first_target={self.first_target!r})"
        )


@register("difference_target_prop")
class DifferenceTargetProp(TargetProp):
    """Difference target propagation (Lee et al. 2015): ``TargetProp`` with
    ``difference=True``. Parameters as ``TargetProp`` (without ``difference``);
    ``first_target="last_hidden"`` reproduces the protocol of Lee et al.'s code."""

    name = "difference_target_prop"
    tag = "dtp"

    def __init__(
        self,
        loss: str = "mse",
        top_step: float = 0.33,
        noise: float = 0.36,
        seed: int = 0,
        first_target: str = "output",
    ) -> None:
        super().__init__(loss, top_step, noise, True, seed, first_target)

    def __repr__(self) -> str:
        return (
            f"DifferenceTargetProp(loss={self.loss.name!r}, top_step={self.top_step}, "
            f"noise={self.noise}, seed={self.seed}, first_target={self.first_target!r})"
        )
