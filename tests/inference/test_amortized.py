"""The feedforward sweep against an independent NumPy forward pass."""

import numpy as np
import pytest

from conftest import build64, np_forward, put, spec_info, to_np
from cortexsim import HierarchySpec, feedforward


@pytest.mark.parametrize("activation", ["linear", "tanh", "sigmoid", "relu", "gelu"])
def test_feedforward_matches_numpy(backend_name, activation):
    spec = HierarchySpec.from_sizes([6, 5, 4, 3], activation=activation, output_activation="sigmoid")
    h = build64(spec, backend_name, seed=1)
    rng = np.random.default_rng(0)
    h.load_parameters({k: v + 0.1 * rng.normal(size=v.shape) for k, v in h.parameters_to_numpy().items()})
    x = rng.normal(size=(7, 6))
    sweep = feedforward(h, put(h, x))
    names, acts = spec_info(spec)
    pre, act = np_forward(h.parameters_to_numpy(), names, acts, x)
    assert sweep.a[0] is None
    for l in range(1, 4):
        np.testing.assert_allclose(to_np(h, sweep.a[l]), pre[l], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(to_np(h, sweep.h[l]), act[l], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(to_np(h, sweep.output), act[3], rtol=1e-12, atol=1e-13)
