"""Every backend gives NumPy's result from the same seed; float32 follows float64."""

import numpy as np
import pytest

from conftest import rel_err
from cortexsim import (
    Adam,
    AreaSpec,
    Backprop,
    HierarchySpec,
    PredictiveCoding,
    Prior,
    Relaxation,
    Scheduler,
    build,
)

DISC = HierarchySpec.from_sizes([7, 6, 5, 4], activation="gelu")
GEN = HierarchySpec(
    (
        AreaSpec(name="x", size=7),
        AreaSpec(name="h", size=5, feedback_activation="tanh"),
        AreaSpec(name="z", size=3, prior=Prior("gaussian", 0.0, 1.0)),
    )
)

RULES = {
    "backprop": (DISC, lambda: Backprop("cross_entropy")),
    "pc": (DISC, lambda: PredictiveCoding(loss="mse", inference=Relaxation(steps=8, step_size=0.1))),
    "pc_fixed": (DISC, lambda: PredictiveCoding(loss="cross_entropy",
                                                inference=Relaxation(steps=3, step_size=1.0, fixed_prediction=True))),
    "pc_generative": (GEN, lambda: PredictiveCoding(mode="generative", learn_recognition=True,
                                                    inference=Relaxation(steps=8, step_size=0.1))),
}


def train(spec, make_rule, backend, dtype, batches=5, batch_size=10):
    rng = np.random.default_rng(0)
    n = batches * batch_size
    x = rng.normal(size=(n, spec.sizes[0]))
    y = None if spec is GEN else rng.integers(0, spec.sizes[-1], size=n)
    h = build(spec, backend=backend, dtype=dtype, seed=0)
    Scheduler(h, make_rule(), Adam(lr=0.01), x, y, batch_size=batch_size, epochs=1, seed=0).run()
    return h.parameters_to_numpy()


@pytest.mark.parametrize("rule", sorted(RULES))
def test_backend_matches_numpy(backend_name, rule):
    if backend_name == "numpy":  # NumPy against itself could not fail
        pytest.skip("numpy is the reference the other backends are compared with")
    spec, make_rule = RULES[rule]
    start = build(spec, dtype="float64", seed=0).parameters_to_numpy()
    ref = train(spec, make_rule, "numpy", "float64")
    got = train(spec, make_rule, backend_name, "float64")
    moved = False
    for key in ref:
        assert rel_err(got[key], ref[key]) <= 1e-6 or np.max(np.abs(got[key] - ref[key])) <= 1e-12, key
        moved |= not np.allclose(ref[key], start[key])
    assert moved  # training did something


@pytest.mark.parametrize("rule", sorted(RULES))
def test_float32_follows_float64(backend_name, rule):
    spec, make_rule = RULES[rule]
    start = build(spec, dtype="float64", seed=0).parameters_to_numpy()
    ref = train(spec, make_rule, backend_name, "float64", batches=3)
    got = train(spec, make_rule, backend_name, "float32", batches=3)
    for key in ref:
        assert got[key].dtype == np.float32
        # compare the change, not just the (large) starting values
        assert rel_err(got[key] - start[key], ref[key] - start[key]) <= 1e-4 or np.max(np.abs(ref[key] - start[key])) == 0, key
