"""Reweighted wake–sleep on variational models: the decoder update is the
decoder gradient of the (importance-weighted) bound, the encoder updates are
gradients of -log q at fixed samples (the rule's own, importance-weighted, or
its dreams), the dreams are samples of p, and on probabilistic PCA training
finds the principal subspace."""

import json
import math

import numpy as np
import pytest
import scipy.linalg
from conftest import build64, central_difference, np_act, put, rel_err, to_np
from vae_reference import (
    PCA_NOISE,
    draw_noise,
    log_normal,
    negative_bound,
    one_level_spec,
    pca_data,
    random_data,
    randomized,
    two_level_spec,
)

from cortexsim import Adam, AreaSpec, ConfigurationError, HierarchySpec, Prior, Scheduler
from cortexsim.rules import ELBO, RULES, ReweightedWakeSleep, WakeSleep, make_rule

ENCODER = ("W_ff", "b_ff", "W_ff_logvar", "b_ff_logvar")
DECODER = ("W_fb", "b_fb", "W_fb_logvar", "b_fb_logvar")


def one_level():
    return one_level_spec((6, 5, 3))


def two_level(top_prior=None, x_precision=1.0):
    return two_level_spec((6, 5, 4, 3, 2), top_prior, x_precision)


MODELS = {
    "one_level": one_level,
    "two_level": lambda: two_level(Prior("gaussian", 0.3, 0.8), x_precision=2.0),
}


def replayed(saved):
    rng = np.random.default_rng()
    rng.bit_generator.state = saved["rng"]
    return rng


# -- an independent NumPy reference of q and of p's ancestral sampler ----------------


def neg_log_q(spec, P, x, z, c):
    """-sum_r c_r log q(z_r | x_r), each stochastic area's Gaussian conditioned on
    the encoder's deterministic areas computed from the sample below (or x)."""
    areas = spec.areas
    h, total = x, 0.0
    for l in range(1, len(areas)):
        name = areas[l].name
        m = np_act(areas[l].activation, h @ P[(name, "W_ff")] + P[(name, "b_ff")])
        if areas[l].stochastic:
            var = np.exp(h @ P[(name, "W_ff_logvar")] + P[(name, "b_ff_logvar")])
            total -= c @ log_normal(z[l], m, var).sum(axis=1)
            h = z[l]
        else:
            h = m
    return total


def np_dreams(spec, P, rows, rng, likelihood):
    """Ancestral samples of p in the documented draw order."""
    areas = spec.areas
    L = len(areas) - 1
    prior = areas[L].prior
    mean, scale = (0.0, 1.0) if prior is None else (prior.mean, prior.scale)
    out = [None] * (L + 1)
    out[L] = mean + scale * rng.standard_normal((rows, areas[L].size))
    for l in range(L, 0, -1):
        name = areas[l].name
        u = np_act(areas[l].feedback_activation, out[l])
        below = u @ P[(name, "W_fb")] + P[(name, "b_fb")]
        if l > 1 and areas[l - 1].stochastic:
            sd = np.exp(0.5 * (u @ P[(name, "W_fb_logvar")] + P[(name, "b_fb_logvar")]))
            below = below + sd * rng.standard_normal(below.shape)
        elif l == 1 and likelihood == "bernoulli":
            below = (rng.uniform(size=below.shape) < 1.0 / (1.0 + np.exp(-below))) * 1.0
        elif l == 1:
            below = below + rng.standard_normal(below.shape) / math.sqrt(areas[0].precision)
        out[l - 1] = below
    return out


# -- the maths --------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("model", list(MODELS))
def test_decoder_update_is_the_gradient_of_the_bound(backend_name, model, likelihood, k):
    spec = MODELS[model]()
    h, P = randomized(spec, backend_name)
    x = random_data(spec, likelihood)
    rule = ReweightedWakeSleep(likelihood=likelihood, k=k, seed=4)
    saved = json.loads(json.dumps(rule.state_dict()))
    state = rule.infer(h, put(h, x))
    grads = {key: to_np(h, g) for key, g in rule.gradients(h, state).items()}
    assert set(grads) == set(rule.learned_parameters(h)) == set(P)

    noise = draw_noise(spec, replayed(saved), k * x.shape[0])

    def f(params):
        return negative_bound(spec, params, x, noise, likelihood=likelihood, kl="sampled", k=k)

    # the reported loss is elbo's (analytic top KL for k = 1)
    assert to_np(h, state.loss) == pytest.approx(
        negative_bound(spec, P, x, noise, likelihood=likelihood, kl=rule.kl, k=k), rel=1e-12)
    decoder = [key for key in sorted(P) if key[1] in DECODER]
    assert len(decoder) == (4 if model == "one_level" else 10)
    for key in decoder:
        assert rel_err(grads[key], central_difference(f, P, key)) < 1e-6, key


@pytest.mark.parametrize("model, likelihood, k", [
    ("one_level", "bernoulli", 1), ("two_level", "gaussian", 1), ("two_level", "bernoulli", 3)])
def test_wake_recognition_update_is_the_gradient_of_minus_log_q(backend_name, model, likelihood, k):
    spec = MODELS[model]()
    h, P = randomized(spec, backend_name)
    x = random_data(spec, likelihood, batch=4)
    rule = ReweightedWakeSleep(likelihood=likelihood, k=k, recognition="wake", seed=5)
    state = rule.infer(h, put(h, x))
    grads = {key: to_np(h, g) for key, g in rule.gradients(h, state).items()}
    assert rule.dreams is None  # the wake q-update needs no dreams
    p = state.variational["pass"]
    z = [None if t is None else to_np(h, t) for t in p.z]
    c = to_np(h, state.variational["weights"])
    if k > 1:  # importance weights: normalised per datum, not uniform
        assert np.allclose(c.reshape(k, 4).sum(axis=0), 1 / 4) and c.std() > 1e-3
    rows = np.tile(x, (k, 1))
    encoder = [key for key in sorted(P) if key[1] in ENCODER]
    for key in encoder:
        fd = central_difference(lambda q: neg_log_q(spec, q, rows, z, c), P, key)
        assert rel_err(grads[key], fd) < 1e-6, key
    for l, area in enumerate(spec.areas[1:], start=1):  # errors: -B dloss/da at the encoder
        assert rel_err(-to_np(h, state.errors[l]).sum(axis=0) / 4, grads[(area.name, "b_ff")]) < 1e-12


@pytest.mark.parametrize("model, likelihood", [("one_level", "bernoulli"), ("two_level", "gaussian"),
                                               ("two_level", "bernoulli")])
def test_sleep_recognition_update_is_the_gradient_of_minus_log_q_at_the_dreams(
        backend_name, model, likelihood):
    spec = MODELS[model]()
    h, P = randomized(spec, backend_name)
    x = random_data(spec, likelihood, batch=4)
    rule = ReweightedWakeSleep(likelihood=likelihood, recognition="sleep", sleep_samples=7, seed=6)
    state = rule.infer(h, put(h, x))
    after_infer = json.loads(json.dumps(rule.state_dict()))
    grads = {key: to_np(h, g) for key, g in rule.gradients(h, state).items()}
    dreams = [to_np(h, d) for d in rule.dreams]
    expected = np_dreams(spec, P, 7, replayed(after_infer), likelihood)  # drawn after infer's noise
    for l, area in enumerate(spec.areas):
        assert dreams[l].shape == (7, area.size)
        assert rel_err(dreams[l], expected[l]) < 1e-12, l
    if likelihood == "bernoulli":
        assert set(np.unique(dreams[0])) <= {0.0, 1.0}
    c = np.full(7, 1 / 7)
    for key in [key for key in sorted(P) if key[1] in ENCODER]:
        fd = central_difference(lambda q: neg_log_q(spec, q, dreams[0], dreams, c), P, key)
        assert rel_err(grads[key], fd) < 1e-6, key


def test_both_is_the_average_of_wake_and_sleep(backend_name):
    spec = MODELS["two_level"]()
    h, P = randomized(spec, backend_name)
    x = put(h, random_data(spec, "bernoulli", batch=4))
    grads = {}
    for recognition in ("wake", "sleep", "both"):
        rule = ReweightedWakeSleep(k=2, recognition=recognition, seed=8)  # same noise for each
        grads[recognition] = {key: to_np(h, g) for key, g in rule.gradients(h, rule.infer(h, x)).items()}
    for key in P:
        if key[1] in DECODER:
            assert np.array_equal(grads["wake"][key], grads["sleep"][key])
            assert np.array_equal(grads["wake"][key], grads["both"][key])
        else:
            mean = 0.5 * (grads["wake"][key] + grads["sleep"][key])
            assert rel_err(grads["both"][key], mean) < 1e-12, key
            assert rel_err(grads["wake"][key], grads["sleep"][key]) > 0.1, key


def test_at_k_1_the_wake_recognition_update_is_zero_in_expectation():
    """E_q[grad log q] = 0 (the score-function identity): with k = 1 the q-wake
    update is noise around zero, with k > 1 the importance weights give it a direction."""
    spec = MODELS["two_level"]()
    h, _ = randomized(spec, "numpy")
    x = put(h, np.tile(random_data(spec, "bernoulli", batch=1), (4000, 1)))  # one datum, many samples
    norms = {}
    for k in (1, 5):
        rule = ReweightedWakeSleep(k=k, recognition="wake", seed=0)
        grads = rule.gradients(h, rule.infer(h, x))
        norms[k] = np.sqrt(sum(np.sum(to_np(h, g) ** 2) for key, g in grads.items() if key[1] in ENCODER))
    # measured: 0.04 (k = 1) against 1.3 (k = 5)
    assert norms[1] < 0.1 * norms[5], norms


# -- dreams are samples of the model ------------------------------------------------------


def test_dreams_of_a_linear_gaussian_model_have_its_covariance(backend_name):
    s2, prior = 0.3, Prior("gaussian", 0.4, 0.8)
    spec = HierarchySpec(areas=(
        AreaSpec("x", 6, precision=1.0 / s2),
        AreaSpec("z", 3, activation="linear", stochastic=True, prior=prior),
    ))
    h = build64(spec, backend_name)
    rng = np.random.default_rng(0)
    W, b = rng.normal(size=(3, 6)), rng.normal(size=6)
    h.load_parameters({("z", "W_fb"): W, ("z", "b_fb"): b})
    n = 20_000
    x = to_np(h, ReweightedWakeSleep(likelihood="gaussian", seed=1).dream(h, n)[0])
    mean = prior.mean * W.sum(axis=0) + b
    cov = prior.scale**2 * W.T @ W + s2 * np.eye(6)
    var = np.diag(cov)
    assert np.all(np.abs(x.mean(axis=0) - mean) < 5 * np.sqrt(var / n))
    se = np.sqrt((np.outer(var, var) + cov**2) / n)  # standard error of each covariance entry
    error = np.abs(np.cov(x.T, bias=True) - cov) / se
    assert error.max() < 5.0, error.max()  # measured: 2.2 standard errors at most (36 entries)
    # the wrong model is far off (measured: 53 standard errors): the same without the prior's scale
    assert np.abs(np.cov(x.T, bias=True) - (W.T @ W + s2 * np.eye(6))).max() > 20 * se.max()


def test_bernoulli_dreams_have_the_models_pixel_probabilities(backend_name):
    spec = one_level()
    h, P = randomized(spec, backend_name)
    P[("h", "W_fb")][...] = 0.0  # p(x) = Bernoulli(sigmoid(b)) whatever the latents
    P[("h", "b_fb")][...] = np.linspace(-2.0, 2.0, 6)
    h.load_parameters(P)
    n = 20_000
    x = to_np(h, ReweightedWakeSleep(seed=2).dream(h, n)[0])
    prob = 1.0 / (1.0 + np.exp(-np.linspace(-2.0, 2.0, 6)))
    assert np.all(np.abs(x.mean(axis=0) - prob) < 5 * np.sqrt(prob * (1 - prob) / n))


# -- the science: probabilistic PCA -----------------------------------------------------------

@pytest.mark.parametrize("k", [1, 5])
def test_training_finds_the_principal_subspace(k):
    x, U = pca_data()
    spec = HierarchySpec(areas=(
        AreaSpec("x", 10, precision=1.0 / PCA_NOISE**2),
        AreaSpec("z", 3, activation="linear", stochastic=True),
    ))
    h = build64(spec, "numpy", seed=1)
    start = to_np(h, h["z"].W_fb)
    rule = ReweightedWakeSleep(likelihood="gaussian", k=k, seed=0)
    Scheduler(h, rule, Adam(0.02), x, None, batch_size=50, epochs=10, seed=0).run()
    W = to_np(h, h["z"].W_fb)
    angles = np.degrees(scipy.linalg.subspace_angles(W.T, U))
    # measured: largest angle 1.24 (k = 1) and 0.70 (k = 5) degrees after 400 batches
    # (the elbo rule: 0.81); the random start: 84 degrees
    assert angles.max() < 3.0, angles
    assert np.degrees(scipy.linalg.subspace_angles(start.T, U)).max() > 45.0


# -- the interface ----------------------------------------------------------------------------


def test_registered_and_unsupervised():
    assert RULES["reweighted_wake_sleep"] is ReweightedWakeSleep
    rule = make_rule("reweighted_wake_sleep", k=2, recognition="sleep", sleep_samples=5)
    assert isinstance(rule, ELBO) and rule.name == "reweighted_wake_sleep"
    assert rule.capabilities.setting == "variational" and rule.supervised is False
    assert (rule.posterior, rule.beta, rule.warmup, rule.samples) == ("bottom_up", 1.0, 0, 1)
    assert (rule.k, rule.recognition, rule.sleep_samples) == (2, "sleep", 5)
    with pytest.raises(TypeError):
        ReweightedWakeSleep(posterior="ladder")  # bottom-up inference only


@pytest.mark.parametrize(
    "settings, where",
    [
        ({"recognition": "dream"}, "rule.recognition"),
        ({"k": 0}, "rule.k"),
        ({"likelihood": "poisson"}, "rule.likelihood"),
        ({"sleep_samples": 0}, "rule.sleep_samples"),
        ({"sleep_samples": 2.5}, "rule.sleep_samples"),
        ({"seed": -1}, "rule.seed"),
    ],
)
def test_bad_settings_name_the_setting(settings, where):
    with pytest.raises(ConfigurationError, match=where):
        ReweightedWakeSleep(**settings)


def test_wake_sleep_refuses_a_variational_model():
    h, _ = randomized(two_level(), "numpy")
    with pytest.raises(ConfigurationError, match=r"model\.areas\[2\]\.stochastic.*reweighted_wake_sleep"):
        WakeSleep().infer(h, put(h, np.zeros((2, 6))))
    with pytest.raises(ConfigurationError, match=r"model\.areas\[2\]\.stochastic"):
        WakeSleep().dream(h, 3)


def test_gradients_need_the_rules_own_state():
    h, _ = randomized(one_level(), "numpy")
    state = ELBO().infer(h, put(h, np.zeros((2, 6))))
    with pytest.raises(ConfigurationError, match="reweighted_wake_sleep"):
        ReweightedWakeSleep().gradients(h, state)


def test_a_checkpoint_continues_the_noise_stream_bit_identically():
    h, _ = randomized(two_level(), "numpy")
    x = put(h, random_data(two_level(), "bernoulli", batch=4))
    first = ReweightedWakeSleep(k=2, sleep_samples=5, seed=3)
    first.gradients(h, first.infer(h, x))
    saved = json.loads(json.dumps(first.state_dict()))
    expected = {key: to_np(h, g) for key, g in first.gradients(h, first.infer(h, x)).items()}
    second = ReweightedWakeSleep(k=2, sleep_samples=5, seed=11)
    second.load_state_dict(saved)
    got = {key: to_np(h, g) for key, g in second.gradients(h, second.infer(h, x)).items()}
    assert set(got) == set(expected)
    assert all(np.array_equal(got[key], expected[key]) for key in got)
    assert all(np.array_equal(to_np(h, a), to_np(h, b)) for a, b in zip(first.dreams, second.dreams))
    assert second.batches == first.batches == 2
    fresh = ReweightedWakeSleep(k=2, sleep_samples=5, seed=11)  # without the checkpoint: other noise
    other = {key: to_np(h, g) for key, g in fresh.gradients(h, fresh.infer(h, x)).items()}
    assert not np.array_equal(other[("h1", "W_fb")], expected[("h1", "W_fb")])
