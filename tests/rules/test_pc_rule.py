"""Predictive-coding learning: fixed-prediction PC equals backprop exactly,
strict PC approaches it as the output error shrinks, and every local update is
the gradient of the free energy at the relaxed activities."""

import numpy as np
import pytest

from conftest import (
    build64,
    central_difference,
    cosine,
    flatten,
    grads_to_np,
    np_act,
    put,
    random_data,
    rel_err,
    to_np,
)
from cortexsim import (
    AreaSpec,
    Backprop,
    ConfigurationError,
    HierarchySpec,
    PredictiveCoding,
    Prior,
    Relaxation,
    make_rule,
)

SIZES = [6, 5, 4, 3]  # four areas: L = 3


def net(top_precision=1.0, hidden="tanh", sizes=SIZES):
    last = len(sizes) - 1
    return HierarchySpec(
        tuple(
            AreaSpec(
                name=f"v{i}",
                size=s,
                activation="linear" if i == last else hidden,
                precision=top_precision if i == last else 1.0,
            )
            for i, s in enumerate(sizes)
        )
    )


def both(h, rule, loss, x, y):
    state = rule.infer(h, put(h, x), put(h, y))
    pc = grads_to_np(h, rule.gradients(h, state))
    bp = grads_to_np(h, Backprop(loss).gradients(h, state))
    return state, pc, bp


def perturbed(h, seed, scale=0.3):
    """Give the biases (zero at build) and weights some random structure."""
    rng = np.random.default_rng(seed + 1000)
    h.load_parameters({k: v + scale * rng.normal(size=v.shape) for k, v in h.parameters_to_numpy().items()})


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("steps", [2, 3, 10])
def test_fixed_prediction_step_one_equals_backprop(backend_name, loss, steps):
    h = build64(net(hidden="gelu"), backend_name, seed=4)
    perturbed(h, 4)
    x, y = random_data(np.random.default_rng(4), 9, SIZES[0], SIZES[-1], loss)
    rule = PredictiveCoding(loss=loss, inference=Relaxation(steps=steps, step_size=1.0, fixed_prediction=True))
    state, pc, bp = both(h, rule, loss, x, y)
    assert set(pc) == set(bp) == {(f"v{l}", p) for l in (1, 2, 3) for p in ("W_ff", "b_ff")}
    for key in bp:
        assert np.abs(bp[key]).max() > 1e-4
        assert rel_err(pc[key], bp[key]) <= 1e-6, (key, rel_err(pc[key], bp[key]))


def test_fixed_prediction_needs_l_minus_one_steps(backend_name):
    """With one step the error has not reached area 1 yet: the test can fail."""
    h = build64(net(), backend_name, seed=4)
    perturbed(h, 4)
    x, y = random_data(np.random.default_rng(4), 9, SIZES[0], SIZES[-1], "mse")
    rule = PredictiveCoding(inference=Relaxation(steps=1, step_size=1.0, fixed_prediction=True))
    _, pc, bp = both(h, rule, "mse", x, y)
    assert rel_err(pc[("v3", "W_ff")], bp[("v3", "W_ff")]) <= 1e-12
    assert rel_err(pc[("v2", "W_ff")], bp[("v2", "W_ff")]) <= 1e-12
    assert not np.any(pc[("v1", "W_ff")])
    assert np.abs(bp[("v1", "W_ff")]).max() > 1e-4


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_fixed_prediction_small_steps_converge_to_backprop(backend_name, loss):
    h = build64(net(), backend_name, seed=6)
    perturbed(h, 6)
    x, y = random_data(np.random.default_rng(6), 9, SIZES[0], SIZES[-1], loss)
    rule = PredictiveCoding(loss=loss, inference=Relaxation(steps=400, step_size=0.1, fixed_prediction=True))
    _, pc, bp = both(h, rule, loss, x, y)
    for key in bp:
        assert rel_err(pc[key], bp[key]) <= 1e-6, (key, rel_err(pc[key], bp[key]))


def test_strict_pc_approaches_backprop_as_output_error_shrinks(backend_name):
    h = build64(net(top_precision=1e-4), backend_name, seed=0)
    x, y = random_data(np.random.default_rng(0), 8, SIZES[0], SIZES[-1], "mse")
    rule = PredictiveCoding(inference=Relaxation(steps=400, step_size=0.1))
    state, pc, bp = both(h, rule, "mse", x, y)
    keys = sorted(bp)
    assert cosine(flatten(pc, keys), flatten(bp, keys)) >= 0.999
    # the PC update is pi_L times backprop's, to first order in pi_L
    assert rel_err(flatten(pc, keys) / 1e-4, flatten(bp, keys)) < 1e-2
    # ... and the relaxed energy is pi_L times the loss, to first order
    energy = to_np(h, state.energy)
    assert energy[-1] == pytest.approx(1e-4 * float(to_np(h, state.loss)), rel=1e-3)


def test_strict_pc_differs_from_backprop_with_large_output_error(backend_name):
    """Discriminates: at precision 1 with large targets PC is not backprop."""
    h = build64(net(top_precision=1.0), backend_name, seed=0)
    x, y = random_data(np.random.default_rng(0), 8, SIZES[0], SIZES[-1], "mse")
    rule = PredictiveCoding(inference=Relaxation(steps=400, step_size=0.1))
    _, pc, bp = both(h, rule, "mse", x, 5.0 * y)
    keys = sorted(bp)
    assert cosine(flatten(pc, keys), flatten(bp, keys)) < 0.999


# -- every local update is the gradient of F at the relaxed activities --------


def np_discriminative_energy(spec, params, mu, y, loss):
    """F per sample (mean over batch): hidden errors plus pi_L * loss."""
    L = len(spec.areas) - 1
    total = np.zeros(mu[0].shape[0])
    for l in range(1, L + 1):
        area = spec.areas[l]
        a = mu[l - 1] @ params[(area.name, "W_ff")] + params[(area.name, "b_ff")]
        pred = np_act(area.activation, a)
        if l < L:
            total += 0.5 * area.precision * np.sum((mu[l] - pred) ** 2, axis=1)
        elif loss == "mse":
            total += area.precision * 0.5 * np.sum((y - pred) ** 2, axis=1)
        else:
            z = a - a.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            total += area.precision * -np.sum(y * logp, axis=1)
    return float(total.mean())


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_strict_pc_gradients_are_dF_dW_at_relaxed_state(backend_name, loss):
    spec = HierarchySpec(
        tuple(
            AreaSpec(name=f"v{i}", size=s, activation="linear" if i == 3 else "sigmoid", precision=p)
            for i, (s, p) in enumerate(zip(SIZES, [1.0, 0.7, 2.0, 1.5]))
        )
    )
    h = build64(spec, backend_name, seed=2)
    perturbed(h, 2)
    x, y = random_data(np.random.default_rng(2), 7, SIZES[0], SIZES[-1], loss)
    rule = PredictiveCoding(loss=loss, inference=Relaxation(steps=5, step_size=0.2))
    state = rule.infer(h, put(h, x), put(h, y))
    mu = [to_np(h, m) for m in state.mu]
    grads = grads_to_np(h, rule.gradients(h, state))
    host = h.parameters_to_numpy()
    f = lambda p: np_discriminative_energy(spec, p, mu, y, loss)  # noqa: E731
    assert to_np(h, state.energy)[-1] == pytest.approx(f(host), rel=1e-12)
    for key, grad in grads.items():
        numeric = central_difference(f, host, key, h=1e-5)
        assert np.abs(numeric).max() > 1e-6
        assert rel_err(grad, numeric) <= 1e-6, (key, rel_err(grad, numeric))


def np_generative_energy(spec, params, mu, priors):
    """F per sample: precision-weighted errors down the generative path plus priors."""
    L = len(spec.areas) - 1
    total = np.zeros(mu[0].shape[0])
    for l in range(1, L + 1):
        area, below = spec.areas[l], spec.areas[l - 1]
        pred = np_act(area.feedback_activation, mu[l]) @ params[(area.name, "W_fb")] + params[(area.name, "b_fb")]
        total += 0.5 * below.precision * np.sum((mu[l - 1] - pred) ** 2, axis=1)
    for l, prior in enumerate(priors):
        if prior is None:
            continue
        z = (mu[l] - prior.mean) / prior.scale
        if prior.kind == "gaussian":
            total += 0.5 * np.sum(z**2, axis=1)
        elif prior.kind == "laplace":
            total += np.sum(np.abs(z), axis=1)
        else:
            total += np.sum(np.log1p(z**2), axis=1)
    return float(total.mean())


GEN_SPEC = HierarchySpec(
    (
        AreaSpec(name="x", size=6, precision=2.0),
        AreaSpec(name="h", size=4, activation="tanh", feedback_activation="tanh", precision=0.5,
                 prior=Prior("cauchy", 0.1, 1.5)),
        AreaSpec(name="z", size=3, activation="sigmoid", feedback_activation="sigmoid"),
    )
)
GEN_PRIORS = [None, Prior("cauchy", 0.1, 1.5), Prior("gaussian", 0.0, 1.0)]  # top defaults to N(0, 1)


def test_generative_gradients_are_dF_dW_fb(backend_name):
    h = build64(GEN_SPEC, backend_name, seed=3)
    perturbed(h, 3)
    x = np.random.default_rng(3).normal(size=(7, 6))
    rule = PredictiveCoding(mode="generative", inference=Relaxation(steps=30, step_size=0.05))
    state = rule.infer(h, put(h, x))
    mu = [to_np(h, m) for m in state.mu]
    grads = grads_to_np(h, rule.gradients(h, state))
    assert set(grads) == {(n, p) for n in ("h", "z") for p in ("W_fb", "b_fb")}
    host = h.parameters_to_numpy()
    f = lambda p: np_generative_energy(GEN_SPEC, p, mu, GEN_PRIORS)  # noqa: E731
    assert to_np(h, state.energy)[-1] == pytest.approx(f(host), rel=1e-12)
    for key, grad in grads.items():
        numeric = central_difference(f, host, key, h=1e-5)
        assert np.abs(numeric).max() > 1e-6
        # the rule returns the descent direction dF/dW; the optimizer subtracts it
        assert rel_err(grad, numeric) <= 1e-6, (key, rel_err(grad, numeric))


def test_learn_recognition_gradients(backend_name):
    h = build64(GEN_SPEC, backend_name, seed=5)
    perturbed(h, 5)
    x = np.random.default_rng(5).normal(size=(7, 6))
    rule = PredictiveCoding(mode="generative", inference=Relaxation(steps=20, step_size=0.05),
                            learn_recognition=True)
    state = rule.infer(h, put(h, x))
    mu = [to_np(h, m) for m in state.mu]
    grads = grads_to_np(h, rule.gradients(h, state))
    assert set(grads) == {(n, p) for n in ("h", "z") for p in ("W_fb", "b_fb", "W_ff", "b_ff")}
    host = h.parameters_to_numpy()

    def amortization(p):
        total = 0.0
        for l, area in enumerate(GEN_SPEC.areas[1:], start=1):
            a = mu[l - 1] @ p[(area.name, "W_ff")] + p[(area.name, "b_ff")]
            total += np.mean(0.5 * np.sum((mu[l] - np_act(area.activation, a)) ** 2, axis=1))
        return float(total)

    for name in ("h", "z"):
        for p in ("W_ff", "b_ff"):
            numeric = central_difference(amortization, host, (name, p), h=1e-5)
            assert np.abs(numeric).max() > 1e-6
            assert rel_err(grads[(name, p)], numeric) <= 1e-6


def test_rule_errors():
    with pytest.raises(ConfigurationError, match=r"rule\.mode: unknown mode 'generatve'.*did you mean 'generative'"):
        PredictiveCoding(mode="generatve")
    with pytest.raises(ConfigurationError, match=r"rule\.loss: unknown loss 'crossentropy'.*did you mean 'cross_entropy'"):
        PredictiveCoding(loss="crossentropy")
    h = build64(net(), "numpy")
    with pytest.raises(ConfigurationError, match="pass y"):
        PredictiveCoding().infer(h, put(h, np.zeros((2, 6))))
    rule = make_rule("predictive_coding", mode="generative")
    assert isinstance(rule, PredictiveCoding) and rule.mode == "generative"
    h = build64(HierarchySpec.from_sizes([4, 3, 2], output_activation="tanh"), "numpy")
    with pytest.raises(ConfigurationError, match=r"top area 'area2' must have activation 'linear', not 'tanh'"):
        PredictiveCoding(loss="cross_entropy").infer(h, put(h, np.zeros((2, 4))), put(h, np.eye(2)))


def hidden_precision_net(pi):
    last = len(SIZES) - 1
    return HierarchySpec(tuple(
        AreaSpec(name=f"v{i}", size=s, activation="linear" if i == last else "tanh",
                 precision=pi if 0 < i < last else 1.0)
        for i, s in enumerate(SIZES)))


@pytest.mark.parametrize("pi, step", [(2.0, 0.5), (0.5, 2.0), (4.0, 0.25)])
def test_fixed_prediction_is_backprop_when_precision_times_step_is_one(backend_name, pi, step):
    h = build64(hidden_precision_net(pi), backend_name, seed=4)
    perturbed(h, 4)
    x, y = random_data(np.random.default_rng(4), 9, SIZES[0], SIZES[-1], "mse")
    rule = PredictiveCoding(inference=Relaxation(steps=len(SIZES) - 2, step_size=step, fixed_prediction=True))
    _, pc, bp = both(h, rule, "mse", x, y)
    for key in bp:
        assert np.abs(bp[key]).max() > 1e-4
        assert rel_err(pc[key], bp[key]) <= 1e-6, (key, rel_err(pc[key], bp[key]))


def test_fixed_prediction_with_precision_two_and_step_one_is_not_backprop(backend_name):
    """pi s = 2: each step flips the sign of the old error, and after T = 3 steps area 1's
    update points against backprop's; prepare() warns about it."""
    h = build64(hidden_precision_net(2.0), backend_name, seed=4)
    perturbed(h, 4)
    x, y = random_data(np.random.default_rng(4), 9, SIZES[0], SIZES[-1], "mse")
    rule = PredictiveCoding(inference=Relaxation(steps=3, step_size=1.0, fixed_prediction=True))
    with pytest.warns(RuntimeWarning, match=r"precision x step_size = 1 in every hidden area, here 'v1' \(2\), 'v2' \(2\)"):
        rule.prepare(h)
    _, pc, bp = both(h, rule, "mse", x, y)
    assert rel_err(pc[("v3", "W_ff")], bp[("v3", "W_ff")]) <= 1e-12
    a, b = pc[("v1", "W_ff")].ravel(), bp[("v1", "W_ff")].ravel()
    assert np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)) < -0.999


def test_fixed_prediction_warns_only_where_it_should():
    import warnings

    quiet = [(1.0, 1.0), (1.0, 0.1), (2.0, 0.5), (2.0, 0.1)]  # exact, or small steps not claiming it
    for pi, step in quiet:
        h = build64(hidden_precision_net(pi), "numpy", seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            PredictiveCoding(inference=Relaxation(step_size=step, fixed_prediction=True)).prepare(h)
            PredictiveCoding(inference=Relaxation(step_size=1.0)).prepare(build64(hidden_precision_net(2.0), "numpy"))
    h = build64(hidden_precision_net(3.0), "numpy", seed=0)
    with pytest.warns(RuntimeWarning, match=r"grows without bound: 'v1' \(3\), 'v2' \(3\)"):
        PredictiveCoding(inference=Relaxation(step_size=1.0, fixed_prediction=True)).prepare(h)
