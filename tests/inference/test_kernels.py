"""The fused elementwise passes (inference/kernels.py): the compiled pass and
the NumPy fallback write the same arrays, and a float32 relaxation with either
agrees with the float64 reference."""

import numpy as np
import pytest

from conftest import build32, build64, put, random_data, to_np
from cortexsim import HierarchySpec, Relaxation, get_backend
from cortexsim.errors import ConfigurationError
from cortexsim.inference import kernels, relax_discriminative
from cortexsim.inference.reference import reference_discriminative
from cortexsim.model.losses import get_loss
from cortexsim.model.nonlinear import ACTIVATIONS

numba = pytest.importorskip("numba")


@pytest.fixture(params=["serial", "split"])
def restore(request, monkeypatch):
    """Each comparison with the compiled passes on one thread and split over threads."""
    if request.param == "split":
        monkeypatch.setattr(kernels, "PARALLEL_ABOVE", 0)
    yield
    kernels.use("auto")


def both(function, dtype, *shapes, seed=0):
    """Run ``function(be, *arrays)`` with each implementation on copies of the same
    random arrays; return the arrays and results of each."""
    be = get_backend("numpy", dtype)
    host = [np.random.default_rng(seed + i).normal(size=s).astype(dtype) for i, s in enumerate(shapes)]
    out = {}
    for name in ("numba", "numpy"):
        kernels.use(name)
        arrays = [a.copy() for a in host]
        result = function(be, *arrays)
        out[name] = (arrays, result)
    return out


def close(a, b, dtype):
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_errors_pass_equals_the_fallback(name, dtype, restore):
    activation = ACTIVATIONS[name]

    def run(be, a, mu, eps, g, scratch):
        pred = activation(be, a)
        squares, gg = kernels.errors(be, activation, a, pred, mu, 0.7, eps, g, scratch)
        assert (gg is eps) == (name == "linear")
        return float(squares), gg.copy(), eps.copy()

    got = both(run, dtype, *[(9, 13)] * 5)
    (s1, g1, e1), (s2, g2, e2) = got["numba"][1], got["numpy"][1]
    close(s1, s2, dtype)
    close(e1, e2, dtype)
    close(g1, g2, dtype)
    be = get_backend("numpy", dtype)
    a, mu = got["numpy"][0][0], got["numpy"][0][1]
    np.testing.assert_allclose(e2, 0.7 * (mu - activation(be, a)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g2, e2 * activation.grad(be, a), rtol=1e-5, atol=1e-6)
    close(s2, float(np.sum(e2.astype(float) ** 2)), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_descend_and_gram_passes_equal_the_fallback(dtype, restore):
    got = both(lambda be, mu, d, eps: kernels.descend(be, mu, d, eps, 0.3), dtype, *[(7, 5)] * 3)
    close(got["numba"][0][0], got["numpy"][0][0], dtype)

    def gram(be, u, G, S, g, a_sweep, a):
        ug, Gg = kernels.gram_step(be, u, G, S, g, 0.8, 1.0 / 1.5, a_sweep, a)
        return float(ug), float(Gg)

    got = both(gram, dtype, *[(6, 11)] * 6, seed=3)
    for x, y in zip(got["numba"][0], got["numpy"][0]):
        close(x, y, dtype)
    close(got["numba"][1], got["numpy"][1], dtype)
    u0 = np.random.default_rng(3).normal(size=(6, 11)).astype(dtype)
    g0 = np.random.default_rng(6).normal(size=(6, 11)).astype(dtype)
    close(got["numba"][1][0], float(np.sum(u0.astype(float) * g0)), dtype)


SPEC = HierarchySpec.from_dict({
    "areas": [
        {"name": "x", "size": 40},
        {"name": "h1", "size": 32, "activation": "tanh", "precision": 1.5},
        {"name": "h2", "size": 32, "activation": "sigmoid"},
        {"name": "h3", "size": 24, "activation": "relu", "precision": 0.5},
        {"name": "y", "size": 10, "activation": "linear"},
    ],
})


@pytest.mark.parametrize("implementation", ["numba", "numpy"])
@pytest.mark.parametrize("init", ["feedforward", "zeros"])
def test_float32_relaxation_agrees_with_the_float64_reference(implementation, init, restore):
    kernels.use(implementation)
    h64 = build64(SPEC, "numpy", seed=1)
    h32 = build32(SPEC, "numpy", seed=1)
    h32.load_parameters(h64.parameters_to_numpy())
    x, y = random_data(np.random.default_rng(2), 48, 40, 10, "mse")
    settings = Relaxation(steps=30, step_size=0.1, init=init)
    fast = relax_discriminative(h32, put(h32, x), put(h32, y), get_loss("mse"), settings)
    ref = reference_discriminative(h64, put(h64, x), put(h64, y), get_loss("mse"), settings)
    for l in range(1, 4):
        np.testing.assert_allclose(to_np(h32, fast.mu[l]), to_np(h64, ref.mu[l]), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(to_np(h32, fast.errors[l]), to_np(h64, ref.errors[l]), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(to_np(h32, fast.energy), to_np(h64, ref.energy), rtol=1e-5)


def test_choices_are_checked(restore, monkeypatch):
    with pytest.raises(ConfigurationError, match="kernels: unknown implementation 'fast'"):
        kernels.use("fast")
    monkeypatch.setattr(kernels, "_choice", "nonsense")
    with pytest.raises(ConfigurationError, match="CORTEXSIM_KERNELS"):
        kernels.active(get_backend("numpy"))
    monkeypatch.setattr(kernels, "_choice", "numba")
    assert kernels.active(get_backend("array_api_strict")) == "numpy"
