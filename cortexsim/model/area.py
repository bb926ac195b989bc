"""Area: one cortical area's arrays.

An area ``l >= 1`` owns

- ``W_ff`` (n_below, n) and ``b_ff`` (n,): recognition weights, bottom-up,
  ``mu_hat[l] = f(mu[l-1] @ W_ff + b_ff)``;
- ``W_fb`` (n, n_below) and ``b_fb`` (n_below,): generative weights, top-down,
  ``pred[l-1] = phi(mu[l]) @ W_fb + b_fb``.

Activities and errors are not kept here: inference returns them in a ``State``.

Area 0 is the data: it has no weights and its activities are the clamped input.
"""

from __future__ import annotations

from typing import Any

from ..backend import Backend
from .nonlinear import Activation, get_activation
from .priors import Prior
from .spec import AreaSpec

__all__ = ["Area", "PARAMETER_NAMES"]

PARAMETER_NAMES = ("W_ff", "b_ff", "W_fb", "b_fb")


class Area:
    """The arrays of one cortical area on a backend.

    Parameters
    ----------
    spec : AreaSpec
        The area's description.
    index : int
        Position in the hierarchy (0 is the data).
    backend : Backend
        Where the arrays live.
    parameters : dict of str to array
        ``W_ff``, ``b_ff``, ``W_fb``, ``b_fb`` for areas above the data; empty for area 0.
        Any other entry becomes an added parameter (``add_parameter``), as the
        log-variance heads of variational areas do.
    """

    def __init__(
        self, spec: AreaSpec, index: int, backend: Backend, parameters: dict[str, Any]
    ) -> None:
        self.spec = spec
        self.index = index
        self.backend = backend
        self.activation: Activation = get_activation(spec.activation)
        self.feedback_activation: Activation = get_activation(spec.feedback_activation)
        self.W_ff: Any = parameters.get("W_ff")
        self.b_ff: Any = parameters.get("b_ff")
        self.W_fb: Any = parameters.get("W_fb")
        self.b_fb: Any = parameters.get("b_fb")
        self.extra_parameters: list[str] = []
        for name, value in parameters.items():  # e.g. the log-variance heads of variational areas
            if name not in PARAMETER_NAMES:
                self.add_parameter(name, value)

    @property
    def name(self) -> str:
        """The area's name from its description."""
        return self.spec.name

    @property
    def size(self) -> int:
        """Number of units."""
        return self.spec.size

    @property
    def precision(self) -> float:
        """Inverse variance weighting this area's prediction errors."""
        return self.spec.precision

    @property
    def prior(self) -> Prior | None:
        """Prior over this area's activities, if the description gave one."""
        return self.spec.prior

    def parameters(self) -> dict[str, Any]:
        """This area's weight and bias arrays by name (empty for the data area),
        including parameters a rule added (``add_parameter``)."""
        if self.index == 0:
            return {}
        names = list(PARAMETER_NAMES) + self.extra_parameters
        return {name: getattr(self, name) for name in names}

    def add_parameter(self, name: str, value: Any) -> None:
        """Give the area a parameter a learning rule needs beyond the four every
        area has (e.g. a direct feedback projection), so optimizers,
        checkpoints, probes and divergence checks see it like the others."""
        if name in PARAMETER_NAMES or not name.isidentifier():
            raise ValueError(f"{name!r} cannot name an added parameter")
        if name not in self.extra_parameters:
            self.extra_parameters.append(name)
        setattr(self, name, value)

    def __repr__(self) -> str:
        return (
            f"Area({self.name!r}, index={self.index}, size={self.size}, "
            f"activation={self.activation.name!r})"
        )
