"""Exact backpropagation through the recognition path: the baseline every
local rule is compared with.

Forward: ``a_l = h_{l-1} @ W_ff_l + b_ff_l``, ``h_l = f_l(a_l)``.
Backward, written as one explicit step per area:
``g_L = -dloss/da_L``, ``g_l = (g_{l+1} @ W_ff_{l+1}^T) * f_l'(a_l)``;
then ``dloss/dW_ff_l = -(1/B) h_{l-1}^T g_l`` (see ``rules.local``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..model.hierarchy import Hierarchy
from ..inference import State, Sweep, feedforward
from ..model.losses import Loss, get_loss
from .base import Capabilities, Rule, register
from .local import Gradients, hebbian_gradients

__all__ = ["Backprop", "backward", "output_error", "hidden_error"]


def output_error(hierarchy: Hierarchy, sweep: Sweep, y: Any, loss: Loss, tag: str) -> tuple[Any, Any]:
    """Write ``g_L = -dloss_b/da_L`` (batch, n_L) into the ``tag`` buffer of the
    top area; return it and the batch-mean loss."""
    be = hierarchy.backend
    top = len(hierarchy.areas) - 1
    area = hierarchy.areas[top]
    loss.check_output(area.activation, area.name)
    shape = (y.shape[0], area.size)
    fprime = area.activation.derivative(
        be, sweep.a[top], sweep.h[top], hierarchy.buffer(f"{tag}.fp", top, shape)
    )
    g = hierarchy.buffer(f"{tag}.g", top, shape)
    value = loss.evaluate(be, sweep.a[top], sweep.h[top], fprime, y, g)
    return g, value / y.shape[0]


def hidden_error(
    hierarchy: Hierarchy, sweep: Sweep, l: int, source: Any, matrix: Any, tag: str
) -> Any:
    """``(source @ matrix) * f_l'(a_l)`` into area ``l``'s ``tag`` error buffer."""
    be = hierarchy.backend
    area = hierarchy.areas[l]
    shape = (source.shape[0], area.size)
    g = be.matmul(source, matrix, out=hierarchy.buffer(f"{tag}.g", l, shape))
    fprime = area.activation.derivative(
        be, sweep.a[l], sweep.h[l], hierarchy.buffer(f"{tag}.fp", l, shape)
    )
    if fprime is not None:
        g *= fprime
    return g


def backward(
    hierarchy: Hierarchy,
    sweep: Sweep,
    y: Any,
    loss: Any,
    feedback: Callable[[int], Any] | None = None,
    tag: str = "bp",
) -> tuple[list[Any], Any]:
    """Send the output error of ``sweep`` against targets ``y`` down, area by area.

    Parameters
    ----------
    feedback : callable, optional
        ``feedback(l)`` is the (n_l, n_{l-1}) matrix carrying area ``l``'s error
        to the area below; by default ``W_ff[l]^T``, which makes this exact
        backprop (feedback alignment passes the fixed ``W_fb[l]``).
    tag : str
        Buffer name, so that two rules' errors can coexist.

    Returns
    -------
    errors : list of arrays
        ``errors[l] = -dloss_b/da_l`` (batch, n_l) per sample; ``errors[0]`` is None.
    loss_value : 0-d array
        The loss, mean over the batch.
    """
    areas = hierarchy.areas
    top = len(areas) - 1
    errors: list[Any] = [None] * (top + 1)
    errors[top], value = output_error(hierarchy, sweep, y, get_loss(loss), tag)
    for l in range(top - 1, 0, -1):
        matrix = areas[l + 1].W_ff.T if feedback is None else feedback(l + 1)
        errors[l] = hidden_error(hierarchy, sweep, l, errors[l + 1], matrix, tag)
    return errors, value


@register("backprop")
class Backprop(Rule):
    """Exact gradient descent on the loss through the recognition weights.

    Parameters
    ----------
    loss : str
        ``"mse"`` or ``"cross_entropy"``.
    """

    name = "backprop"

    @property
    def capabilities(self) -> Capabilities:
        """Supervised; one feedforward sweep; updates recognition weights."""
        return Capabilities(supervised=True, inference="sweep", setting="discriminative")

    def __init__(self, loss: str = "mse") -> None:
        self.loss = get_loss(loss, "rule.loss")

    def learned_parameters(self, hierarchy: Hierarchy) -> list[tuple[str, str]]:
        """The (area, parameter) keys this rule returns gradients for."""
        return [(a.name, p) for a in hierarchy.areas[1:] for p in ("W_ff", "b_ff")]

    def infer(self, hierarchy: Hierarchy, x: Any, y: Any, observe: Any = None) -> State:
        """The feedforward sweep and the backward pass of the output error
        (there is no relaxation for ``observe`` to see)."""
        sweep = feedforward(hierarchy, x)
        errors, loss_value = backward(hierarchy, sweep, y, self.loss)
        return State(
            mode="feedforward", sweep=sweep, mu=sweep.h, target=y, loss=loss_value,
            presynaptic=[None] + sweep.h[:-1], errors=errors, producer=self,
        )

    def gradients(self, hierarchy: Hierarchy, state: State) -> Gradients:
        """Exact loss gradients of every recognition weight.

        On the state of another rule (predictive coding, ...) the backward
        pass runs from that state's feedforward sweep and target, so a local
        rule's update can be compared with backprop's on the same batch and
        weights.
        """
        if state.producer is self:
            errors = state.errors
        else:
            errors, _ = backward(hierarchy, state.sweep, state.target, self.loss)
        return hebbian_gradients(hierarchy, [None] + state.sweep.h[:-1], errors, tag="bp")

    def __repr__(self) -> str:
        return f"Backprop(loss={self.loss.name!r})"
