"""Optimizers against hand-written textbook updates."""

import numpy as np
import pytest

from conftest import build64, rel_err
from cortexsim import SGD, Adam, ConfigurationError, HierarchySpec, Momentum, make_optimizer

SPEC = HierarchySpec.from_sizes([4, 3, 2])


def setup(backend_name, n_grads):
    h = build64(SPEC, backend_name, seed=0)
    rng = np.random.default_rng(1)
    start = h.parameters_to_numpy()
    grads = [
        {key: rng.normal(size=value.shape) * 10.0 ** rng.integers(-3, 2) for key, value in start.items()}
        for _ in range(n_grads)
    ]
    return h, start, grads


def on_backend(h, grads):
    return {key: h.backend.asarray(value) for key, value in grads.items()}


def test_sgd_one_step(backend_name):
    h, start, (g,) = setup(backend_name, 1)
    SGD(lr=0.3).step(h, on_backend(h, g))
    got = h.parameters_to_numpy()
    for key in start:
        np.testing.assert_allclose(got[key], start[key] - 0.3 * g[key], rtol=1e-15, atol=1e-15)


def test_sgd_only_touches_given_parameters(backend_name):
    h, start, (g,) = setup(backend_name, 1)
    SGD(lr=0.3).step(h, on_backend(h, {("area1", "W_ff"): g[("area1", "W_ff")]}))
    got = h.parameters_to_numpy()
    np.testing.assert_array_equal(got[("area2", "W_ff")], start[("area2", "W_ff")])
    assert not np.array_equal(got[("area1", "W_ff")], start[("area1", "W_ff")])


def test_momentum_two_steps(backend_name):
    h, start, (g1, g2) = setup(backend_name, 2)
    opt = Momentum(lr=0.1, momentum=0.8)
    opt.step(h, on_backend(h, g1))
    opt.step(h, on_backend(h, g2))
    got = h.parameters_to_numpy()
    for key in start:
        v1 = g1[key]
        v2 = 0.8 * v1 + g2[key]
        expected = start[key] - 0.1 * v1 - 0.1 * v2
        np.testing.assert_allclose(got[key], expected, rtol=1e-14, atol=1e-15)


def test_adam_three_steps_against_textbook(backend_name):
    h, start, grads = setup(backend_name, 3)
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    opt = Adam(lr=lr, beta1=b1, beta2=b2, eps=eps)
    for g in grads:
        opt.step(h, on_backend(h, g))
    got = h.parameters_to_numpy()
    for key in start:
        theta, m, v = start[key].copy(), np.zeros_like(start[key]), np.zeros_like(start[key])
        for t, g in enumerate(grads, start=1):
            m = b1 * m + (1 - b1) * g[key]
            v = b2 * v + (1 - b2) * g[key] ** 2
            m_hat = m / (1 - b1**t)
            v_hat = v / (1 - b2**t)
            theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        assert rel_err(got[key] - start[key], theta - start[key]) <= 1e-10, key
        assert rel_err(got[key], theta) <= 1e-10


def test_adam_epsilon_matters_for_tiny_gradients(backend_name):
    """eps is bias-corrected like v: with g ~ eps the update is lr * g/(|g| + eps)."""
    h, start, _ = setup(backend_name, 0)
    g = {key: np.full(value.shape, 1e-8) for key, value in start.items()}
    Adam(lr=1.0, eps=1e-8).step(h, on_backend(h, g))
    got = h.parameters_to_numpy()
    for key in start:
        np.testing.assert_allclose(start[key] - got[key], 0.5, rtol=1e-7)


def test_make_optimizer_and_errors():
    assert isinstance(make_optimizer("adam", lr=0.1), Adam)
    assert make_optimizer("momentum", lr=0.1, momentum=0.5).momentum == 0.5
    with pytest.raises(ConfigurationError, match=r"optimizer\.name: unknown optimizer 'adma'; allowed: sgd, momentum, adam \(did you mean 'adam'\?\)"):
        make_optimizer("adma", lr=0.1)
    with pytest.raises(ConfigurationError, match=r"optimizer\.lr: must be > 0, got -0\.1"):
        SGD(lr=-0.1)
    with pytest.raises(ConfigurationError, match=r"optimizer\.momentum: must be < 1\.0"):
        Momentum(lr=0.1, momentum=1.0)
    with pytest.raises(ConfigurationError, match=r"optimizer\.beta2"):
        Adam(beta2=1.5)
