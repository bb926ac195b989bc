"""Modular wiring: block-diagonal, optionally shared weights stay so under training,
and the projected gradient is the gradient of the shared parameter."""

import numpy as np
import pytest

import cortexsim as cs
from cortexsim import ConfigurationError
from cortexsim.inference import Relaxation
from cortexsim.rules import PredictiveCoding
from cortexsim.model.wiring import project_gradient, structure_initial

MODEL = {
    "areas": [
        {"name": "pixels", "size": 12},
        {"name": "modules", "size": 6, "modules": 3, "shared": True, "activation": "linear",
         "prior": {"kind": "cauchy", "scale": 1.0}},
        {"name": "top", "size": 4, "activation": "linear"},
    ]
}


def blocks(W, m):
    r, c = W.shape[0] // m, W.shape[1] // m
    return [W[i * r:(i + 1) * r, i * c:(i + 1) * c] for i in range(m)]


def off_block(W, m):
    mask = np.ones_like(W, dtype=bool)
    r, c = W.shape[0] // m, W.shape[1] // m
    for i in range(m):
        mask[i * r:(i + 1) * r, i * c:(i + 1) * c] = False
    return W[mask]


def test_built_weights_are_block_diagonal_and_shared():
    h = cs.build(MODEL, seed=3)
    area = h["modules"]
    for name in ("W_fb", "W_ff"):
        W = h.backend.to_numpy(getattr(area, name))
        assert np.all(off_block(W, 3) == 0), name
        first, *rest = blocks(W, 3)
        assert np.any(first != 0)
        for other in rest:
            np.testing.assert_array_equal(other, first)
    # The top area is fully connected.
    assert np.all(h.backend.to_numpy(h["top"].W_fb) != 0)


@pytest.mark.parametrize("shared", [True, False])
def test_projected_gradient_is_the_gradient_of_the_structured_parameter(shared):
    """Finite differences of L(W) = 0.5 |X W - Y|^2 along the structured directions."""
    rng = np.random.default_rng(0)
    m, k, n = 3, 9, 6
    X, Y = rng.normal(size=(5, k)), rng.normal(size=(5, n))
    W = structure_initial(rng.normal(size=(k, n)), m, shared)
    dense = X.T @ (X @ W - Y)
    projected = project_gradient(cs.backend.get_backend("numpy", "float64"), dense, m, shared)
    assert np.all(off_block(projected, m) == 0)

    def loss(W):
        return 0.5 * np.sum((X @ W - Y) ** 2)

    h = 1e-6
    r, c = k // m, n // m
    for i in range(m if not shared else 1):
        for a, b in [(0, 0), (1, 1), (2, 0)]:
            step = np.zeros((r, c))
            step[a, b] = h
            direction = np.zeros_like(W)
            for j in range(m) if shared else [i]:  # a shared entry moves in every module
                direction[j * r:(j + 1) * r, j * c:(j + 1) * c] = step
            fd = (loss(W + direction) - loss(W - direction)) / (2 * h)
            np.testing.assert_allclose(projected[i * r + a, i * c + b], fd, rtol=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_keeps_modules_shared(backend_name, optimizer):
    h = cs.build(MODEL, backend=backend_name, dtype="float64", seed=1)
    rule = PredictiveCoding(mode="generative", inference=Relaxation(steps=10, step_size=0.1))
    opt = cs.optim.make_optimizer(optimizer, lr=0.01)
    x = h.backend.asarray(np.random.default_rng(2).normal(size=(8, 12)))
    before = h.backend.to_numpy(h["modules"].W_fb).copy()
    for _ in range(5):
        state = rule.infer(h, x)
        opt.step(h, rule.gradients(h, state))
    W = h.backend.to_numpy(h["modules"].W_fb)
    assert not np.allclose(W, before)
    assert np.all(off_block(W, 3) == 0)
    first, *rest = blocks(W, 3)
    for other in rest:
        np.testing.assert_allclose(other, first, rtol=0, atol=1e-12)
    b = h.backend.to_numpy(h["modules"].b_fb).reshape(3, 4)
    np.testing.assert_allclose(b, np.broadcast_to(b[0], b.shape), atol=1e-12)


def test_modules_must_divide_both_areas():
    bad = {"areas": [{"name": "x", "size": 10}, {"name": "m", "size": 6, "modules": 3}]}
    with pytest.raises(ConfigurationError, match=r"model\.areas\[1\]\.modules: the 10 units below cannot be split into 3"):
        cs.HierarchySpec.from_dict(bad)
    bad = {"areas": [{"name": "x", "size": 9}, {"name": "m", "size": 5, "modules": 3}]}
    with pytest.raises(ConfigurationError, match=r"modules: 5 units cannot be split into 3 equal modules"):
        cs.HierarchySpec.from_dict(bad)


def test_projection_leaves_the_rules_gradient_untouched():
    be = cs.backend.get_backend("numpy", "float64")
    grad = np.arange(12.0)
    kept = grad.copy()
    out = project_gradient(be, grad, 3, True)
    np.testing.assert_array_equal(grad, kept)
    np.testing.assert_array_equal(out, np.tile(grad.reshape(3, 4).sum(axis=0), 3))
