"""Optimizers on raw arrays: SGD, momentum and Adam.

``step(hierarchy, gradients)`` changes the hierarchy's parameters in place
(``theta <- theta - update``), writing through preallocated buffers so a step
allocates nothing after the first.

Settings errors name ``optimizer.KEY``; a study validating inside
``located("rules[0].optimizer", owner="optimizer")`` (cortexsim.validation)
has them name the table the user wrote.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import did_you_mean
from .model.hierarchy import Hierarchy, ParameterKey
from .validation import check_number, invalid

__all__ = ["Optimizer", "SGD", "Momentum", "Adam", "OPTIMIZERS", "make_optimizer"]


class Optimizer:
    """Base class: keeps per-parameter state and a scratch buffer per parameter.

    ``weight_decay`` adds ``weight_decay * W`` to the gradient of every weight
    matrix (not the biases) before the update: a Gaussian prior on the weights,
    ``(weight_decay / 2) |W|^2`` in the energy (Rao & Ballard 1999).
    """

    name = "optimizer"

    def __init__(self, lr: float, weight_decay: float = 0.0) -> None:
        self.lr = check_number(lr, "optimizer.lr", positive=True)
        self.weight_decay = check_number(weight_decay, "optimizer.weight_decay")
        if self.weight_decay < 0:
            raise invalid("optimizer.weight_decay", f"must be >= 0, got {weight_decay!r}")
        self.steps = 0
        self.slots: dict[tuple[str, ParameterKey], Any] = {}
        self._backend: Any = None

    def slot(self, hierarchy: Hierarchy, kind: str, key: ParameterKey, like: Any) -> Any:
        """A zero-initialised array shaped like ``like``, kept across steps."""
        slot = self.slots.get((kind, key))
        if slot is None:
            slot = self.slots[(kind, key)] = hierarchy.backend.zeros(tuple(like.shape))
        return slot

    def step(self, hierarchy: Hierarchy, gradients: dict[ParameterKey, Any]) -> None:
        """Apply one update of every parameter that has a gradient."""
        self._backend = hierarchy.backend
        self.steps += 1
        for key, grad in gradients.items():
            area_name, parameter = key
            if self.weight_decay and parameter.startswith("W"):
                grad = grad + self.weight_decay * getattr(hierarchy[area_name], parameter)
            grad = hierarchy.project(key, grad)  # modular wiring (cortexsim.model.wiring)
            self.update(hierarchy, key, getattr(hierarchy[area_name], parameter), grad)

    def update(self, hierarchy: Hierarchy, key: ParameterKey, param: Any, grad: Any) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """The step count and every kept slot, as host arrays (scratch excluded)."""
        return {
            "steps": self.steps,
            "slots": {
                (kind, key): self._backend.to_numpy(array)
                for (kind, key), array in self.slots.items()
                if kind != "tmp"
            },
        }

    def load_state_dict(self, hierarchy: Hierarchy, state: dict[str, Any]) -> None:
        """Restore a ``state_dict`` onto ``hierarchy``'s backend."""
        self.steps = int(state["steps"])
        self.slots = {
            (kind, key): hierarchy.backend.asarray(array)
            for (kind, key), array in state["slots"].items()
        }
        self._backend = hierarchy.backend

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr})"


class SGD(Optimizer):
    """Plain gradient descent, ``theta -= lr * g``."""

    name = "sgd"

    def update(self, hierarchy: Hierarchy, key: ParameterKey, param: Any, grad: Any) -> None:
        be = hierarchy.backend
        param -= be.multiply(grad, self.lr, out=self.slot(hierarchy, "tmp", key, param))


class Momentum(Optimizer):
    """Heavy-ball momentum, ``v = momentum * v + g``, ``theta -= lr * v``."""

    name = "momentum"

    def __init__(self, lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay)
        self.momentum = check_number(momentum, "optimizer.momentum", positive=True, below=1.0)

    def update(self, hierarchy: Hierarchy, key: ParameterKey, param: Any, grad: Any) -> None:
        be = hierarchy.backend
        velocity = self.slot(hierarchy, "velocity", key, param)
        velocity *= self.momentum
        velocity += grad
        param -= be.multiply(velocity, self.lr, out=self.slot(hierarchy, "tmp", key, param))


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction.

    The corrections are folded into the step size and epsilon,
    ``theta -= lr_t m / (sqrt(v) + eps_t)`` with
    ``lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)`` and ``eps_t = eps sqrt(1 - b2^t)``,
    which equals ``lr m_hat / (sqrt(v_hat) + eps)`` exactly.
    """

    name = "adam"

    def __init__(
        self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr, weight_decay)
        self.beta1 = check_number(beta1, "optimizer.beta1", positive=True, below=1.0)
        self.beta2 = check_number(beta2, "optimizer.beta2", positive=True, below=1.0)
        self.eps = check_number(eps, "optimizer.eps", positive=True)

    def update(self, hierarchy: Hierarchy, key: ParameterKey, param: Any, grad: Any) -> None:
        be = hierarchy.backend
        m = self.slot(hierarchy, "m", key, param)
        v = self.slot(hierarchy, "v", key, param)
        tmp = self.slot(hierarchy, "tmp", key, param)
        correction = math.sqrt(1.0 - self.beta2**self.steps)
        lr_t = self.lr * correction / (1.0 - self.beta1**self.steps)
        m *= self.beta1
        m += be.multiply(grad, 1.0 - self.beta1, out=tmp)
        v *= self.beta2
        be.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - self.beta2
        v += tmp
        be.sqrt(v, out=tmp)
        tmp += self.eps * correction
        be.divide(m, tmp, out=tmp)
        tmp *= lr_t
        param -= tmp


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "adam": Adam}


def make_optimizer(name: str, **settings: Any) -> Optimizer:
    """Construct an optimizer by name with keyword settings."""
    if name not in OPTIMIZERS:
        raise invalid(
            "optimizer.name",
            f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}"
            f"{did_you_mean(name, OPTIMIZERS)}",
        )
    return OPTIMIZERS[name](**settings)
