"""Predictive-coding relaxation: energy descent, the energy's value, and the
closed-form posterior of a linear-Gaussian model."""

import numpy as np
import pytest

from conftest import build64, np_act, put, random_data, to_np
from cortexsim import AreaSpec, ConfigurationError, HierarchySpec, Prior, Relaxation
from cortexsim.inference import feedforward as cortexsim_feedforward
from cortexsim.inference import relax_discriminative, relax_generative
from cortexsim.model.losses import get_loss

DISC = HierarchySpec(
    tuple(
        AreaSpec(name=f"v{i}", size=s, activation=a, precision=p)
        for i, (s, a, p) in enumerate(
            zip([6, 5, 4, 3], ["linear", "tanh", "gelu", "linear"], [1.0, 0.8, 1.7, 1.0])
        )
    )
)
GEN = HierarchySpec(
    (
        AreaSpec(name="x", size=6, precision=1.5),
        AreaSpec(name="h", size=4, feedback_activation="tanh", prior=Prior("cauchy", 0.1, 2.0)),
        AreaSpec(name="z", size=3, feedback_activation="linear", precision=0.5,
                 prior=Prior("gaussian", 0.2, 0.8)),
    )
)


def perturb(h, seed):
    rng = np.random.default_rng(seed)
    h.load_parameters({k: v + 0.3 * rng.normal(size=v.shape) for k, v in h.parameters_to_numpy().items()})


def disc_energy(spec, params, mu, y, loss):
    L = len(spec.areas) - 1
    total = 0.0
    for l in range(1, L + 1):
        area = spec.areas[l]
        a = mu[l - 1] @ params[(area.name, "W_ff")] + params[(area.name, "b_ff")]
        pred = np_act(area.activation, a)
        if l < L:
            total += np.mean(0.5 * area.precision * np.sum((mu[l] - pred) ** 2, axis=1))
        elif loss == "mse":
            total += area.precision * np.mean(0.5 * np.sum((y - pred) ** 2, axis=1))
        else:
            z = a - a.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            total += area.precision * np.mean(-np.sum(y * logp, axis=1))
    return total


def gen_energy(spec, params, mu):
    total = 0.0
    for l in range(1, len(spec.areas)):
        area, below = spec.areas[l], spec.areas[l - 1]
        pred = np_act(area.feedback_activation, mu[l]) @ params[(area.name, "W_fb")] + params[(area.name, "b_fb")]
        total += np.mean(0.5 * below.precision * np.sum((mu[l - 1] - pred) ** 2, axis=1))
        prior = area.prior
        z = (mu[l] - prior.mean) / prior.scale
        per = 0.5 * np.sum(z**2, axis=1) if prior.kind == "gaussian" else np.sum(np.log1p(z**2), axis=1)
        total += np.mean(per)
    return total


@pytest.mark.parametrize("init", ["feedforward", "zeros"])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_discriminative_energy_descends_and_matches_F(backend_name, loss, init):
    h = build64(DISC, backend_name, seed=1)
    perturb(h, 1)
    x, y = random_data(np.random.default_rng(1), 8, 6, 3, loss)
    settings = Relaxation(steps=60, step_size=0.05, init=init)
    state = relax_discriminative(h, put(h, x), put(h, y), get_loss(loss), settings)
    trace = to_np(h, state.energy)
    assert trace.shape == (61,) and state.steps == 60 and state.converged is None
    assert np.all(np.diff(trace) <= 1e-12 * abs(trace[0])), np.diff(trace).max()
    assert trace[-1] < trace[0] - 1e-3
    mu = [to_np(h, m) for m in state.mu]
    np.testing.assert_array_equal(mu[0], x)
    np.testing.assert_array_equal(mu[-1], y)
    params = h.parameters_to_numpy()
    assert trace[-1] == pytest.approx(disc_energy(DISC, params, mu, y, loss), rel=1e-12)
    if init == "feedforward":
        # the start has no hidden error, so F starts at pi_L * loss of the sweep
        ff = [x]
        for area in DISC.areas[1:]:
            ff.append(np_act(area.activation, ff[-1] @ params[(area.name, "W_ff")] + params[(area.name, "b_ff")]))
        assert trace[0] == pytest.approx(disc_energy(DISC, params, ff[:-1] + [y], y, loss), rel=1e-12)


def test_discriminative_errors_are_precision_weighted(backend_name):
    h = build64(DISC, backend_name, seed=2)
    perturb(h, 2)
    x, y = random_data(np.random.default_rng(2), 5, 6, 3, "mse")
    state = relax_discriminative(h, put(h, x), put(h, y), get_loss("mse"), Relaxation(steps=7, step_size=0.1))
    params = h.parameters_to_numpy()
    mu = [to_np(h, m) for m in state.mu]
    for l in (1, 2):
        area = DISC.areas[l]
        pred = np_act(area.activation, mu[l - 1] @ params[(area.name, "W_ff")] + params[(area.name, "b_ff")])
        np.testing.assert_allclose(to_np(h, state.eps[l]), area.precision * (mu[l] - pred), rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(to_np(h, state.presynaptic[l]), mu[l - 1])


@pytest.mark.parametrize("init", ["feedforward", "zeros"])
def test_generative_energy_descends_and_matches_F(backend_name, init):
    h = build64(GEN, backend_name, seed=3)
    perturb(h, 3)
    x = np.random.default_rng(3).normal(size=(8, 6))
    state = relax_generative(h, put(h, x), Relaxation(steps=80, step_size=0.02, init=init))
    trace = to_np(h, state.energy)
    assert trace.shape == (81,) and state.mode == "generative"
    assert np.all(np.diff(trace) <= 1e-12 * abs(trace[0])), np.diff(trace).max()
    assert trace[-1] < trace[0] - 1e-3
    mu = [to_np(h, m) for m in state.mu]
    params = h.parameters_to_numpy()
    assert trace[-1] == pytest.approx(gen_energy(GEN, params, mu), rel=1e-12)
    # errors of the area below, precision-weighted
    pred0 = np.tanh(mu[1]) @ params[("h", "W_fb")] + params[("h", "b_fb")]
    np.testing.assert_allclose(to_np(h, state.eps[0]), 1.5 * (x - pred0), rtol=1e-12, atol=1e-13)
    if init == "zeros":
        zero = [x, np.zeros((8, 4)), np.zeros((8, 3))]
        assert trace[0] == pytest.approx(gen_energy(GEN, params, zero), rel=1e-12)


def test_generative_default_top_prior_is_standard_gaussian(backend_name):
    spec = HierarchySpec.from_sizes([5, 3])
    h = build64(spec, backend_name, seed=0)
    x = np.random.default_rng(0).normal(size=(4, 5))
    state = relax_generative(h, put(h, x), Relaxation(steps=0, init="zeros"))
    # mu = 0: F = 0.5 |x - b_fb|^2 (b_fb = 0) + 0
    assert to_np(h, state.energy)[0] == pytest.approx(np.mean(0.5 * np.sum(x**2, axis=1)), rel=1e-12)
    # with W_fb = 0 only the prior acts: one step from the sweep shrinks mu by (1 - eta)
    h2 = build64(spec, backend_name, seed=0)
    h2.load_parameters({("area1", "W_fb"): np.zeros((3, 5))})
    start = to_np(h2, h2.backend.copy(cortexsim_feedforward(h2, put(h2, x)).h[1]))
    state = relax_generative(h2, put(h2, x), Relaxation(steps=1, step_size=0.1))
    np.testing.assert_allclose(to_np(h2, state.mu[1]), 0.9 * start, rtol=1e-13)
    assert np.abs(start).max() > 0.1


@pytest.mark.parametrize("sizes,s,pi0", [((5, 3), 1.0, 2.0), ((4, 6), 0.5, 0.7)])
def test_linear_gaussian_posterior_mean(backend_name, sizes, s, pi0):
    n0, n1 = sizes
    spec = HierarchySpec(
        (
            AreaSpec(name="x", size=n0, precision=pi0),
            AreaSpec(name="z", size=n1, feedback_activation="linear", prior=Prior("gaussian", 0.0, s)),
        )
    )
    h = build64(spec, backend_name, seed=7)
    rng = np.random.default_rng(7)
    W = 0.5 * rng.normal(size=(n1, n0))
    b = rng.normal(size=n0)
    h.load_parameters({("z", "W_fb"): W, ("z", "b_fb"): b})
    x = rng.normal(size=(6, n0))
    precision = np.eye(n1) / s**2 + pi0 * W @ W.T
    expected = pi0 * (x - b) @ W.T @ np.linalg.inv(precision)
    step = 1.0 / np.linalg.eigvalsh(precision).max()  # stable and fast
    settings = Relaxation(steps=5000, step_size=float(step), init="zeros", tolerance=1e-15)
    state = relax_generative(h, put(h, x), settings)
    assert state.converged is True and 0 < state.steps < 5000
    np.testing.assert_allclose(to_np(h, state.mu[1]), expected, rtol=0, atol=1e-6)
    assert np.max(np.abs(to_np(h, state.mu[1]) - expected)) <= 1e-6 * max(1.0, np.abs(expected).max())
    # and too few steps are measurably not there (the check discriminates)
    short = relax_generative(h, put(h, x), Relaxation(steps=3, step_size=float(step), init="zeros"))
    assert np.max(np.abs(to_np(h, short.mu[1]) - expected)) > 1e-3


def test_tolerance_stops_early_and_without_it_runs_all_steps(backend_name):
    h = build64(DISC, backend_name, seed=1)
    x, y = random_data(np.random.default_rng(1), 8, 6, 3, "mse")
    loss = get_loss("mse")
    state = relax_discriminative(h, put(h, x), put(h, y), loss, Relaxation(steps=2000, step_size=0.2, tolerance=1e-10))
    assert state.converged is True and state.steps < 2000
    trace = to_np(h, state.energy)
    # state.steps steps were taken; trace[state.steps] is the last energy recorded
    assert abs(trace[state.steps] - trace[state.steps - 1]) < 1e-10
    assert abs(trace[state.steps - 1] - trace[state.steps - 2]) >= 1e-10
    state = relax_discriminative(h, put(h, x), put(h, y), loss, Relaxation(steps=3, step_size=0.2, tolerance=1e-30))
    assert state.converged is False and state.steps == 3


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(steps=-1), r"inference\.steps: expected a whole number >= 0, got -1"),
        (dict(steps=2.5), r"inference\.steps: expected a whole number"),
        (dict(steps=True), r"inference\.steps"),
        (dict(step_size=0.0), r"inference\.step_size: must be > 0, got 0\.0"),
        (dict(step_size=float("inf")), r"inference\.step_size"),
        (dict(tolerance=-1e-3), r"inference\.tolerance: must be > 0"),
        (dict(init="zero"), r"inference\.init: unknown value 'zero'; allowed: feedforward, zeros \(did you mean 'zeros'\?\)"),
    ],
)
def test_bad_relaxation_settings(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        Relaxation(**kwargs)


def test_fixed_prediction_is_discriminative_only():
    h = build64(GEN, "numpy")
    with pytest.raises(ConfigurationError, match=r"inference\.fixed_prediction: only defined in discriminative mode"):
        relax_generative(h, put(h, np.zeros((2, 6))), Relaxation(fixed_prediction=True))


# -- the trajectory, step by step, against a plain NumPy Euler integrator ------


def np_dact(name, a):
    fa = np_act(name, a)
    if name == "linear":
        return np.ones_like(a)
    if name == "tanh":
        return 1.0 - fa**2
    if name == "sigmoid":
        return fa * (1.0 - fa)
    if name == "relu":
        return (a > 0).astype(float)
    c, k = np.sqrt(2.0 / np.pi), 0.044715
    u = np.tanh(c * (a + k * a**3))
    return 0.5 * (1.0 + u) + 0.5 * a * (1.0 - u**2) * c * (1.0 + 3.0 * k * a**2)


def np_relax_discriminative(spec, params, x, y, loss, steps, eta, init, fixed):
    L = len(spec.areas) - 1
    W = [None] + [params[(a.name, "W_ff")] for a in spec.areas[1:]]
    b = [None] + [params[(a.name, "b_ff")] for a in spec.areas[1:]]
    act = [a.activation for a in spec.areas]
    pi = [a.precision for a in spec.areas]
    ff = [x]
    for l in range(1, L + 1):
        ff.append(np_act(act[l], ff[-1] @ W[l] + b[l]))
    mu = [x] + [ff[l].copy() if init == "feedforward" else np.zeros_like(ff[l]) for l in range(1, L)] + [y]
    source = ff if fixed else mu
    for _ in range(steps):
        a = [None] + [source[l - 1] @ W[l] + b[l] for l in range(1, L + 1)]
        if fixed:
            a[1] = x @ W[1] + b[1]
        eps = [None] + [pi[l] * (mu[l] - np_act(act[l], a[l])) for l in range(1, L)]
        g = [None] + [eps[l] * np_dact(act[l], a[l]) for l in range(1, L)]
        out = np_act(act[L], a[L])
        if loss == "mse":
            g.append(pi[L] * (y - out) * np_dact(act[L], a[L]))
        else:
            z = np.exp(a[L] - a[L].max(axis=1, keepdims=True))
            g.append(pi[L] * (y - z / z.sum(axis=1, keepdims=True)))
        mu = [x] + [mu[l] + eta * (g[l + 1] @ W[l + 1].T - eps[l]) for l in range(1, L)] + [y]
        source = ff if fixed else mu
    return mu



@pytest.mark.parametrize("fixed", [False, True])
@pytest.mark.parametrize("init", ["feedforward", "zeros"])
@pytest.mark.parametrize("steps", [1, 2, 5])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_discriminative_trajectory_matches_numpy_euler(backend_name, loss, steps, init, fixed):
    spec = HierarchySpec(
        tuple(
            AreaSpec(name=f"v{i}", size=s, activation=a, precision=p)
            for i, (s, a, p) in enumerate(
                zip([6, 5, 5, 4, 3], ["linear", "tanh", "sigmoid", "gelu", "linear"], [1.0, 0.8, 1.7, 1.2, 0.9])
            )
        )
    )
    h = build64(spec, backend_name, seed=8)
    perturb(h, 8)
    x, y = random_data(np.random.default_rng(8), 6, 6, 3, loss)
    settings = Relaxation(steps=steps, step_size=0.3, init=init, fixed_prediction=fixed)
    state = relax_discriminative(h, put(h, x), put(h, y), get_loss(loss), settings)
    expected = np_relax_discriminative(spec, h.parameters_to_numpy(), x, y, loss, steps, 0.3, init, fixed)
    for l in range(1, 4):
        np.testing.assert_allclose(to_np(h, state.mu[l]), expected[l], rtol=1e-12, atol=1e-13)
    if init == "zeros":
        assert np.abs(expected[1]).max() > 1e-3  # the bottom area did move


def np_relax_generative(spec, params, x, steps, eta, init):
    L = len(spec.areas) - 1
    Wf = [None] + [params[(a.name, "W_ff")] for a in spec.areas[1:]]
    bf = [None] + [params[(a.name, "b_ff")] for a in spec.areas[1:]]
    W = [None] + [params[(a.name, "W_fb")] for a in spec.areas[1:]]
    b = [None] + [params[(a.name, "b_fb")] for a in spec.areas[1:]]
    phi = [a.feedback_activation for a in spec.areas]
    pi = [a.precision for a in spec.areas]
    ff = [x]
    for l in range(1, L + 1):
        ff.append(np_act(spec.areas[l].activation, ff[-1] @ Wf[l] + bf[l]))
    mu = [x] + [ff[l].copy() if init == "feedforward" else np.zeros_like(ff[l]) for l in range(1, L + 1)]
    for _ in range(steps):
        eps = [pi[l - 1] * (mu[l - 1] - (np_act(phi[l], mu[l]) @ W[l] + b[l])) for l in range(1, L + 1)]
        new = [x]
        for l in range(1, L + 1):
            grad = -(eps[l - 1] @ W[l].T) * np_dact(phi[l], mu[l])
            if l < L:
                grad += eps[l]
            prior = spec.areas[l].prior
            z = mu[l] - prior.mean
            grad += z / prior.scale**2 if prior.kind == "gaussian" else 2 * z / (prior.scale**2 + z**2)
            new.append(mu[l] - eta * grad)
        mu = new
    return mu


@pytest.mark.parametrize("init", ["feedforward", "zeros"])
@pytest.mark.parametrize("steps", [1, 4])
def test_generative_trajectory_matches_numpy_euler(backend_name, steps, init):
    h = build64(GEN, backend_name, seed=9)
    perturb(h, 9)
    x = np.random.default_rng(9).normal(size=(5, 6))
    state = relax_generative(h, put(h, x), Relaxation(steps=steps, step_size=0.1, init=init))
    expected = np_relax_generative(GEN, h.parameters_to_numpy(), x, steps, 0.1, init)
    for l in (1, 2):
        np.testing.assert_allclose(to_np(h, state.mu[l]), expected[l], rtol=1e-12, atol=1e-13)
