"""Optimizers on raw arrays (SGD, momentum, RMSprop, Adam) and learning-rate
schedules.

``step(hierarchy, gradients)`` changes the hierarchy's parameters in place
(``theta <- theta - update``), writing through preallocated buffers so a step
allocates nothing after the first. The step size of a parameter is
``lr * factor`` (``feedback_lr * factor`` for the generative pathway,
``W_fb*``/``b_fb*``, when ``feedback_lr`` is given: Lee et al. 2015 trained
the inverses at their own rate); a ``Schedule`` sets ``factor`` before every
batch from the position in the run (epoch, step), so a resumed run continues
the schedule exactly.

Settings errors name ``optimizer.KEY``; a study validating inside
``located("rules[0].optimizer", owner="optimizer")`` (cortexsim.validation)
has them name the table the user wrote.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

from .errors import did_you_mean
from .inference import kernels
from .model.hierarchy import Hierarchy, ParameterKey
from .validation import check_bool, check_int, check_number, invalid

__all__ = [
    "Optimizer", "SGD", "Momentum", "RMSprop", "Adam", "OPTIMIZERS", "make_optimizer",
    "Schedule", "SCHEDULES", "make_schedule",
]


class Optimizer:
    """Base class: keeps per-parameter state and a scratch buffer per parameter.

    ``weight_decay`` adds ``weight_decay * W`` to the gradient of every weight
    matrix (not the biases) before the update: a Gaussian prior on the weights,
    ``(weight_decay / 2) |W|^2`` in the energy (Rao & Ballard 1999).
    """

    name = "optimizer"

    def __init__(self, lr: float, weight_decay: float = 0.0, feedback_lr: float | None = None) -> None:
        self.lr = check_number(lr, "optimizer.lr", positive=True)
        self.feedback_lr = (None if feedback_lr is None
                            else check_number(feedback_lr, "optimizer.feedback_lr", positive=True))
        self.factor = 1.0  # set by a learning-rate Schedule before each batch
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
            self.update(hierarchy, key, getattr(hierarchy[area_name], parameter), grad,
                        self.learning_rate(parameter))

    def learning_rate(self, parameter: str) -> float:
        """The step size of ``parameter`` (``"W_ff"``, ``"b_fb"``, ...) at this step."""
        if self.feedback_lr is not None and parameter.startswith(("W_fb", "b_fb")):
            return self.feedback_lr * self.factor
        return self.lr * self.factor

    def update(self, hierarchy: Hierarchy, key: ParameterKey, param: Any, grad: Any, lr: float) -> None:
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

    def update(self, hierarchy: Hierarchy, key: ParameterKey, param: Any, grad: Any, lr: float) -> None:
        be = hierarchy.backend
        param -= be.multiply(grad, lr, out=self.slot(hierarchy, "tmp", key, param))


class Momentum(Optimizer):
    """Momentum as Sutskever, Martens, Dahl & Hinton (2013, eqs. 1-4) write it::

        v <- momentum v - lr g,          theta <- theta + v          (classical)
        v <- momentum v - lr g(theta + momentum v)                    (nesterov)

    Nesterov's gradient at the look-ahead point is taken in the usual
    reparametrisation (Bengio, Boulanger-Lewandowski & Pascanu 2013), which
    needs only the gradient at ``theta``:
    ``theta <- theta + momentum^2 v_old - (1 + momentum) lr g``, i.e.
    ``theta <- theta + momentum v_new - lr g``.
    The learning rate enters when a gradient is added, so a schedule changes
    the size of new steps, not of the velocity already gathered.
    """

    name = "momentum"

    def __init__(
        self, lr: float, momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 0.0,
        feedback_lr: float | None = None,
    ) -> None:
        super().__init__(lr, weight_decay, feedback_lr)
        self.momentum = check_number(momentum, "optimizer.momentum", positive=True, below=1.0)
        self.nesterov = check_bool(nesterov, "optimizer.nesterov")

    def update(self, hierarchy: Hierarchy, key: ParameterKey, param: Any, grad: Any, lr: float) -> None:
        be = hierarchy.backend
        velocity = self.slot(hierarchy, "velocity", key, param)
        tmp = self.slot(hierarchy, "tmp", key, param)
        velocity *= self.momentum
        velocity -= be.multiply(grad, lr, out=tmp)
        if self.nesterov:
            param += be.multiply(velocity, self.momentum, out=tmp)
            param -= be.multiply(grad, lr, out=tmp)
        else:
            param += velocity


class RMSprop(Optimizer):
    """RMSprop (Tieleman & Hinton 2012, lecture 6.5), optionally centred and
    with momentum (Graves 2013, "Generating sequences with recurrent neural
    networks", eqs. 38-41)::

        n <- rho n + (1 - rho) g^2
        g_bar <- rho g_bar + (1 - rho) g                      (centered only)
        d = n - g_bar^2  (centered)  or  n
        s = sqrt(d) + eps            or  sqrt(d + eps)        (eps_inside_sqrt)
        v <- momentum v - lr g / s,     theta <- theta + v

    With ``momentum = 0`` this is ``theta -= lr g / s``. Lee et al.'s
    difference target propagation code (2015) uses the centred form with the
    stabiliser inside the root: ``rho = 0.95``, ``eps = 0.001``,
    ``centered = true``, ``eps_inside_sqrt = true``, ``momentum = 0.9``.
    """

    name = "rmsprop"

    def __init__(
        self, lr: float = 1e-3, rho: float = 0.9, eps: float = 1e-8, centered: bool = False,
        eps_inside_sqrt: bool = False, momentum: float = 0.0, weight_decay: float = 0.0,
        feedback_lr: float | None = None,
    ) -> None:
        super().__init__(lr, weight_decay, feedback_lr)
        self.rho = check_number(rho, "optimizer.rho", positive=True, below=1.0)
        self.eps = check_number(eps, "optimizer.eps", positive=True)
        self.centered = check_bool(centered, "optimizer.centered")
        self.eps_inside_sqrt = check_bool(eps_inside_sqrt, "optimizer.eps_inside_sqrt")
        self.momentum = check_number(momentum, "optimizer.momentum", below=1.0)
        if self.momentum < 0:
            raise invalid("optimizer.momentum", f"must be >= 0, got {momentum!r}")

    def update(self, hierarchy: Hierarchy, key: ParameterKey, param: Any, grad: Any, lr: float) -> None:
        be = hierarchy.backend
        mean_square = self.slot(hierarchy, "mean_square", key, param)
        tmp = self.slot(hierarchy, "tmp", key, param)
        mean_square *= self.rho
        be.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - self.rho
        mean_square += tmp
        if self.centered:
            mean = self.slot(hierarchy, "mean", key, param)
            mean *= self.rho
            mean += be.multiply(grad, 1.0 - self.rho, out=tmp)
            be.multiply(mean, mean, out=tmp)
            be.subtract(mean_square, tmp, out=tmp)
        else:
            tmp[...] = mean_square
        if self.eps_inside_sqrt:
            tmp += self.eps
            be.sqrt(tmp, out=tmp)
        else:
            be.sqrt(tmp, out=tmp)
            tmp += self.eps
        be.divide(grad, tmp, out=tmp)
        tmp *= lr
        if self.momentum:
            velocity = self.slot(hierarchy, "velocity", key, param)
            velocity *= self.momentum
            velocity -= tmp
            param += velocity
        else:
            param -= tmp


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
        weight_decay: float = 0.0, feedback_lr: float | None = None,
    ) -> None:
        super().__init__(lr, weight_decay, feedback_lr)
        self.beta1 = check_number(beta1, "optimizer.beta1", positive=True, below=1.0)
        self.beta2 = check_number(beta2, "optimizer.beta2", positive=True, below=1.0)
        self.eps = check_number(eps, "optimizer.eps", positive=True)

    def update(self, hierarchy: Hierarchy, key: ParameterKey, param: Any, grad: Any, lr: float) -> None:
        be = hierarchy.backend
        m = self.slot(hierarchy, "m", key, param)
        v = self.slot(hierarchy, "v", key, param)
        correction = math.sqrt(1.0 - self.beta2**self.steps)
        lr_t = lr * correction / (1.0 - self.beta1**self.steps)
        if kernels.active(be) == "numba" and all(a.flags.c_contiguous for a in (param, grad, m, v)):
            cast = param.dtype.type  # float32 arrays keep float32 arithmetic
            _fused_adam()(param, grad, m, v, cast(self.beta1), cast(self.beta2), cast(lr_t),
                          cast(self.eps * correction))
            return
        tmp = self.slot(hierarchy, "tmp", key, param)
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


@cache
def _fused_adam() -> Any:
    """Adam's update of one parameter as a single compiled pass (inference/kernels.py
    says when Numba is used); the same arithmetic as ``Adam.update``'s NumPy form."""
    import numba
    import numpy as np

    @numba.njit(fastmath={"contract"}, error_model="numpy", cache=True, nogil=True)
    def adam_pass(param, grad, m, v, beta1, beta2, lr_t, eps_t):  # pragma: no cover - compiled
        param, grad, m, v = param.ravel(), grad.ravel(), m.ravel(), v.ravel()
        for i in range(param.shape[0]):
            g = grad[i]
            mi = beta1 * m[i] + (1 - beta1) * g
            vi = beta2 * v[i] + (1 - beta2) * (g * g)
            m[i] = mi
            v[i] = vi
            param[i] -= lr_t * (mi / (np.sqrt(vi) + eps_t))

    return adam_pass


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "rmsprop": RMSprop, "adam": Adam}


def make_optimizer(name: str, **settings: Any) -> Optimizer:
    """Construct an optimizer by name with keyword settings."""
    if name not in OPTIMIZERS:
        raise invalid(
            "optimizer.name",
            f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}"
            f"{did_you_mean(name, OPTIMIZERS)}",
        )
    return OPTIMIZERS[name](**settings)


# -- learning-rate schedules -------------------------------------------------------
class Schedule:
    """A learning-rate schedule: ``factor(epoch, step)`` multiplies every base
    rate of the optimizer for the batch at (``epoch``, 0-based, and ``step``,
    batches completed over the run).

    ``warmup_steps = W`` ramps linearly over the first W batches,
    ``factor *= min(1, (step + 1) / W)`` (Goyal et al. 2017, gradual warm-up),
    on top of any kind.
    """

    kind = "constant"

    def __init__(self, warmup_steps: int = 0) -> None:
        self.warmup_steps = check_int(warmup_steps, "schedule.learning_rate.warmup_steps")

    def decay(self, epoch: int) -> float:
        return 1.0

    def factor(self, epoch: int, step: int) -> float:
        factor = self.decay(epoch)
        if self.warmup_steps:
            factor *= min(1.0, (step + 1) / self.warmup_steps)
        return factor

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({settings})"


class StepDecay(Schedule):
    """``factor = gamma ** floor(epoch / every)``: a drop every ``every`` epochs."""

    kind = "step"

    def __init__(self, every: int, gamma: float = 0.1, warmup_steps: int = 0) -> None:
        super().__init__(warmup_steps)
        self.every = check_int(every, "schedule.learning_rate.every", minimum=1)
        self.gamma = check_number(gamma, "schedule.learning_rate.gamma", positive=True)

    def decay(self, epoch: int) -> float:
        return self.gamma ** (epoch // self.every)


class ExponentialDecay(Schedule):
    """``factor = gamma ** epoch``."""

    kind = "exponential"

    def __init__(self, gamma: float, warmup_steps: int = 0) -> None:
        super().__init__(warmup_steps)
        self.gamma = check_number(gamma, "schedule.learning_rate.gamma", positive=True)

    def decay(self, epoch: int) -> float:
        return self.gamma**epoch


class StagedDecay(Schedule):
    """Burda, Grosse & Salakhutdinov (2016, section 5): stage ``i = 0, 1, ...``
    lasts ``base ** i`` epochs at ``factor = gamma ** i`` (they used base 3,
    gamma ``10 ** (-1/7)`` and stages 0 to 7, 3,280 epochs in all); after the
    last of ``stages`` stages the rate stays at the last stage's."""

    kind = "staged"

    def __init__(self, base: int = 3, gamma: float = 10 ** (-1 / 7), stages: int = 8,
                 warmup_steps: int = 0) -> None:
        super().__init__(warmup_steps)
        self.base = check_int(base, "schedule.learning_rate.base", minimum=1)
        self.gamma = check_number(gamma, "schedule.learning_rate.gamma", positive=True)
        self.stages = check_int(stages, "schedule.learning_rate.stages", minimum=1)

    def stage(self, epoch: int) -> int:
        """The stage ``epoch`` falls in: the first ``i`` with ``sum_{j<=i} base^j > epoch``."""
        end = 0
        for i in range(self.stages):
            end += self.base**i
            if epoch < end:
                return i
        return self.stages - 1

    def decay(self, epoch: int) -> float:
        return self.gamma ** self.stage(epoch)

    def epochs(self) -> int:
        """Epochs of all the stages together (3,280 for Burda et al.'s)."""
        return sum(self.base**i for i in range(self.stages))


SCHEDULES = {"constant": Schedule, "step": StepDecay, "exponential": ExponentialDecay,
             "staged": StagedDecay}


def make_schedule(kind: str = "constant", **settings: Any) -> Schedule:
    """A learning-rate schedule by kind (``[schedule.learning_rate]`` of a study)."""
    if kind not in SCHEDULES:
        raise invalid(
            "schedule.learning_rate.kind",
            f"unknown schedule {kind!r}; allowed: {', '.join(SCHEDULES)}{did_you_mean(kind, SCHEDULES)}",
        )
    return SCHEDULES[kind](**settings)
