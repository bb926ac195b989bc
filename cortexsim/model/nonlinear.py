"""Activation functions with their derivatives.

Every activation writes into a caller-owned buffer so the inference loops can
reuse memory. ``apply`` returns the array holding f(a) (the identity returns
``a`` itself, no copy); ``derivative`` returns f'(a) given both the
pre-activation ``a`` and ``fa = f(a)`` (tanh and sigmoid are cheapest from
``fa``), or ``None`` for the identity, whose derivative is 1 everywhere and so
needs no multiplication.

GELU uses the tanh approximation (Hendrycks & Gimpel 2016, eq. 2), because
the array-API standard has no ``erf``; it differs from the exact GELU by less
than 4.8e-4 everywhere (the largest gap, 4.73e-4, is near |a| = 2.7; within
|a| <= 2 it is below 2.4e-4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..backend import Backend
from ..errors import ConfigurationError, did_you_mean

__all__ = ["Activation", "ACTIVATIONS", "get_activation"]

_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715


@dataclass(frozen=True)
class Activation:
    """A pointwise nonlinearity f and its derivative f'."""

    name: str

    @property
    def is_linear(self) -> bool:
        """True for the identity, whose derivative is 1."""
        return self.name == "linear"

    def apply(self, be: Backend, a: Any, out: Any) -> Any:
        """Write f(a) into ``out`` and return it (the identity returns ``a``)."""
        xp = be.xp
        if self.name == "linear":
            return a
        if self.name == "tanh":
            return be.tanh(a, out=out)
        if self.name == "sigmoid":
            # 1 / (1 + exp(-a)) written as 0.5 * (1 + tanh(a / 2)): no overflow.
            be.multiply(a, 0.5, out=out)
            be.tanh(out, out=out)
            out += 1.0
            out *= 0.5
            return out
        if self.name == "relu":
            out[...] = xp.maximum(a, xp.zeros_like(a))
            return out
        if self.name == "gelu":
            u = xp.tanh(_GELU_C * (a + _GELU_K * a * a * a))
            out[...] = 0.5 * a * (1.0 + u)
            return out
        raise AssertionError(self.name)  # unreachable: names are validated

    def derivative(self, be: Backend, a: Any, fa: Any, out: Any) -> Any | None:
        """Write f'(a) into ``out`` and return it; None for the identity."""
        xp = be.xp
        if self.name == "linear":
            return None
        if self.name == "tanh":
            be.multiply(fa, fa, out=out)
            be.subtract(1.0, out, out=out)
            return out
        if self.name == "sigmoid":
            be.subtract(1.0, fa, out=out)
            out *= fa
            return out
        if self.name == "relu":
            out[...] = xp.astype(a > 0, a.dtype)
            return out
        if self.name == "gelu":
            a2 = a * a
            u = xp.tanh(_GELU_C * (a + _GELU_K * a2 * a))
            du = _GELU_C * (1.0 + 3.0 * _GELU_K * a2)
            out[...] = 0.5 * (1.0 + u) + 0.5 * a * (1.0 - u * u) * du
            return out
        raise AssertionError(self.name)

    # Convenience forms that allocate, for analysis and tests.
    def __call__(self, be: Backend, a: Any) -> Any:
        """Return f(a) as a new array."""
        return self.apply(be, a, be.xp.empty_like(a)) if not self.is_linear else a

    def grad(self, be: Backend, a: Any) -> Any:
        """Return f'(a) as a new array (ones for the identity)."""
        fa = self(be, a)
        d = self.derivative(be, a, fa, be.xp.empty_like(a))
        return be.xp.ones_like(a) if d is None else d


ACTIVATIONS = {name: Activation(name) for name in ("linear", "tanh", "sigmoid", "relu", "gelu")}


def get_activation(name: str, where: str = "activation") -> Activation:
    """Look up an activation by name; ``where`` names the field for errors."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        allowed = sorted(ACTIVATIONS)
        raise ConfigurationError(
            f"{where}: unknown activation {name!r}; allowed: {', '.join(allowed)}"
            f"{did_you_mean(name, allowed)}"
        ) from None
