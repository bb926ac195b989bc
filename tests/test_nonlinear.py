"""Activations and their derivatives against independent formulas and float64
central differences, on every backend."""

import math

import numpy as np
import pytest

from conftest import np_act, to_np
from cortexsim import ConfigurationError, get_backend
from cortexsim.model.nonlinear import ACTIVATIONS, get_activation

NAMES = ("linear", "tanh", "sigmoid", "relu", "gelu")


def _points() -> np.ndarray:
    # Avoid the relu kink at 0 by a margin much larger than the FD step.
    a = np.linspace(-6.0, 6.0, 241)
    a = a[np.abs(a) > 1e-3]
    return np.concatenate([a, [-30.0, 30.0, 0.3171, -0.0123]])


def test_all_activations_registered():
    assert set(ACTIVATIONS) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_values_match_formulas(backend_name, name):
    be = get_backend(backend_name, "float64")
    a = _points()
    act = get_activation(name)
    got = to_np(be, act(be, be.asarray(a)))
    np.testing.assert_allclose(got, np_act(name, a), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_derivative_matches_central_difference(backend_name, name):
    be = get_backend(backend_name, "float64")
    a = _points()
    h = 1e-6
    act = get_activation(name)
    f = lambda v: to_np(be, act(be, be.asarray(v)))  # noqa: E731
    numeric = (f(a + h) - f(a - h)) / (2 * h)
    analytic = to_np(be, act.grad(be, be.asarray(a)))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-8)
    # and via the buffer API used by the hot loops
    fa_buf, d_buf = be.empty(a.shape), be.empty(a.shape)
    A = be.asarray(a)
    fa = act.apply(be, A, fa_buf)
    d = act.derivative(be, A, fa, d_buf)
    if name == "linear":
        assert d is None and fa is A
    else:
        assert d is d_buf and fa is fa_buf
        np.testing.assert_allclose(to_np(be, d_buf), analytic, rtol=1e-14, atol=1e-15)


def test_sigmoid_does_not_overflow(backend_name):
    be = get_backend(backend_name, "float64")
    a = be.asarray(np.array([-1000.0, 1000.0]))
    got = to_np(be, get_activation("sigmoid")(be, a))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, [0.0, 1.0], atol=1e-300)


def test_gelu_approximates_exact_erf_gelu(backend_name):
    be = get_backend(backend_name, "float64")
    a = np.linspace(-8.0, 8.0, 4001)
    exact = np.array([0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in a])
    got = to_np(be, get_activation("gelu")(be, be.asarray(a)))
    gap = np.abs(got - exact)
    # The tanh approximation's true worst case is 4.73e-4 near |a| = 2.7, so
    # the often-quoted "3e-4 everywhere" is false; it holds for |a| <= 2.
    assert np.max(gap[np.abs(a) <= 2.0]) < 3e-4
    assert np.max(gap) < 4.8e-4
    # it is the tanh approximation, not the exact function nor a worse one
    assert 4.6e-4 < np.max(gap)
    assert np.max(gap[np.abs(a) >= 6.0]) < 1e-8


def test_unknown_activation_names_field_and_suggests():
    with pytest.raises(ConfigurationError, match=r"areas\[3\]\.activation: unknown activation 'tnah'.*allowed: gelu, linear, relu, sigmoid, tanh.*did you mean 'tanh'"):
        get_activation("tnah", "areas[3].activation")
