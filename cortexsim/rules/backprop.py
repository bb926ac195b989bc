"""Exact backpropagation through the recognition path: the baseline every
local rule is compared with.

Forward: ``a_l = h_{l-1} @ W_ff_l + b_ff_l``, ``h_l = f_l(a_l)``.
Backward, written as one explicit step per area:
``g_L = -dloss/da_L``, ``g_l = (g_{l+1} @ W_ff_{l+1}^T) * f_l'(a_l)``;
then ``dloss/dW_ff_l = -(1/B) h_{l-1}^T g_l`` (see ``rules.local``).
"""

from __future__ import annotations

from typing import Any

from ..hierarchy import Hierarchy
from ..inference import State, Sweep, feedforward
from ..losses import get_loss
from .local import Gradients, hebbian_gradients

__all__ = ["Backprop", "backward"]


def backward(hierarchy: Hierarchy, sweep: Sweep, y: Any, loss: Any) -> tuple[list[Any], Any]:
    """Backpropagate the output error of ``sweep`` against targets ``y``.

    Returns
    -------
    errors : list of arrays
        ``errors[l] = -dloss_b/da_l`` (batch, n_l) per sample; ``errors[0]`` is None.
    loss_value : 0-d array
        The loss, mean over the batch.
    """
    be = hierarchy.backend
    areas = hierarchy.areas
    top = len(areas) - 1
    batch = y.shape[0]
    buf = hierarchy.buffer
    loss = get_loss(loss)
    loss.check_output(areas[top].activation, areas[top].name)
    errors: list[Any] = [None] * (top + 1)
    for l in range(top, 0, -1):
        area = areas[l]
        shape = (batch, area.size)
        fprime = area.activation.derivative(be, sweep.a[l], sweep.h[l], buf("bp.fp", l, shape))
        g = buf("bp.g", l, shape)
        if l == top:
            value = loss.evaluate(be, sweep.a[l], sweep.h[l], fprime, y, g)
        else:
            be.matmul(errors[l + 1], areas[l + 1].W_ff.T, out=g)
            if fprime is not None:
                g *= fprime
        errors[l] = g
    return errors, value / batch


class Backprop:
    """Exact gradient descent on the loss through the recognition weights.

    Parameters
    ----------
    loss : str
        ``"mse"`` or ``"cross_entropy"``.
    """

    name = "backprop"

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
