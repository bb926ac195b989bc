"""Backprop gradients against float64 central differences of an independent
NumPy forward pass, for every hidden activation and both losses."""

import numpy as np
import pytest

from conftest import (
    build64,
    central_difference,
    grads_to_np,
    np_forward,
    np_total_loss,
    put,
    random_data,
    rel_err,
    spec_info,
    to_np,
)
from cortexsim import Backprop, ConfigurationError, HierarchySpec, make_rule

ACTIVATIONS = ["linear", "tanh", "sigmoid", "relu", "gelu"]
CASES = [("mse", "linear"), ("mse", "sigmoid"), ("cross_entropy", "linear")]


def kink_free_problem(spec, loss, batch=8):
    """Random weights (biases included) and data whose hidden pre-activations
    stay at least 1e-4 from 0, so relu is differentiable there."""
    names, acts = spec_info(spec)
    for seed in range(100):
        rng = np.random.default_rng(seed)
        params = {}
        for l in range(1, len(names)):
            below, size = spec.sizes[l - 1], spec.sizes[l]
            params[(names[l], "W_ff")] = rng.normal(0.0, 0.7, size=(below, size))
            params[(names[l], "b_ff")] = rng.normal(0.0, 0.3, size=size)
            params[(names[l], "W_fb")] = rng.normal(size=(size, below))
            params[(names[l], "b_fb")] = rng.normal(size=below)
        x, y = random_data(rng, batch, spec.sizes[0], spec.sizes[-1], loss)
        pre, _ = np_forward(params, names, acts, x)
        if min(np.abs(a).min() for a in pre[1:]) > 1e-4:
            return params, x, y
    raise AssertionError("no kink-free seed")


@pytest.mark.parametrize("loss,top", CASES)
@pytest.mark.parametrize("hidden", ACTIVATIONS)
def test_gradients_match_finite_differences(backend_name, hidden, loss, top):
    spec = HierarchySpec.from_sizes([6, 5, 4], activation=hidden, output_activation=top)
    h = build64(spec, backend_name, seed=0)
    params, x, y = kink_free_problem(spec, loss)
    h.load_parameters(params)
    rule = Backprop(loss)
    state = rule.infer(h, put(h, x), put(h, y))
    grads = grads_to_np(h, rule.gradients(h, state))
    assert set(grads) == {(n, p) for n in ("area1", "area2") for p in ("W_ff", "b_ff")}
    host = h.parameters_to_numpy()
    f = lambda p: np_total_loss(spec, p, x, y, loss)  # noqa: E731
    assert float(to_np(h, state.loss)) == pytest.approx(f(host), rel=1e-12)
    for key, grad in grads.items():
        numeric = central_difference(f, host, key, h=1e-5)
        assert grad.shape == numeric.shape
        assert np.abs(numeric).max() > 1e-6, key  # a vacuous check would pass anything
        assert rel_err(grad, numeric) <= 1e-6, (key, rel_err(grad, numeric))


def test_gradients_on_another_rules_state_equal_own(backend_name):
    """``Backprop.gradients`` on a PC state recomputes from that state's sweep."""
    from cortexsim import PredictiveCoding, Relaxation

    spec = HierarchySpec.from_sizes([6, 5, 4, 3])
    h = build64(spec, backend_name, seed=1)
    params, x, y = kink_free_problem(spec, "mse")
    h.load_parameters(params)
    bp = Backprop("mse")
    own = grads_to_np(h, bp.gradients(h, bp.infer(h, put(h, x), put(h, y))))
    pc = PredictiveCoding(inference=Relaxation(steps=7, step_size=0.2))
    other = grads_to_np(h, bp.gradients(h, pc.infer(h, put(h, x), put(h, y))))
    for key in own:
        np.testing.assert_allclose(other[key], own[key], rtol=1e-12, atol=1e-14)


def test_cross_entropy_needs_linear_top():
    spec = HierarchySpec.from_sizes([4, 3, 2], output_activation="sigmoid")
    h = build64(spec, "numpy")
    rule = Backprop("cross_entropy")
    x, y = np.zeros((2, 4)), np.eye(2)
    with pytest.raises(ConfigurationError, match=r"cross_entropy.*top area 'area2' must have activation 'linear', not 'sigmoid'"):
        rule.infer(h, put(h, x), put(h, y))


def test_unknown_loss_and_rule():
    with pytest.raises(ConfigurationError, match=r"rule\.loss: unknown loss 'mes'; allowed: mse, cross_entropy \(did you mean 'mse'\?\)"):
        Backprop("mes")
    with pytest.raises(ConfigurationError, match=r"rule: unknown rule 'backpropp'; allowed: backprop, predictive_coding, .* \(did you mean 'backprop'\?\)"):
        make_rule("backpropp")
    assert isinstance(make_rule("backprop", loss="cross_entropy"), Backprop)


def test_backprop_recomputes_errors_on_another_feedforward_rules_state(backend_name):
    """Backprop must not take another rule's errors for its own, even when that
    rule's state is also a feedforward one (feedback alignment's)."""
    from cortexsim.rules.feedback_alignment import FeedbackAlignment

    h = build64(HierarchySpec.from_sizes([5, 4, 3], activation="tanh"), backend_name, seed=2)
    be = h.backend
    rng = np.random.default_rng(0)
    x, y = be.asarray(rng.normal(size=(6, 5))), be.asarray(rng.normal(size=(6, 3)))
    fa = FeedbackAlignment()
    fa_state = fa.infer(h, x, y)
    fa_grads = {k: be.to_numpy(v) for k, v in fa.gradients(h, fa_state).items()}
    bp = Backprop()
    on_fa_state = {k: be.to_numpy(v) for k, v in bp.gradients(h, fa_state).items()}
    own = {k: be.to_numpy(v) for k, v in bp.gradients(h, bp.infer(h, x, y)).items()}
    for key in own:
        np.testing.assert_allclose(on_fa_state[key], own[key], rtol=1e-12, atol=1e-15)
    assert not np.allclose(fa_grads[("area1", "W_ff")], own[("area1", "W_ff")])
