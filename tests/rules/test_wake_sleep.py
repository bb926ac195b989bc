"""Wake–sleep: the samples are those of the documented recognition and
generative models, the wake and sleep updates are the gradients of the losses
they claim to descend, and on linear-Gaussian data the learned generative
weights span the principal subspace (Neal & Dayan 1997) at the scale the
fixed-point analysis of the module docstring predicts."""

import json
import math

import numpy as np
import pytest
import scipy.linalg
from conftest import build64, central_difference, np_act, put, rel_err, to_np

from cortexsim import (
    Adam,
    AreaSpec,
    ConfigurationError,
    HierarchySpec,
    PredictiveCoding,
    Prior,
    Relaxation,
    Scheduler,
    feedforward,
)
from cortexsim.rules.wake_sleep import WakeSleep


def nonlinear_spec(top_prior=None):
    return HierarchySpec(
        areas=(
            AreaSpec("x", 5, precision=2.0),
            AreaSpec("h1", 4, activation="tanh", feedback_activation="tanh", precision=0.5),
            AreaSpec("h2", 3, activation="sigmoid", precision=1.5, prior=top_prior),
        )
    )


def randomized(spec, backend_name, seed=3):
    """A float64 hierarchy with random weights and biases; returns (h, host params)."""
    h = build64(spec, backend_name, seed=seed)
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(0.0, 0.6, size=v.shape) for k, v in h.parameters_to_numpy().items()}
    h.load_parameters(params)
    return h, params


# -- an independent NumPy reference of the two models ------------------------------


def info(spec):
    a = spec.areas
    return (
        [s.name for s in a],
        [s.activation for s in a],
        [s.feedback_activation for s in a],
        [s.precision for s in a],
    )


def np_wake_samples(spec, P, x, rng):
    """h_l = f_l(h_{l-1} @ W_ff + b_ff) + N(0, 1/pi_l), drawn in area order."""
    names, acts, _, pis = info(spec)
    h = [x]
    for l in range(1, len(names)):
        m = np_act(acts[l], h[-1] @ P[(names[l], "W_ff")] + P[(names[l], "b_ff")])
        h.append(m + rng.standard_normal(m.shape) / math.sqrt(pis[l]))
    return h


def np_predictions(spec, P, h):
    names, _, fbs, _ = info(spec)
    return [
        np_act(fbs[l], h[l]) @ P[(names[l], "W_fb")] + P[(names[l], "b_fb")]
        for l in range(1, len(names))
    ]


def np_wake_loss(spec, P, h):
    """(1/B) sum 0.5 pi_{l-1} |h_{l-1} - phi_l(h_l) @ W_fb_l - b_fb_l|^2."""
    _, _, _, pis = info(spec)
    preds = np_predictions(spec, P, h)
    return sum(0.5 * pis[l] * np.sum((h[l] - preds[l]) ** 2) for l in range(len(preds))) / len(h[0])


def np_dreams(spec, P, batch, rng):
    """Top from its prior, then x_{l-1} = phi_l(x_l) @ W_fb + b_fb + N(0, 1/pi_{l-1})."""
    names, _, fbs, pis = info(spec)
    top = len(names) - 1
    prior = spec.areas[top].prior or Prior()
    shape = (batch, spec.areas[top].size)
    draw = {
        "gaussian": rng.standard_normal,
        "laplace": lambda size: rng.laplace(size=size),
        "cauchy": rng.standard_cauchy,
    }[prior.kind]
    x = [None] * (top + 1)
    x[top] = prior.mean + prior.scale * draw(size=shape)
    for l in range(top, 0, -1):
        mean = np_act(fbs[l], x[l]) @ P[(names[l], "W_fb")] + P[(names[l], "b_fb")]
        x[l - 1] = mean + rng.standard_normal(mean.shape) / math.sqrt(pis[l - 1])
    return x


def np_sleep_loss(spec, P, xs):
    """(1/B') sum 0.5 pi_l |x_l - f_l(x_{l-1} @ W_ff_l + b_ff_l)|^2."""
    names, acts, _, pis = info(spec)
    total = 0.0
    for l in range(1, len(names)):
        m = np_act(acts[l], xs[l - 1] @ P[(names[l], "W_ff")] + P[(names[l], "b_ff")])
        total += 0.5 * pis[l] * np.sum((xs[l] - m) ** 2)
    return total / len(xs[0])


# -- the maths ------------------------------------------------------------------------


def test_wake_samples_and_gradients_match_the_generative_loss(backend_name):
    spec = nonlinear_spec(Prior("gaussian", 0.2, 0.7))
    h, P = randomized(spec, backend_name)
    x = np.random.default_rng(7).normal(size=(6, 5))
    rule = WakeSleep(seed=5)
    state = rule.infer(h, put(h, x), y=put(h, np.ones((6, 3))))  # y is ignored
    assert state.mode == "wake_sleep" and state.producer is rule

    samples = np_wake_samples(spec, P, x, np.random.default_rng(5))
    for l in range(len(samples)):
        assert rel_err(to_np(h, state.mu[l]), samples[l]) < 1e-12
    preds = np_predictions(spec, P, samples)
    pis = info(spec)[3]
    for l in (1, 2):
        assert rel_err(to_np(h, state.errors[l]), pis[l - 1] * (samples[l - 1] - preds[l - 1])) < 1e-12
    assert to_np(h, state.loss) == pytest.approx(0.5 * np.sum((x - preds[0]) ** 2) / 6, rel=1e-12)
    prior_energy = 0.5 * np.sum(((samples[2] - 0.2) / 0.7) ** 2) / 6
    assert to_np(h, state.energy)[0] == pytest.approx(np_wake_loss(spec, P, samples) + prior_energy)

    grads = {k: to_np(h, v) for k, v in rule.gradients(h, state).items()}
    for area in ("h1", "h2"):
        for name in ("W_fb", "b_fb"):
            fd = central_difference(lambda p: np_wake_loss(spec, p, samples), P, (area, name))
            assert rel_err(grads[(area, name)], fd) < 1e-7, (area, name)


@pytest.mark.parametrize(
    "prior", [None, Prior("gaussian", 0.2, 0.7), Prior("laplace", -0.1, 0.5), Prior("cauchy", 0.0, 0.3)]
)
def test_dreams_and_sleep_gradients_match_the_recognition_loss(backend_name, prior):
    spec = nonlinear_spec(prior)
    h, P = randomized(spec, backend_name)
    x = np.random.default_rng(7).normal(size=(6, 5))
    rule = WakeSleep(sleep_samples=9, seed=11)
    state = rule.infer(h, put(h, x))
    saved = json.loads(json.dumps(rule.state_dict()))  # JSON-able, as checkpoints need
    grads = {k: to_np(h, v) for k, v in rule.gradients(h, state).items()}

    replay = np.random.default_rng()
    replay.bit_generator.state = saved["rng"]
    dreams = np_dreams(spec, P, 9, replay)
    for l in range(3):
        assert to_np(h, rule.dreams[l]).shape == (9, spec.areas[l].size)
        assert rel_err(to_np(h, rule.dreams[l]), dreams[l]) < 1e-12
    for area in ("h1", "h2"):
        for name in ("W_ff", "b_ff"):
            fd = central_difference(lambda p: np_sleep_loss(spec, p, dreams), P, (area, name))
            assert rel_err(grads[(area, name)], fd) < 1e-7, (area, name)

    rule.load_state_dict(saved)  # the checkpointed position replays the same dream
    again = rule.dream(h, 9)
    assert all(rel_err(to_np(h, again[l]), dreams[l]) < 1e-12 for l in range(3))


def test_without_recognition_noise_the_wake_samples_are_the_feedforward_sweep(backend_name):
    spec = nonlinear_spec()
    h, _ = randomized(spec, backend_name)
    x = put(h, np.random.default_rng(0).normal(size=(4, 5)))
    state = WakeSleep(recognition_noise=False).infer(h, x)
    sweep = feedforward(h, x)
    for l in (1, 2):
        assert rel_err(to_np(h, state.mu[l]), to_np(h, sweep.h[l])) < 1e-14
        assert rel_err(to_np(h, state.sweep.h[l]), to_np(h, sweep.h[l])) < 1e-14


# -- the science: principal subspace of linear-Gaussian data --------------------------

D, K, N = 10, 3, 2000
SINGULAR = (4.0, 3.0, 2.0)
NOISE = 0.5  # isotropic; data variance 0.25 off the subspace vs 4 .. 16 on it


def pca_data():
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.normal(size=(D, D)))[0][:, :K]
    A = np.diag(SINGULAR) @ basis.T  # (k, d), distinct singular values
    mean = rng.normal(size=D)
    x = rng.normal(size=(N, K)) @ A + mean + NOISE * rng.normal(size=(N, D))
    lam, vec = np.linalg.eigh(np.cov(x.T, bias=True))
    return x, mean, lam[::-1], vec[:, ::-1][:, :K]


class WakeOnly(WakeSleep):
    """Ablation: no sleep phase, the recognition weights stay at their random start."""

    def gradients(self, hierarchy, state):
        return self.wake_gradients(hierarchy, state)


def train(backend_name, rule):
    spec = HierarchySpec(
        areas=(AreaSpec("x", D, activation="linear"), AreaSpec("z", K, activation="linear"))
    )
    h = build64(spec, backend_name, seed=1)
    before = to_np(h, h.areas[1].W_fb)
    x, *_ = pca_data()
    Scheduler(h, rule, Adam(0.01), x, batch_size=50, epochs=30, seed=0).run()
    return h, before


def angles(W, U):
    """Principal angles (degrees, largest first) between span of W's rows and U's columns."""
    return np.degrees(scipy.linalg.subspace_angles(W.T, U))


def test_wake_sleep_recovers_the_principal_subspace(backend_name):
    _, mean, lam, U = pca_data()
    h, W0 = train(backend_name, WakeSleep(seed=0))
    W = to_np(h, h.areas[1].W_fb)
    learned = angles(W, U)
    # measured: [1.2, 0.55, 0.39] degrees; the random start: [88, 58, 26] degrees
    assert learned.max() < 5.0, learned
    assert angles(W0, U).max() > 45.0
    # fixed point of the delta rules with s = sigma = 1: |w_i|^2 = sqrt(lambda_i) - 1
    # (measured within 2%); probabilistic PCA's ML would be lambda_i - 1, 3 to 5 times larger
    scale = np.linalg.svd(W, compute_uv=False) ** 2
    np.testing.assert_allclose(scale, np.sqrt(lam[:K]) - 1.0, rtol=0.15)
    assert np.all(scale < 0.5 * (lam[:K] - 1.0))
    assert np.abs(to_np(h, h.areas[1].b_fb) - mean).max() < 0.2  # measured 0.05


def test_without_sleep_the_subspace_is_not_found():
    _, _, _, U = pca_data()
    h, _ = train("numpy", WakeOnly(seed=0))
    # measured: 41.5 degrees (the recognition weights never learn to invert p)
    assert angles(to_np(h, h.areas[1].W_fb), U).max() > 20.0


# -- the interface ---------------------------------------------------------------------


def test_learned_parameters_are_what_gradients_return(backend_name):
    spec = nonlinear_spec()
    h, _ = randomized(spec, backend_name)
    rule = WakeSleep()
    keys = rule.learned_parameters(h)
    assert keys == [(a, p) for a in ("h1", "h2") for p in ("W_ff", "b_ff", "W_fb", "b_fb")]
    grads = rule.gradients(h, rule.infer(h, put(h, np.zeros((3, 5)))))
    assert set(grads) == set(keys)
    for (area, name), g in grads.items():
        assert tuple(g.shape) == tuple(getattr(h[area], name).shape)
    assert WakeSleep.name == "wake_sleep"


@pytest.mark.parametrize(
    "settings, where",
    [
        ({"sleep_samples": 0}, "rule.sleep_samples"),
        ({"sleep_samples": 2.5}, "rule.sleep_samples"),
        ({"sleep_samples": True}, "rule.sleep_samples"),
        ({"seed": -1}, "rule.seed"),
        ({"recognition_noise": "yes"}, "rule.recognition_noise"),
        ({"recognition_noise": 1}, "rule.recognition_noise"),
    ],
)
def test_bad_settings_name_the_setting(settings, where):
    with pytest.raises(ConfigurationError, match=where):
        WakeSleep(**settings)


def test_a_prior_on_a_middle_area_is_refused():
    spec = HierarchySpec(
        areas=(
            AreaSpec("x", 4),
            AreaSpec("mid", 3, prior=Prior("laplace", 0.0, 1.0)),
            AreaSpec("top", 2),
        )
    )
    h = build64(spec, "numpy")
    with pytest.raises(ConfigurationError, match=r"model\.areas\[1\]\.prior.*'mid'"):
        WakeSleep().infer(h, put(h, np.zeros((2, 4))))


def test_gradients_need_a_wake_sleep_state():
    spec = nonlinear_spec()
    h, _ = randomized(spec, "numpy")
    state = PredictiveCoding("generative", inference=Relaxation(steps=2)).infer(
        h, put(h, np.zeros((2, 5)))
    )
    with pytest.raises(ConfigurationError, match="wake_sleep"):
        WakeSleep().gradients(h, state)
