"""The elementwise work of one relaxation step, in as few passes as possible.

``relax_discriminative`` spends its time in two kinds of work: the matrix
products, which BLAS runs on every core, and a dozen elementwise passes per
area and step (errors, derivative, their product, the activity update), each a
separate NumPy call over the whole batch. The three functions here do each
group of those passes at once:

``errors``      eps = pi (mu - pred),  g = eps * f'(a),  |eps|^2
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
# Activations whose derivative the compiled pass forms itself (GELU's needs a tanh).
_COMPILED_DERIVATIVES = ("linear", "tanh", "sigmoid", "relu")
_choice = os.environ.get("CORTEXSIM_KERNELS", "auto")
PARALLEL_ABOVE = 1 << 17  # elements from which a pass is split over threads


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
    if _choice == "numba" or _numba_installed():
        return "numba"
    return "numpy"


@cache
def _numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


def _compiled(be: Backend, *arrays: Any) -> bool:
    if active(be) != "numba":
        return False
    for a in arrays:
        if not a.flags.c_contiguous:
            return False
    return True


def _scalar(like: Any, value: float) -> Any:
    """A Python number in the arrays' dtype, so float32 arithmetic stays float32."""
    return like.dtype.type(value)


def errors(be: Backend, activation: Activation, a: Any, pred: Any, mu: Any, precision: float,
           eps: Any, g: Any, scratch: Any) -> tuple[Any, Any]:
    """Area errors from its prediction ``pred = f(a)``: writes ``eps = pi (mu - pred)``
    and ``g = eps * f'(a)``; returns ``(|eps|^2, g)``, ``g`` being the ``eps`` array
    itself for a linear area. ``scratch`` (like ``a``) may be overwritten."""
    if activation.name in _COMPILED_DERIVATIVES and _compiled(be, a, pred, mu, eps, g):
        squares = _pass(f"errors.{activation.name}", a)(a, pred, mu, _scalar(a, precision), eps, g)
        return squares, (eps if activation.is_linear else g)
    e = be.subtract(mu, pred, out=eps)
    if precision != 1.0:
        e *= precision
    d = activation.derivative(be, a, pred, scratch)
    return be.sum_of_squares(e), (e if d is None else be.multiply(e, d, out=g))


def descend(be: Backend, mu: Any, d: Any, eps: Any, step_size: float) -> None:
    """The Euler step of a latent area, ``mu += s (d - eps)``; ``d`` is overwritten."""
    if _compiled(be, mu, d, eps):
        _pass("descend", mu)(mu, d, eps, _scalar(mu, step_size))
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
        return _pass("gram_step", u)(u, G, S, g, _scalar(u, c), _scalar(u, inv_precision), a_sweep, a)
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
    """Compile the passes (once per process; Numba caches the machine code on disk).

    Each pass comes twice: one loop on the calling thread, and one split over
    Numba's threads, which pays from about 2^17 elements (``PARALLEL_ABOVE``):
    on two cores the split took 5.6 us against 5.0 for the Euler step of a
    128 x 256 area, and 79 us against 151 for a 1024 x 1024 one."""
    import numba

    # contract: fused multiply-adds; reassoc: vectorized sums. Both change
    # results only by rounding.
    options = {"fastmath": {"contract", "reassoc"}, "error_model": "numpy", "cache": True, "nogil": True}
    serial = numba.njit(**options)
    split = numba.njit(parallel=True, **options)
    prange = numba.prange

    def errors_pass(derivative):
        """The errors pass of one activation, its derivative inlined (a branch-free loop)."""

        def errors(a, pred, mu, precision, eps, g):  # pragma: no cover - compiled
            a, pred, mu, eps, g = a.ravel(), pred.ravel(), mu.ravel(), eps.ravel(), g.ravel()
            total = 0.0
            for i in prange(a.shape[0]):
                e = precision * (mu[i] - pred[i])
                eps[i] = e
                total += e * e
                g[i] = e * derivative(a[i], pred[i])
            return total

        return errors

    def linear_errors(a, pred, mu, precision, eps, g):  # pragma: no cover - compiled
        pred, mu, eps = pred.ravel(), mu.ravel(), eps.ravel()
        total = 0.0
        for i in prange(pred.shape[0]):
            e = precision * (mu[i] - pred[i])
            eps[i] = e
            total += e * e
        return total

    def descend_pass(mu, d, eps, step_size):  # pragma: no cover - compiled
        mu, d, eps = mu.ravel(), d.ravel(), eps.ravel()
        for i in prange(mu.shape[0]):
            mu[i] += step_size * (d[i] - eps[i])

    def gram_pass(u, G, S, g, c, inv_precision, a_sweep, a):  # pragma: no cover - compiled
        u, G, S, g, a_sweep, a = u.ravel(), G.ravel(), S.ravel(), g.ravel(), a_sweep.ravel(), a.ravel()
        ug = 0.0
        Gg = 0.0
        for i in prange(u.shape[0]):
            gi = g[i]
            ui = u[i]
            Gi = G[i]
            ug += ui * gi
            Gg += Gi * gi
            ui = c * ui + Gi
            u[i] = ui
            S[i] = c * S[i] + gi
            a[i] = ui * inv_precision + a_sweep[i]
        return ug, Gg

    inline = numba.njit(inline="always")
    derivatives = {
        "tanh": inline(lambda a, p: 1 - p * p),
        "sigmoid": inline(lambda a, p: p * (1 - p)),
        "relu": inline(lambda a, p: (p - p + 1) if a > 0 else (p - p)),  # 1 or 0 in the dtype
    }
    passes = {"errors.linear": linear_errors, "descend": descend_pass, "gram_step": gram_pass}
    passes |= {f"errors.{name}": errors_pass(d) for name, d in derivatives.items()}
    return {name: (serial(f), split(f)) for name, f in passes.items()}


def _pass(name: str, like: Any) -> Any:
    """The compiled pass ``name``, split over threads for arrays of ``PARALLEL_ABOVE`` elements or more."""
    return _numba()[name][like.size >= PARALLEL_ABOVE]
