"""Shared fixture and helpers: every numeric test runs on every usable backend.

Test modules import the helpers with ``from conftest import ...`` (pytest puts
this folder on ``sys.path`` when it loads the rootdir conftest).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import cortexsim
from cortexsim import HierarchySpec, build

BACKEND_NAMES = ("numpy", "array_api_strict", "cupy")


def _backend_params():
    status = cortexsim.available_backends()
    params = []
    for name in BACKEND_NAMES:
        reason = status.get(name)
        marks = () if reason is None else (pytest.mark.skip(reason=f"{name}: {reason}"),)
        params.append(pytest.param(name, id=name, marks=marks))
    return params


@pytest.fixture(params=_backend_params())
def backend_name(request) -> str:
    """Name of an array backend usable on this machine."""
    return request.param


# -- helpers ------------------------------------------------------------------


def build64(spec: HierarchySpec, backend_name: str, seed: int = 0):
    """Build ``spec`` in float64 on ``backend_name``."""
    return build(spec, backend=backend_name, dtype="float64", seed=seed)


def build32(spec: HierarchySpec, backend_name: str, seed: int = 0):
    """Build ``spec`` in float32 on ``backend_name``."""
    return build(spec, backend=backend_name, dtype="float32", seed=seed)


def to_np(hierarchy_or_backend, x) -> np.ndarray:
    """Host float64 copy of a backend array (None passes through)."""
    if x is None:
        return None
    be = getattr(hierarchy_or_backend, "backend", hierarchy_or_backend)
    return np.asarray(be.to_numpy(x), dtype=np.float64)


def put(hierarchy, host) -> object:
    """Copy a host array onto the hierarchy's backend in its dtype."""
    return hierarchy.backend.asarray(np.asarray(host))


def grads_to_np(hierarchy, grads) -> dict:
    """Host float64 copies of a gradient dictionary."""
    return {key: to_np(hierarchy, value) for key, value in grads.items()}


def flatten(grads: dict, keys=None) -> np.ndarray:
    """Concatenate gradients (host arrays) in a fixed key order."""
    keys = sorted(grads) if keys is None else keys
    return np.concatenate([np.ravel(grads[k]) for k in keys])


def rel_err(a, b) -> float:
    """max |a - b| / max(max |b|, tiny): a scale-aware relative error."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-300)
    return float(np.max(np.abs(a - b))) / scale if a.size else 0.0


def cosine(a, b) -> float:
    a = np.ravel(a)
    b = np.ravel(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# -- an independent NumPy reference of the maths ------------------------------

_GELU_C = math.sqrt(2.0 / math.pi)


def np_act(name: str, a: np.ndarray) -> np.ndarray:
    """The activations, written out independently of cortexsim."""
    if name == "linear":
        return a
    if name == "tanh":
        return np.tanh(a)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-a))
    if name == "relu":
        return np.where(a > 0, a, 0.0)
    if name == "gelu":
        return 0.5 * a * (1.0 + np.tanh(_GELU_C * (a + 0.044715 * a**3)))
    raise ValueError(name)


def np_forward(params: dict, names, activations, x: np.ndarray):
    """Recognition sweep; returns (pre-activations, activities) per area."""
    pre, act = [None], [x]
    for l in range(1, len(names)):
        a = act[-1] @ params[(names[l], "W_ff")] + params[(names[l], "b_ff")]
        pre.append(a)
        act.append(np_act(activations[l], a))
    return pre, act


def np_loss(loss: str, a_top: np.ndarray, out: np.ndarray, y: np.ndarray) -> float:
    """Batch-mean loss: MSE on the activity or softmax cross-entropy on a_top."""
    if loss == "mse":
        return float(np.mean(0.5 * np.sum((y - out) ** 2, axis=1)))
    z = a_top - a_top.max(axis=1, keepdims=True)
    logp = z - np.log(np.sum(np.exp(z), axis=1, keepdims=True))
    return float(np.mean(-np.sum(y * logp, axis=1)))


def spec_info(spec: HierarchySpec):
    return [a.name for a in spec.areas], [a.activation for a in spec.areas]


def np_total_loss(spec, params, x, y, loss) -> float:
    names, acts = spec_info(spec)
    pre, act = np_forward(params, names, acts, x)
    return np_loss(loss, pre[-1], act[-1], y)


def central_difference(f, params: dict, key, h: float = 1e-6) -> np.ndarray:
    """Central finite differences of scalar f(params) w.r.t. params[key]."""
    base = params[key]
    grad = np.zeros_like(base)
    for index in np.ndindex(base.shape):
        old = base[index]
        base[index] = old + h
        plus = f(params)
        base[index] = old - h
        minus = f(params)
        base[index] = old
        grad[index] = (plus - minus) / (2.0 * h)
    return grad


def random_data(rng: np.random.Generator, batch: int, n_in: int, n_out: int, loss: str):
    """Inputs and targets for ``loss``: Gaussian targets (mse) or one-hot labels."""
    x = rng.normal(size=(batch, n_in))
    if loss == "mse":
        y = rng.normal(size=(batch, n_out))
    else:
        y = np.eye(n_out)[rng.integers(0, n_out, size=batch)]
    return x, y


def digits_backprop_study(name: str, seeds: str, epochs: int, checkpoint_every: int) -> str:
    """A study file of backprop on ``digits`` (64-16-10, tanh), label ``bp``:
    small enough to run, kill and resume from the command line in seconds."""
    return f"""
[study]
name = "{name}"
seeds = {seeds}

[[model.areas]]
name = "pixels"
size = 64

[[model.areas]]
name = "hidden"
size = 16
activation = "tanh"

[[model.areas]]
name = "labels"
size = 10
activation = "linear"

[data]
name = "digits"

[schedule]
epochs = {epochs}
batch_size = 64
checkpoint_every = {checkpoint_every}

[[rules]]
rule = "backprop"
label = "bp"
"""
