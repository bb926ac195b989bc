"""The elementwise work of one relaxation step, in as few passes as possible.

``relax_discriminative`` spends its time in two kinds of work: the matrix
products, which BLAS runs on every core, and a dozen elementwise passes per
area and step (errors, derivative, their product, the activity update), each a
separate NumPy call over the whole batch. The three functions here do each
group of those passes at once:

``errors``      eps = pi (mu - pred),  f'(a),  g = eps * f'(a),  |eps|^2
``descend``     mu <- mu + s (d - eps)            (d = g_{l+1} @ W_{l+1}^T)
``gram_step``   <u, g>, <G, g>;  u <- c u + G;  S <- c S + g;  a <- u / pi + a_sweep
                (area 1 relaxed through the Gram matrix, predictive_coding.py)

Two implementations give the same numbers to float rounding:

- ``"numba"``: each function one compiled pass over the arrays (Numba, the
  optional extra ``cortexsim[fast]``), on the ``numpy`` backend in float32 and
  float64. Transcendentals stay with NumPy (its vectorized ``tanh`` is many
  times faster than a scalar one in a compiled loop), so ``pred = f(a)`` comes in
  computed.
- ``"numpy"``: the same arithmetic as separate ufunc calls through the backend,
  for every backend (NumPy, CuPy, the strict array-API stand-in) and whenever
  Numba is not installed.

``use(name)`` chooses for the process (``"auto"``: Numba where it can run);
the environment variable ``CORTEXSIM_KERNELS`` sets the starting choice.
"""

from __future__ import annotations

import importlib.util
import os
from functools import cache
from typing import Any

from ..backend import Backend
from ..errors import ConfigurationError
from ..model.nonlinear import Activation

__all__ = ["KERNELS", "active", "descend", "errors", "gram_step", "use"]

KERNELS = ("auto", "numba", "numpy")
# Activations whose derivative the compiled pass forms itself, by code.
_DERIVATIVE_CODES = {"linear": 0, "tanh": 1, "sigmoid": 2, "relu": 3}
_choice = os.environ.get("CORTEXSIM_KERNELS", "auto")


def use(name: str) -> None:
    """Choose the implementation for this process: ``"auto"``, ``"numba"`` or ``"numpy"``."""
    global _choice
    if name not in KERNELS:
        raise ConfigurationError(f"kernels: unknown implementation {name!r}; allowed: {', '.join(KERNELS)}")
    if name == "numba" and importlib.util.find_spec("numba") is None:
        raise ConfigurationError("kernels: 'numba' needs Numba: pip install 'cortexsim[fast]'")
    _choice = name


def active(be: Backend) -> str:
    """The implementation the hot loops use on backend ``be``."""
    if _choice not in KERNELS:
        raise ConfigurationError(
            f"CORTEXSIM_KERNELS: unknown implementation {_choice!r}; allowed: {', '.join(KERNELS)}")
    if _choice == "numpy" or be.name != "numpy":
        return "numpy"
    if _choice == "numba" or importlib.util.find_spec("numba") is not None:
        return "numba"
    return "numpy"


def _compiled(be: Backend, *arrays: Any) -> bool:
    return active(be) == "numba" and all(a.flags.c_contiguous for a in arrays)


def errors(be: Backend, activation: Activation, a: Any, pred: Any, mu: Any, precision: float,
           eps: Any, fprime: Any, g: Any) -> tuple[Any, Any | None, Any]:
    """Area errors from its prediction ``pred = f(a)``: writes ``eps = pi (mu - pred)``,
    ``fprime = f'(a)`` and ``g = eps * f'(a)``; returns ``(|eps|^2, fprime, g)``, with
    ``fprime`` None and ``g`` the ``eps`` array itself for a linear area."""
    code = _DERIVATIVE_CODES.get(activation.name)
    if code is not None and _compiled(be, a, pred, mu, eps, fprime, g):
        squares = _numba()["errors"](code, a, pred, mu, precision, eps, fprime, g)
        if code == 0:
            return squares, None, eps
        return squares, fprime, g
    e = be.subtract(mu, pred, out=eps)
    if precision != 1.0:
        e *= precision
    d = activation.derivative(be, a, pred, fprime)
    return be.sum_of_squares(e), d, (e if d is None else be.multiply(e, d, out=g))


def descend(be: Backend, mu: Any, d: Any, eps: Any, step_size: float) -> None:
    """The Euler step of a latent area, ``mu += s (d - eps)``; ``d`` is overwritten."""
    if _compiled(be, mu, d, eps):
        _numba()["descend"](mu, d, eps, step_size)
        return
    d -= eps
    d *= step_size
    mu += d


def gram_step(be: Backend, u: Any, G: Any, S: Any, g: Any, c: float, inv_precision: float,
              a_sweep: Any, a: Any) -> tuple[Any, Any]:
    """One step of area 1 through the Gram matrix: returns ``(<u, g>, <G, g>)`` of the
    values before the step, then ``u <- c u + G``, ``S <- c S + g`` and
    ``a <- u * inv_precision + a_sweep`` (area 2's next pre-activation)."""
    if _compiled(be, u, G, S, g, a_sweep, a):
        return _numba()["gram_step"](u, G, S, g, c, inv_precision, a_sweep, a)
    ug, Gg = be.inner(u, g), be.inner(G, g)
    u *= c
    u += G
    S *= c
    S += g
    be.multiply(u, inv_precision, out=a)
    a += a_sweep
    return ug, Gg


@cache
def _numba() -> dict[str, Any]:
    """Compile the passes (once per process; Numba caches the machine code on disk)."""
    import numba

    # contract: fused multiply-adds; reassoc: vectorized sums. Both change
    # results only by rounding.
    jit = numba.njit(fastmath={"contract", "reassoc"}, cache=True, nogil=True)

    @jit
    def errors_pass(code, a, pred, mu, precision, eps, fprime, g):  # pragma: no cover - compiled
        rows, cols = a.shape
        total = 0.0
        for i in range(rows):
            for j in range(cols):
                e = precision * (mu[i, j] - pred[i, j])
                eps[i, j] = e
                total += e * e
                if code == 0:
                    continue
                p = pred[i, j]
                if code == 1:
                    d = 1.0 - p * p
                elif code == 2:
                    d = p * (1.0 - p)
                else:
                    d = 1.0 if a[i, j] > 0 else 0.0
                fprime[i, j] = d
                g[i, j] = e * d
        return total

    @jit
    def descend_pass(mu, d, eps, step_size):  # pragma: no cover - compiled
        rows, cols = mu.shape
        for i in range(rows):
            for j in range(cols):
                mu[i, j] += step_size * (d[i, j] - eps[i, j])

    @jit
    def gram_pass(u, G, S, g, c, inv_precision, a_sweep, a):  # pragma: no cover - compiled
        rows, cols = u.shape
        ug = 0.0
        Gg = 0.0
        for i in range(rows):
            for j in range(cols):
                gij = g[i, j]
                uij = u[i, j]
                Gij = G[i, j]
                ug += uij * gij
                Gg += Gij * gij
                uij = c * uij + Gij
                u[i, j] = uij
                S[i, j] = c * S[i, j] + gij
                a[i, j] = uij * inv_precision + a_sweep[i, j]
        return ug, Gg

    return {"errors": errors_pass, "descend": descend_pass, "gram_step": gram_pass}
