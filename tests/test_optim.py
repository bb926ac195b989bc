"""Optimizers against hand-written textbook updates."""

import numpy as np
import pytest

from conftest import build64, rel_err
from cortexsim import SGD, Adam, ConfigurationError, HierarchySpec, Momentum, make_optimizer, make_schedule

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


@pytest.mark.parametrize("kernels", ["numba", "numpy"])
def test_adam_three_steps_against_textbook(backend_name, kernels):
    from cortexsim.inference import kernels as implementation

    if kernels == "numba":
        pytest.importorskip("numba")
    implementation.use(kernels)
    try:
        _adam_three_steps(backend_name)
    finally:
        implementation.use("auto")


def _adam_three_steps(backend_name):
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
    with pytest.raises(ConfigurationError, match=r"optimizer\.name: unknown optimizer 'adma'; allowed: sgd, momentum, rmsprop, adam \(did you mean 'adam'\?\)"):
        make_optimizer("adma", lr=0.1)
    with pytest.raises(ConfigurationError, match=r"optimizer\.lr: must be > 0, got -0\.1"):
        SGD(lr=-0.1)
    with pytest.raises(ConfigurationError, match=r"optimizer\.momentum: must be < 1\.0"):
        Momentum(lr=0.1, momentum=1.0)
    with pytest.raises(ConfigurationError, match=r"optimizer\.beta2"):
        Adam(beta2=1.5)


# -- RMSprop, Nesterov momentum, per-pathway rates ----------------------------------

def _rmsprop_reference(theta, grads, lr, rho, eps, centered, inside, momentum):
    """Graves (2013, eqs. 38-41) / Tieleman & Hinton, written out in float64."""
    n, g_bar, v = np.zeros_like(theta), np.zeros_like(theta), np.zeros_like(theta)
    for g in grads:
        n = rho * n + (1 - rho) * g**2
        g_bar = rho * g_bar + (1 - rho) * g
        d = n - g_bar**2 if centered else n
        s = np.sqrt(d + eps) if inside else np.sqrt(d) + eps
        v = momentum * v - lr * g / s
        theta = theta + v
    return theta


@pytest.mark.parametrize("centered, inside, momentum", [
    (False, False, 0.0),  # Tieleman & Hinton
    (True, True, 0.9),    # Lee et al. 2015's code: rho 0.95, stabiliser 0.001 inside the root
    (True, False, 0.5),
])
def test_rmsprop_three_steps_against_textbook(backend_name, centered, inside, momentum):
    h, start, grads = setup(backend_name, 3)
    settings = dict(lr=0.01, rho=0.95, eps=1e-3, centered=centered, eps_inside_sqrt=inside,
                    momentum=momentum)
    opt = make_optimizer("rmsprop", **settings)
    for g in grads:
        opt.step(h, on_backend(h, g))
    got = h.parameters_to_numpy()
    for key in start:
        expected = _rmsprop_reference(start[key], [g[key] for g in grads], 0.01, 0.95, 1e-3,
                                      centered, inside, momentum)
        assert rel_err(got[key] - start[key], expected - start[key]) <= 1e-10, key


def test_rmsprop_stabiliser_placement_differs():
    """sqrt(d + eps) and sqrt(d) + eps give different steps: the switch is live."""
    h1, start, (g,) = setup("numpy", 1)
    h2 = build64(SPEC, "numpy", seed=0)
    make_optimizer("rmsprop", lr=0.1, eps=1e-2).step(h1, on_backend(h1, g))
    make_optimizer("rmsprop", lr=0.1, eps=1e-2, eps_inside_sqrt=True).step(h2, on_backend(h2, g))
    key = ("area1", "W_ff")
    assert not np.allclose(h1.parameters_to_numpy()[key], h2.parameters_to_numpy()[key])


def test_nesterov_equals_the_lookahead_gradient_on_a_quadratic():
    """Sutskever et al. (2013) eq. 3-4 with the gradient taken at theta + mu v,
    on f = 0.5 sum(a theta^2): our iterates are their theta + mu v."""
    h = build64(SPEC, "numpy", seed=0)
    start = h.parameters_to_numpy()
    curvature = {key: np.linspace(0.5, 2.0, value.size).reshape(value.shape) for key, value in start.items()}
    lr, mu = 0.1, 0.9
    opt = Momentum(lr=lr, momentum=mu, nesterov=True)
    theta = {key: value.copy() for key, value in start.items()}  # their variable
    v = {key: np.zeros_like(value) for key, value in start.items()}
    for _ in range(5):
        ours = h.parameters_to_numpy()
        opt.step(h, on_backend(h, {key: curvature[key] * ours[key] for key in ours}))
        for key in theta:
            v[key] = mu * v[key] - lr * curvature[key] * (theta[key] + mu * v[key])
            theta[key] = theta[key] + v[key]
    got = h.parameters_to_numpy()
    for key in start:
        np.testing.assert_allclose(got[key], theta[key] + mu * v[key], rtol=1e-12, atol=1e-14)


def test_momentum_rate_applies_when_a_gradient_is_added():
    """Published momentum: halving lr halves the new step, not the gathered velocity."""
    h, start, (g1, g2) = setup("numpy", 2)
    opt = Momentum(lr=0.1, momentum=0.8)
    opt.step(h, on_backend(h, g1))
    opt.factor = 0.5
    opt.step(h, on_backend(h, g2))
    got = h.parameters_to_numpy()
    for key in start:
        v1 = -0.1 * g1[key]
        v2 = 0.8 * v1 - 0.05 * g2[key]
        np.testing.assert_allclose(got[key], start[key] + v1 + v2, rtol=1e-13, atol=1e-15)


def test_feedback_lr_applies_to_the_generative_pathway_only():
    h, start, (g,) = setup("numpy", 1)
    SGD(lr=0.3, feedback_lr=0.1).step(h, on_backend(h, g))
    got = h.parameters_to_numpy()
    for key in start:
        lr = 0.1 if key[1].startswith(("W_fb", "b_fb")) else 0.3
        np.testing.assert_allclose(got[key], start[key] - lr * g[key], rtol=1e-15, atol=1e-15)


def test_bad_rmsprop_settings_name_the_key():
    with pytest.raises(ConfigurationError, match=r"optimizer\.centered: expected true or false"):
        make_optimizer("rmsprop", lr=0.1, centered="yes")
    with pytest.raises(ConfigurationError, match=r"optimizer\.rho: must be < 1\.0"):
        make_optimizer("rmsprop", lr=0.1, rho=1.0)


# -- learning-rate schedules ----------------------------------------------------------

def test_step_and_exponential_schedules_against_their_formulas():
    step = make_schedule("step", every=3, gamma=0.5)
    assert [step.factor(e, 0) for e in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    exp = make_schedule("exponential", gamma=0.9)
    for e in range(5):
        assert exp.factor(e, 10 * e) == pytest.approx(0.9**e, rel=1e-15)


def test_burda_staged_schedule_stage_boundaries():
    """Stage i lasts 3^i epochs at 10^(-i/7): boundaries 1, 4, 13, 40, 121, 364, 1093, 3280."""
    staged = make_schedule("staged")
    assert staged.epochs() == 3280
    boundaries = np.cumsum([3**i for i in range(8)])
    for i, end in enumerate(boundaries):
        assert staged.factor(int(end) - 1, 0) == pytest.approx(10 ** (-i / 7), rel=1e-12)
        if i < 7:
            assert staged.factor(int(end), 0) == pytest.approx(10 ** (-(i + 1) / 7), rel=1e-12)
    assert staged.factor(5000, 0) == pytest.approx(10 ** (-1), rel=1e-12)  # stays at the last stage


def test_warmup_ramps_linearly_over_steps():
    warm = make_schedule("step", every=1, gamma=0.5, warmup_steps=4)
    assert [warm.factor(0, s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warm.factor(2, 100) == 0.25


def test_unknown_schedule_kind_is_named():
    with pytest.raises(ConfigurationError, match=r"schedule\.learning_rate\.kind: unknown schedule 'stpe'.*did you mean 'step'"):
        make_schedule("stpe", every=2)
    with pytest.raises(ConfigurationError, match=r"schedule\.learning_rate\.every"):
        make_schedule("step", every=0)
