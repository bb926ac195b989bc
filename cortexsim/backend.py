"""The array backend: which library holds the arrays, in which dtype, and the
only door between host and device.

A backend is chosen once, when a hierarchy is built. Model code receives
``backend.xp`` (an array-API namespace from ``array-api-compat``) and the few
``backend`` helpers below; it never asks which library is underneath.

Three backends exist:

``numpy``
    The default, on the CPU.
``cupy``
    NVIDIA GPUs (``pip install cortexsim[gpu]``).
``array_api_strict``
    A strict stand-in for tests: it implements only the array-API standard,
    so code that passes on it uses nothing CuPy lacks.

The hot loops need to write results into preallocated buffers, which the
standard cannot say (it has no ``out=``). The helpers ``matmul``, ``tanh``,
``multiply`` ... take an ``out`` buffer: on NumPy and CuPy they call the
library's ufunc with ``out=``; on the strict stand-in they compute the result
and assign it with ``out[...] = result``, so the buffer semantics are the same.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from .errors import BackendError, ConfigurationError, did_you_mean

__all__ = ["Backend", "get_backend", "available_backends", "BACKENDS", "DTYPES"]

BACKENDS = ("numpy", "cupy", "array_api_strict")
DTYPES = ("float32", "float64")

# Elementwise functions the hot loops call with an ``out=`` buffer.
_INTO = (
    "add",
    "subtract",
    "multiply",
    "divide",
    "tanh",
    "exp",
    "sqrt",
    "square",
    "negative",
    "matmul",
)

def _assign_into(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a standard function so that it writes into ``out`` like a ufunc."""

    def into(*args: Any, out: Any) -> Any:
        out[...] = function(*args)
        return out

    into.__name__ = getattr(function, "__name__", "into")
    return into


def _cupy_status() -> str | None:
    """Return why CuPy cannot be used, or None when it can."""
    if importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed (install it with: pip install 'cortexsim[gpu]')"
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA missing or broken: report, do not crash
        return f"CuPy is installed but no CUDA device is usable ({exc})"
    if count < 1:
        return "CuPy is installed but no GPU was found"
    return None


def available_backends() -> dict[str, str | None]:
    """Map each backend name to None when usable, else the reason it is not."""
    status: dict[str, str | None] = {"numpy": None}
    status["cupy"] = _cupy_status()
    status["array_api_strict"] = (
        None
        if importlib.util.find_spec("array_api_strict") is not None
        else "array_api_strict is not installed (pip install array-api-strict)"
    )
    return status


@dataclass(frozen=True, eq=False)
class Backend:
    """One array library and dtype, chosen when a model is built.

    Parameters
    ----------
    name : str
        ``"numpy"``, ``"cupy"`` or ``"array_api_strict"``.
    dtype_name : str
        ``"float32"`` (default) or ``"float64"`` (gradient checks).
    """

    name: str
    dtype_name: str = "float32"
    xp: ModuleType = field(init=False, repr=False)
    library: ModuleType = field(init=False, repr=False)
    dtype: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise ConfigurationError(
                f"backend: unknown backend {self.name!r}; allowed: "
                f"{', '.join(BACKENDS)}{did_you_mean(self.name, BACKENDS)}"
            )
        if self.dtype_name not in DTYPES:
            raise ConfigurationError(
                f"dtype: unknown dtype {self.dtype_name!r}; allowed: "
                f"{', '.join(DTYPES)}{did_you_mean(self.dtype_name, DTYPES)}"
            )
        if self.name == "cupy":
            reason = _cupy_status()
            if reason is not None:
                raise BackendError(
                    f"backend 'cupy' cannot be used: {reason}. "
                    "Choose backend 'numpy' to run on the CPU."
                )
            library = importlib.import_module("cupy")
            xp = importlib.import_module("array_api_compat.cupy")
        elif self.name == "array_api_strict":
            try:
                library = importlib.import_module("array_api_strict")
            except ImportError as exc:
                raise BackendError(
                    "backend 'array_api_strict' needs the package array-api-strict "
                    "(pip install array-api-strict)"
                ) from exc
            xp = library
        else:
            library = np
            xp = importlib.import_module("array_api_compat.numpy")
        set_ = object.__setattr__
        set_(self, "library", library)
        set_(self, "xp", xp)
        set_(self, "dtype", getattr(xp, self.dtype_name))
        native = self.name in ("numpy", "cupy")
        for name in _INTO:
            function = getattr(library, name)
            set_(self, name, function if native else _assign_into(function))

    # -- creation -------------------------------------------------------
    def asarray(self, host: Any, dtype: Any = None) -> Any:
        """Copy a host array (or nested sequence) onto the backend."""
        dtype = self.dtype if dtype is None else dtype
        if self.name == "array_api_strict":
            host = np.asarray(host)
        # copy=True: NumPy would otherwise alias a host array of the same dtype,
        # and in-place updates (optimizers) would write into the caller's array.
        return self.xp.asarray(host, dtype=dtype, copy=True)

    def zeros(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        """A zero-filled array on the backend."""
        return self.xp.zeros(shape, dtype=self.dtype if dtype is None else dtype)

    def empty(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        """An uninitialised array on the backend (for buffers written before read)."""
        return self.xp.empty(shape, dtype=self.dtype if dtype is None else dtype)

    def copy(self, x: Any) -> Any:
        """A fresh copy of a backend array."""
        return self.xp.asarray(x, copy=True)

    # -- the host/device boundary ---------------------------------------
    def to_numpy(self, x: Any) -> np.ndarray:
        """Copy a backend array into a new host ``numpy.ndarray`` (the only way out)."""
        if self.name == "cupy":
            return self.library.asnumpy(x)
        if self.name == "array_api_strict":
            return np.array(np.from_dlpack(x), copy=True)
        return np.array(x, copy=True)

    def scalar(self, x: Any) -> float:
        """Bring a 0-d backend value to the host as a Python float (syncs a GPU)."""
        return float(self.to_numpy(x))

    # -- reductions the hot loops need ----------------------------------
    def sum_of_squares(self, x: Any) -> Any:
        """``sum(x**2)`` over every element, as a 0-d backend array."""
        if self.name == "array_api_strict":
            return self.xp.sum(x * x)
        return self.library.vdot(x, x)

    def inner(self, x: Any, y: Any) -> Any:
        """``sum(x * y)`` over every element, as a 0-d backend array."""
        if self.name == "array_api_strict":
            return self.xp.sum(x * y)
        return self.library.vdot(x, y)

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, {self.dtype_name!r})"


def get_backend(name: str | Backend = "numpy", dtype: str = "float32") -> Backend:
    """Return a ``Backend`` for ``name`` and ``dtype`` (a ``Backend`` passes through)."""
    if isinstance(name, Backend):
        return name
    return Backend(name, dtype)


def host_rng(seed: int | np.random.SeedSequence) -> np.random.Generator:
    """A seeded host generator; initial weights are drawn here on every backend."""
    return np.random.default_rng(seed)
