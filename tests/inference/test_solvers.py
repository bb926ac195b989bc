"""The Heun and adaptive solvers of the relaxation ODE (inference/solvers.py):
they reach the closed-form equilibrium of a linear-Gaussian hierarchy, have
the orders they claim, meet their tolerance, descend the energy, agree across
backends and dtypes, and fill the State the learning rules read."""

import numpy as np
import pytest

from conftest import build32, build64, put, random_data, to_np
from cortexsim import HierarchySpec, PredictiveCoding, Relaxation
from cortexsim.errors import ConfigurationError, DivergenceError
from cortexsim.inference import relax_discriminative, relax_generative
from cortexsim.inference.solvers import solve_discriminative, solve_generative
from cortexsim.model.losses import get_loss

# Linear generative path (feedback_activation linear by default), Gaussian
# priors on a middle area and the top, precisions off 1: F is quadratic.
LINEAR_GAUSSIAN = HierarchySpec.from_dict({
    "areas": [
        {"name": "x", "size": 8, "precision": 2.0},
        {"name": "h1", "size": 5, "precision": 0.5,
         "prior": {"kind": "gaussian", "mean": 0.3, "scale": 1.5}},
        {"name": "h2", "size": 4},
        {"name": "z", "size": 3, "prior": {"kind": "gaussian", "mean": -0.2, "scale": 0.8}},
    ],
})
# Discriminative tanh stack, linear top, precision 1 (what numpy_field writes out).
DISC = HierarchySpec.from_sizes([7, 6, 5, 3], activation="tanh", output_activation="linear")
# A nonlinear generative stack for the backend comparison.
GEN = HierarchySpec.from_dict({
    "areas": [
        {"name": "x", "size": 7},
        {"name": "h", "size": 5, "activation": "tanh", "feedback_activation": "tanh", "precision": 0.5},
        {"name": "z", "size": 3},
    ],
})


def model(spec, backend_name="numpy", seed=0, dtype="float64", scale=0.3):
    """``spec`` with every weight and bias moved off its initial value (as in
    test_reference_relaxation.py), in ``dtype``."""
    h = (build64 if dtype == "float64" else build32)(spec, backend_name, seed=seed)
    rng = np.random.default_rng(seed + 100)
    h.load_parameters({k: v + scale * rng.normal(size=v.shape) for k, v in h.parameters_to_numpy().items()})
    return h


def latents(h, state, mode):
    """The latent activities of a State, on the host, concatenated per row."""
    top = len(h.areas) - 1
    last = top if mode == "discriminative" else top + 1
    return np.concatenate([to_np(h, state.mu[l]) for l in range(1, last)], axis=1)


# -- the linear-Gaussian hierarchy in closed form ------------------------------------


def least_squares(h, x):
    """F per row as 0.5 |A u + k_row|^2 over u = (mu_1, ..., mu_L): the stacked
    precision-weighted residuals mu_{l-1} - mu_l @ W_fb[l] - b_fb[l] and prior
    residuals (mu_l - m) / s. Returns A (rows, n) and K (batch, rows)."""
    params = h.parameters_to_numpy()
    areas = h.spec.areas
    sizes = [a.size for a in areas]
    offsets = np.cumsum([0] + sizes[1:])
    n = offsets[-1]
    blocks, constants = [], []
    for l in range(1, len(areas)):
        pi = areas[l - 1].precision
        W, b = params[(areas[l].name, "W_fb")], params[(areas[l].name, "b_fb")]
        block = np.zeros((sizes[l - 1], n))
        block[:, offsets[l - 1]:offsets[l]] = -W.T
        if l > 1:
            block[:, offsets[l - 2]:offsets[l - 1]] = np.eye(sizes[l - 1])
            constant = np.broadcast_to(-b, (x.shape[0], sizes[l - 1]))
        else:
            constant = x - b
        blocks.append(np.sqrt(pi) * block)
        constants.append(np.sqrt(pi) * constant)
    for l, area in enumerate(areas):
        prior = area.prior
        if prior is None and l == len(areas) - 1:
            raise AssertionError("the test's hierarchy names its top prior")
        if prior is not None and l > 0:
            w = np.sqrt(prior.weight) / prior.scale
            block = np.zeros((sizes[l], n))
            block[:, offsets[l - 1]:offsets[l]] = w * np.eye(sizes[l])
            blocks.append(block)
            constants.append(np.full((x.shape[0], sizes[l]), -w * prior.mean))
    return np.vstack(blocks), np.hstack(constants)


def exact_flow(h, x, u0, t):
    """The gradient flow du/dt = -(H u + A^T k) of the quadratic F, H = A^T A,
    at time t (None: its equilibrium), per row."""
    A, K = least_squares(h, x)
    H = A.T @ A
    equilibrium = np.linalg.solve(H, -(K @ A).T).T
    if t is None:
        return equilibrium
    values, vectors = np.linalg.eigh(H)
    decay = vectors @ np.diag(np.exp(-values * t)) @ vectors.T
    return equilibrium + (u0 - equilibrium) @ decay.T


def energy_exact(h, x, u):
    """Per-sample F of the quadratic, up to the constant priors drop (none here)."""
    A, K = least_squares(h, x)
    r = u @ A.T + K
    return 0.5 * np.mean(np.sum(r * r, axis=1))


def linear_problem(seed=0, batch=6):
    h = model(LINEAR_GAUSSIAN, seed=seed)
    x = np.random.default_rng(seed).normal(size=(batch, 8))
    return h, x


@pytest.mark.parametrize("solver", ["heun", "adaptive"])
def test_linear_gaussian_reaches_the_closed_form_equilibrium(solver):
    h, x = linear_problem()
    A, _ = least_squares(h, x)
    curvature = np.linalg.eigvalsh(A.T @ A)
    settings = Relaxation(steps=5000, step_size=1.0 / curvature[-1], tolerance=1e-15, solver=solver,
                          rtol=1e-9, atol=1e-12)
    state = relax_generative(h, put(h, x), settings)
    assert state.converged is True
    expected = exact_flow(h, x, None, None)
    got = latents(h, state, "generative")
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * np.max(np.abs(expected)))
    # the reported energy is the quadratic's at the end
    assert to_np(h, state.energy)[-1] == pytest.approx(energy_exact(h, x, got), rel=1e-10)
    # the starting energy too: F is written once per mode, not twice
    u0 = latents(h, relax_generative(h, put(h, x), Relaxation(steps=0)), "generative")
    assert to_np(h, state.energy)[0] == pytest.approx(energy_exact(h, x, u0), rel=1e-10)


def test_linear_flow_follows_the_exponential():
    """At t = 1.5 the adaptive solver matches expm(-H t) on the linear flow within a few rtol."""
    h, x = linear_problem(seed=1)
    u0 = latents(h, relax_generative(h, put(h, x), Relaxation(steps=0)), "generative")
    exact = exact_flow(h, x, u0, 1.5)
    for rtol in (1e-3, 1e-5):
        atol = 1e-3 * rtol
        settings = Relaxation(steps=10_000, solver="adaptive", rtol=rtol, atol=atol, step_size=0.01)
        state = solve_generative(h, put(h, x), settings, until=1.5)
        error = (latents(h, state, "generative") - exact) / (atol + rtol * np.abs(exact))
        assert np.sqrt(np.mean(error**2)) <= 3.0, rtol
        assert np.sqrt(np.mean(error**2)) >= 1e-3, rtol  # the tolerance is used, not far undershot


# -- orders and tolerance on a nonlinear (tanh) discriminative stack -----------------


def numpy_field(h, x, y):
    """dF/dmu of the discriminative tanh/linear-top stack of precision 1 with an mse
    loss, written out in NumPy: mu_l - tanh(a_l), back-projections through W_ff^T."""
    params = h.parameters_to_numpy()
    names = [a.name for a in h.spec.areas]
    W = [None] + [params[(n, "W_ff")] for n in names[1:]]
    b = [None] + [params[(n, "b_ff")] for n in names[1:]]
    top = len(names) - 1

    def gradient(u):
        mu = [x] + u + [y]
        a = [None] + [mu[l - 1] @ W[l] + b[l] for l in range(1, top + 1)]
        eps = [None] + [mu[l] - np.tanh(a[l]) for l in range(1, top)]
        g = [None] + [eps[l] * (1.0 - np.tanh(a[l]) ** 2) for l in range(1, top)] + [y - a[top]]
        return [eps[l] - g[l + 1] @ W[l + 1].T for l in range(1, top)]

    return gradient


def rk4(gradient, u, horizon, steps):
    """Classical Runge-Kutta on du/dt = -gradient(u)."""
    h = horizon / steps
    for _ in range(steps):
        k1 = [-d for d in gradient(u)]
        k2 = [-d for d in gradient([a + 0.5 * h * k for a, k in zip(u, k1)])]
        k3 = [-d for d in gradient([a + 0.5 * h * k for a, k in zip(u, k2)])]
        k4 = [-d for d in gradient([a + h * k for a, k in zip(u, k3)])]
        u = [a + h / 6.0 * (p + 2 * q + 2 * r + s) for a, p, q, r, s in zip(u, k1, k2, k3, k4)]
    return np.concatenate(u, axis=1)


def disc_problem(seed=2, batch=6, scale=0.6):
    h = model(DISC, seed=seed, scale=scale)
    x, y = random_data(np.random.default_rng(seed), batch, 7, 3, "mse")
    sweep = relax_discriminative(h, put(h, x), put(h, y), get_loss("mse"), Relaxation(steps=0))
    u0 = [to_np(h, sweep.mu[l]) for l in range(1, 3)]
    return h, x, y, u0


def test_heun_is_second_order_and_euler_first():
    h, x, y, u0 = disc_problem()
    horizon = 1.0
    reference = rk4(numpy_field(h, x, y), u0, horizon, 2000)
    orders = {}
    for solver in ("euler", "heun"):
        errors = []
        for step in (0.1, 0.05, 0.025):
            settings = Relaxation(steps=round(horizon / step), step_size=step, solver=solver)
            state = relax_discriminative(h, put(h, x), put(h, y), get_loss("mse"), settings)
            errors.append(np.max(np.abs(latents(h, state, "discriminative") - reference)))
        orders[solver] = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all((orders["euler"] > 0.85) & (orders["euler"] < 1.15)), orders
    assert np.all((orders["heun"] > 1.8) & (orders["heun"] < 2.2)), orders


def test_adaptive_meets_its_tolerance_on_a_nonlinear_flow():
    h, x, y, u0 = disc_problem()
    horizon = 2.0
    reference = rk4(numpy_field(h, x, y), u0, horizon, 4000)
    norms = []
    for rtol in (1e-3, 1e-4, 1e-5):
        atol = 1e-3 * rtol
        settings = Relaxation(steps=10_000, step_size=0.01, solver="adaptive", rtol=rtol, atol=atol)
        state = solve_discriminative(h, put(h, x), put(h, y), get_loss("mse"), settings, until=horizon)
        error = (latents(h, state, "discriminative") - reference) / (atol + rtol * np.abs(reference))
        norms.append(np.sqrt(np.mean(error**2)))
        # three new stages per attempted step, the first stage once
        assert state.evaluations >= 1 + 3 * state.steps and (state.evaluations - 1) % 3 == 0
    assert max(norms) <= 3.0, norms


def steps_to(trace, target, within=1e-4):
    """First index where the energy trace is within ``within`` (relative) of ``target``."""
    close = np.nonzero(np.abs(trace - target) <= within * abs(target))[0]
    assert close.size, "the trace never gets there"
    return int(close[0])


def test_adaptive_needs_fewer_evaluations_than_euler():
    """A 64-32-32-10 tanh stack (the 784-256-256-10 benchmark, smaller): the
    gradient evaluations until F is within 1e-4 of its equilibrium value, for
    the adaptive solver at its default tolerances and Euler at the default
    step 0.1 (85 against 101 when written). Euler at its largest stable step
    (0.3 here) needs fewer still (33): this stiff flow is stability-limited,
    and bench/pc_solvers.py measures that on the full-size networks."""
    spec = HierarchySpec.from_sizes([64, 32, 32, 10], activation="tanh", output_activation="linear")
    h = build64(spec, "numpy", seed=0)
    rng = np.random.default_rng(0)
    x = put(h, rng.uniform(size=(16, 64)))
    y = put(h, np.eye(10)[rng.integers(0, 10, 16)])
    loss = get_loss("mse")
    exact = Relaxation(steps=20_000, solver="adaptive", rtol=1e-8, atol=1e-10, tolerance=1e-14)
    final = relax_discriminative(h, x, y, loss, exact)
    assert final.converged is True
    target = float(to_np(h, final.energy)[-1])
    euler = to_np(h, relax_discriminative(h, x, y, loss, Relaxation(steps=400, step_size=0.1)).energy)
    euler_evaluations = steps_to(euler, target)
    adaptive = relax_discriminative(h, x, y, loss, Relaxation(steps=400, solver="adaptive"))
    n = steps_to(to_np(h, adaptive.energy), target)
    # the same deterministic path, cut after n accepted steps
    cut = relax_discriminative(h, x, y, loss, Relaxation(steps=n, solver="adaptive"))
    np.testing.assert_array_equal(to_np(h, cut.energy), to_np(h, adaptive.energy)[: n + 1])
    assert cut.evaluations < euler_evaluations, (cut.evaluations, euler_evaluations)
    # both end at the equilibrium energy
    assert to_np(h, adaptive.energy)[-1] == pytest.approx(target, rel=1e-6)
    assert euler[-1] == pytest.approx(target, rel=1e-6)


@pytest.mark.parametrize("rtol", [1e-2, 1e-3, 1e-5])
def test_adaptive_energy_decreases_on_a_convex_problem(rtol):
    h, x = linear_problem(seed=3)
    settings = Relaxation(steps=2000, step_size=0.05, solver="adaptive", rtol=rtol, atol=1e-3 * rtol,
                          tolerance=1e-13)
    energy = to_np(h, relax_generative(h, put(h, x), settings).energy)
    assert energy.size > 10
    assert np.all(np.diff(energy) <= 1e-13 * abs(energy[0])), np.max(np.diff(energy))
    assert energy[-1] == pytest.approx(energy_exact(h, x, exact_flow(h, x, None, None)), rel=1e-6)


# -- what the State carries ----------------------------------------------------------


@pytest.mark.parametrize("solver", ["heun", "adaptive"])
def test_state_fields_and_observer(solver):
    h, x, y, _ = disc_problem(batch=5)
    seen = []
    settings = Relaxation(steps=7, step_size=0.1, solver=solver)
    def observe(t, snapshot):
        seen.append((t, to_np(h, snapshot.activity(1)), to_np(h, snapshot.error(3))))

    state = relax_discriminative(h, put(h, x), put(h, y), get_loss("mse"), settings, observe=observe)
    euler = relax_discriminative(h, put(h, x), put(h, y), get_loss("mse"), Relaxation(steps=7, step_size=0.1))
    assert state.mode == "discriminative" and state.steps == 7 and state.converged is None
    assert to_np(h, state.energy).shape == (8,) and euler.evaluations is None
    if solver == "heun":
        assert state.evaluations == 2 * 7
    else:
        assert state.evaluations >= 1 + 3 * 7 and (state.evaluations - 1) % 3 == 0
    assert [t for t, _, _ in seen] == list(range(8))
    np.testing.assert_array_equal(seen[-1][1], to_np(h, state.mu[1]))
    np.testing.assert_array_equal(seen[-1][2], to_np(h, state.errors[3]))
    # the same lists and shapes as Euler's State, the sweep's loss, the clamped ends
    for name in ("mu", "eps", "errors", "presynaptic", "predictions"):
        mine, theirs = getattr(state, name), getattr(euler, name)
        shapes = [[None if v is None else v.shape for v in values] for values in (mine, theirs)]
        assert shapes[0] == shapes[1], name
    assert float(to_np(h, state.loss)) == pytest.approx(float(to_np(h, euler.loss)), rel=1e-12)
    np.testing.assert_array_equal(to_np(h, state.mu[3]), y)
    np.testing.assert_array_equal(to_np(h, state.target), y)
    # errors and predictions are those of the final activities
    relaxed = to_np(h, state.mu[2])
    np.testing.assert_allclose(to_np(h, state.eps[2]), relaxed - to_np(h, state.predictions[2]), rtol=1e-12)


@pytest.mark.parametrize("solver", ["heun", "adaptive"])
def test_tolerance_stops_early(solver):
    h, x, y, _ = disc_problem()
    settings = Relaxation(steps=5000, step_size=0.2, tolerance=1e-8, solver=solver)
    state = relax_discriminative(h, put(h, x), put(h, y), get_loss("mse"), settings)
    energy = to_np(h, state.energy)
    assert state.converged is True and 2 < state.steps < 5000
    assert energy.shape == (state.steps + 1,)
    assert abs(energy[-1] - energy[-2]) < 1e-8 <= np.min(np.abs(np.diff(energy[:-1])))


def test_learning_rule_reads_the_state_unchanged():
    """PC's updates at an equilibrium found by Heun, the adaptive solver or Euler agree."""
    h, x, y, _ = disc_problem()
    updates = {}
    for solver in ("euler", "heun", "adaptive"):
        rule = PredictiveCoding(loss="mse", inference=Relaxation(steps=5000, step_size=0.2, tolerance=1e-13,
                                                                 solver=solver, rtol=1e-8, atol=1e-10))
        state = rule.infer(h, put(h, x), put(h, y))
        assert state.converged is True
        updates[solver] = {k: to_np(h, v) for k, v in rule.gradients(h, state).items()}
    for solver in ("heun", "adaptive"):
        for key, value in updates["euler"].items():
            np.testing.assert_allclose(updates[solver][key], value, rtol=1e-5, atol=1e-7,
                                       err_msg=f"{solver} {key}")


# -- backends and dtypes -------------------------------------------------------------


@pytest.mark.parametrize("solver", ["heun", "adaptive"])
@pytest.mark.parametrize("mode", ["discriminative", "generative"])
def test_float32_on_every_backend_agrees_with_float64_numpy(backend_name, mode, solver):
    """Heun: 40 steps; adaptive: up to t = 3 (float32 may choose other steps than
    float64, so the two are compared at the same time, not the same step)."""
    spec = DISC if mode == "discriminative" else GEN
    rtol = 1e-4
    settings = Relaxation(steps=40 if solver == "heun" else 10_000, step_size=0.1, solver=solver, rtol=rtol,
                          atol=1e-6)
    until = None if solver == "heun" else 3.0
    rng = np.random.default_rng(4)
    x, y = random_data(rng, 6, 7, 3, "mse")
    results = []
    for backend, dtype in (("numpy", "float64"), (backend_name, "float32")):
        h = model(spec, backend, seed=4, dtype=dtype)
        if mode == "discriminative":
            state = solve_discriminative(h, put(h, x), put(h, y), get_loss("mse"), settings, until=until)
        else:
            state = solve_generative(h, put(h, x), settings, until=until)
        results.append((latents(h, state, mode), to_np(h, state.energy), state))
    (u64, e64, s64), (u32, e32, s32) = results
    assert s64.steps > 10 and s32.steps > 10
    if solver == "heun":
        assert s64.steps == s32.steps == 40 and s64.evaluations == s32.evaluations == 80
    np.testing.assert_allclose(u32, u64, rtol=3 * rtol, atol=3 * rtol * np.max(np.abs(u64)))
    np.testing.assert_allclose(e32[-1], e64[-1], rtol=3 * rtol)


# The vector field against the Euler reference's gradient on models with
# precisions, relu / sigmoid / tanh areas, both losses and non-Gaussian priors.
FIELD_DISC = HierarchySpec.from_dict({
    "areas": [
        {"name": "x", "size": 7},
        {"name": "a", "size": 6, "activation": "tanh", "precision": 2.0},
        {"name": "b", "size": 5, "activation": "relu", "precision": 0.5},
        {"name": "c", "size": 5, "activation": "sigmoid"},
        {"name": "out", "size": 3, "activation": "linear", "precision": 0.5},
    ],
})
FIELD_GEN = HierarchySpec.from_dict({
    "areas": [
        {"name": "x", "size": 7, "precision": 2.0},
        {"name": "h1", "size": 6, "feedback_activation": "tanh", "precision": 0.5,
         "prior": {"kind": "laplace", "mean": 0.1, "scale": 0.7}},
        {"name": "h2", "size": 5, "feedback_activation": "sigmoid",
         "prior": {"kind": "cauchy", "mean": 0.0, "scale": 1.5, "weight": 0.3}},
        {"name": "z", "size": 3, "feedback_activation": "relu"},
    ],
})


@pytest.mark.parametrize("case", ["mse", "cross_entropy", "generative"])
def test_vector_field_is_the_reference_gradient(backend_name, case):
    """One reference Euler step of size 1 from a zero start lands on -dF/dmu: the
    solvers' velocity and energy at that start must be the same."""
    from cortexsim.inference.reference import reference_discriminative, reference_generative
    from cortexsim.inference.solvers import _Discriminative, _Generative

    settings = Relaxation(steps=1, step_size=1.0, init="zeros")
    if case == "generative":
        h = model(FIELD_GEN, backend_name, seed=7)
        x = put(h, np.random.default_rng(7).normal(size=(5, 7)))
        field = _Generative(h, x)
        one = reference_generative(h, x, settings)
        top = len(h.areas)
    else:
        h = model(FIELD_DISC, backend_name, seed=7)
        xn, yn = random_data(np.random.default_rng(7), 5, 7, 3, case)
        x, y = put(h, xn), put(h, yn)
        field = _Discriminative(h, x, y, get_loss(case))
        one = reference_discriminative(h, x, y, get_loss(case), settings)
        top = len(h.areas) - 1
    start = field.start("zeros", None) if case == "generative" else field.start("zeros")
    point = field.point(start)
    assert float(to_np(h, point.energy)) / 5 == pytest.approx(float(to_np(h, one.energy)[0]), rel=1e-12)
    velocity = field.velocity(point)
    assert len(velocity) == top - 1
    for l, v in zip(range(1, top), velocity):
        np.testing.assert_allclose(to_np(h, v), to_np(h, one.mu[l]), rtol=1e-12, atol=1e-12,
                                   err_msg=f"{case} area {l}")


# -- settings ------------------------------------------------------------------------


@pytest.mark.parametrize("settings, key", [
    (dict(solver="rk4"), "inference.solver"),
    (dict(solver="Heun"), "inference.solver"),
    (dict(solver="adaptive", rtol=0.0), "inference.rtol"),
    (dict(solver="adaptive", rtol=-1e-3), "inference.rtol"),
    (dict(solver="adaptive", rtol="tight"), "inference.rtol"),
    (dict(solver="adaptive", atol=0.0), "inference.atol"),
    (dict(solver="heun", fixed_prediction=True), "inference.fixed_prediction"),
    (dict(solver="adaptive", step_size=0.0), "inference.step_size"),
])
def test_bad_settings_name_the_key(settings, key):
    with pytest.raises(ConfigurationError, match=key.replace(".", r"\.")):
        Relaxation(**settings)


def test_adaptive_that_cannot_meet_its_tolerance_says_so():
    """A step that no step size makes acceptable (here NaN activities) is reported,
    not retried forever."""
    h, x, y, _ = disc_problem()
    x[0, 0] = np.nan
    with pytest.raises(DivergenceError, match="inference.solver"):
        relax_discriminative(h, put(h, x), put(h, y), get_loss("mse"),
                             Relaxation(steps=100, solver="adaptive"))
