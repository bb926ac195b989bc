"""Losses on the top area of a discriminative hierarchy.

Each loss is summed over units and averaged over the batch:

``mse``            L = mean_b 0.5 |y_b - f(a_b)|^2
``cross_entropy``  L = mean_b -sum_k y_bk log softmax(a_b)_k  (the top area must be linear)

``evaluate`` returns the summed (not averaged) loss of a batch and writes the
output error ``-dL_b/da_b`` of every sample: the signal that backprop sends
down and that predictive coding clamps at the top of its energy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backend import Backend
from ..errors import ConfigurationError, did_you_mean
from ..validation import invalid
from .nonlinear import Activation

__all__ = ["Loss", "LOSSES", "get_loss"]

LOSSES = ("mse", "cross_entropy")


@dataclass(frozen=True)
class Loss:
    """A loss on the output area's activity."""

    name: str

    def check_output(self, activation: Activation, area_name: str) -> None:
        """Refuse combinations whose gradient would be wrong."""
        if self.name == "cross_entropy" and not activation.is_linear:
            raise ConfigurationError(
                f"loss 'cross_entropy' applies the softmax itself, so the top area "
                f"{area_name!r} must have activation 'linear', not {activation.name!r}"
            )

    def evaluate(
        self, be: Backend, a: Any, fa: Any, fprime: Any | None, y: Any, out: Any
    ) -> Any:
        """Write ``-dL_b/da`` (batch, n) into ``out``; return the batch's summed loss.

        Parameters
        ----------
        a, fa : arrays (batch, n)
            Pre-activation of the output area and its activity f(a).
        fprime : array (batch, n) or None
            f'(a), or None for a linear output area.
        y : array (batch, n)
            Targets (one-hot labels for classification).
        out : array (batch, n)
            Buffer for the output error.
        """
        xp = be.xp
        if self.name == "mse":
            be.subtract(y, fa, out=out)
            value = 0.5 * be.sum_of_squares(out)
            if fprime is not None:
                out *= fprime
            return value
        shifted = a - xp.max(a, axis=1, keepdims=True)
        log_z = xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
        log_softmax = shifted - log_z
        be.subtract(y, xp.exp(log_softmax), out=out)
        return -xp.sum(y * log_softmax)


def get_loss(name: str | Loss, where: str = "loss") -> Loss:
    """Look up a loss by name; ``where`` names the field for errors."""
    if isinstance(name, Loss):
        return name
    if name not in LOSSES:
        raise invalid(
            where, f"unknown loss {name!r}; allowed: {', '.join(LOSSES)}{did_you_mean(name, LOSSES)}"
        )
    return Loss(name)
