"""The ELBO rule: its gradients are those of the documented bound (float64
central differences of an independent reference at the same noise), its
state reports the bound's terms, its warm-up and resume behave, and it trains
through the Scheduler."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import build64, central_difference, put, rel_err, to_np
from vae_reference import (
    draw_noise,
    negative_bound,
    one_level_spec,
    random_data,
    randomized,
    two_level_spec,
)

from cortexsim import Adam, AreaSpec, ConfigurationError, HierarchySpec, Prior, Scheduler, build
from cortexsim.data import binarize, load
from cortexsim.rules import ELBO, RULES, make_rule

ROOT = Path(__file__).resolve().parents[2]


def one_level():
    return one_level_spec((5, 4, 3))


def two_level(top_prior=None, x_precision=1.0):
    return two_level_spec((5, 4, 3, 3, 2), top_prior, x_precision)


def three_level():
    """Stochastic areas directly on top of each other, and a nonlinear mean."""
    return HierarchySpec(areas=(
        AreaSpec("x", 4),
        AreaSpec("z1", 3, activation="linear", feedback_activation="tanh", stochastic=True),
        AreaSpec("z2", 3, activation="tanh", feedback_activation="tanh", stochastic=True),
        AreaSpec("z3", 2, activation="linear", stochastic=True),
    ))


CASES = {
    "one_level": (one_level, {}),
    "two_level": (two_level, {}),
    "two_level_ladder": (two_level, {"posterior": "ladder"}),
    "two_level_gaussian_prior_beta": (
        lambda: two_level(Prior("gaussian", 0.3, 0.8), x_precision=2.0),
        {"likelihood": "gaussian", "beta": 0.6, "samples": 2}),
    "two_level_sampled_kl": (two_level, {"kl": "sampled"}),
    "two_level_iwae": (two_level, {"k": 3, "samples": 2}),
    "ladder_iwae_gaussian": (two_level, {"k": 4, "posterior": "ladder", "likelihood": "gaussian"}),
    "three_level": (three_level, {}),
    "three_level_ladder": (three_level, {"posterior": "ladder"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_gradients_match_finite_differences_of_the_bound(backend_name, case):
    make_spec, options = CASES[case]
    spec = make_spec()
    h, P = randomized(spec, backend_name)
    likelihood = options.get("likelihood", "bernoulli")
    x = random_data(spec, likelihood)
    rule = ELBO(seed=4, **options)
    saved = json.loads(json.dumps(rule.state_dict()))  # JSON-able, as checkpoints need
    state = rule.infer(h, put(h, x))
    grads = {key: to_np(h, g) for key, g in rule.gradients(h, state).items()}
    assert set(grads) == set(rule.learned_parameters(h)) == set(P)

    replay = np.random.default_rng()
    replay.bit_generator.state = saved["rng"]
    noise = draw_noise(spec, replay, rule.samples * rule.k * x.shape[0])
    settings = {"posterior": rule.posterior, "likelihood": likelihood, "kl": rule.kl, "k": rule.k,
                    "samples": rule.samples, "beta": rule.beta}

    def f(params):
        return negative_bound(spec, params, x, noise, **settings)

    assert to_np(h, state.energy)[0] == pytest.approx(f(P), rel=1e-12)
    for key in sorted(P):
        fd = central_difference(f, P, key)
        assert rel_err(grads[key], fd) < 1e-6, key


def test_state_reports_the_terms_of_the_bound(backend_name):
    spec = two_level()
    h, P = randomized(spec, backend_name)
    x = random_data(spec, "bernoulli", batch=4)
    rule = ELBO(beta=0.5, samples=3)
    saved = rule.state_dict()
    state = rule.infer(h, put(h, x))
    assert state.mode == "variational" and state.producer is rule
    rec = to_np(h, state.reconstruction)
    kl = {l: to_np(h, state.kl[l]) for l in (2, 4)}
    assert state.kl[1] is None and state.kl[3] is None and state.kl[0] is None
    for l in (2, 4):  # per-unit terms sum to the area's term
        assert to_np(h, state.kl_units[l]).shape == (spec.areas[l].size,)
        assert to_np(h, state.kl_units[l]).sum() == pytest.approx(float(kl[l]), rel=1e-12)
    # loss: beta = 1; energy: the trained objective with beta = 0.5
    assert to_np(h, state.loss) == pytest.approx(rec + kl[2] + kl[4], rel=1e-12)
    assert to_np(h, state.energy)[0] == pytest.approx(rec + 0.5 * (kl[2] + kl[4]), rel=1e-12)
    replay = np.random.default_rng()
    replay.bit_generator.state = saved["rng"]
    noise = draw_noise(spec, replay, 12)
    assert to_np(h, state.loss) == pytest.approx(negative_bound(spec, P, x, noise, samples=3), rel=1e-12)
    assert to_np(h, state.mu[0]).shape == (12, 5) and to_np(h, state.mu[2]).shape == (12, 3)


def test_kl_warmup_is_linear_in_batches():
    spec = one_level()
    h, _ = randomized(spec, "numpy")
    x = put(h, random_data(spec, "bernoulli"))
    rule = ELBO(beta=2.0, warmup=4)
    seen = []
    for _ in range(6):
        state = rule.infer(h, x)
        seen.append(state.variational["beta"])
        rule.gradients(h, state)
    assert seen == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    assert rule.state_dict()["batches"] == 6


def test_resume_from_a_checkpoint_is_bit_identical():
    spec = one_level()
    x = np.random.default_rng(1).random((40, 5))  # intensities, binarized afresh per batch

    def scheduler(rule):
        h = build(spec, dtype="float32", seed=2)
        return Scheduler(h, rule, Adam(1e-2), x, batch_size=8, epochs=2, seed=5, binarize="dynamic")

    straight = scheduler(ELBO(warmup=3, k=2, seed=9))
    straight.run()
    first = scheduler(ELBO(warmup=3, k=2, seed=9))
    first.epochs = 1
    first.run()
    saved = json.loads(json.dumps(first.state_dict()["rule"]))
    state = first.state_dict()
    state["rule"] = saved
    second = scheduler(ELBO(warmup=3, k=2, seed=9))
    second.load_state_dict(state)
    second.run()
    a, b = straight.hierarchy.parameters_to_numpy(), second.hierarchy.parameters_to_numpy()
    assert all(np.array_equal(a[key], b[key]) for key in a)
    def timeless(history):
        return [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in history]

    assert timeless(straight.history) == timeless(second.history)


def test_trains_on_binarized_digits_through_the_scheduler():
    digits = load("digits")
    x = binarize(digits.x_train[:600] / digits.x_train.max(), "static", seed=0)
    spec = HierarchySpec(areas=(
        AreaSpec("pixels", 64),
        AreaSpec("hidden", 32, activation="tanh", feedback_activation="tanh"),
        AreaSpec("latent", 8, activation="linear", stochastic=True),
    ))
    h = build(spec, seed=0)
    rule = make_rule("elbo", seed=0)
    history = Scheduler(h, rule, Adam(3e-3), x, None, batch_size=32, epochs=6, seed=0).run()
    losses = [epoch["train_loss"] for epoch in history]
    # measured: 43.7 -> 29.3 nats per image over 6 epochs (44.4 nats is p = 1/2 per pixel)
    assert losses[-1] < 0.75 * losses[0], losses
    assert all(b < a for a, b in itertools.pairwise(losses)), losses


@pytest.mark.parametrize("name", ["vae_mnist_iwae", "hvae2_mnist_iwae", "hvae3_mnist", "ladder_vae_mnist"])
def test_named_variational_models_train(name):
    spec = HierarchySpec.from_toml(ROOT / "models" / f"{name}.toml")
    assert spec.reference and spec.areas[-1].stochastic and spec.sizes[0] == 784
    h = build(spec, seed=0)
    for l, area in enumerate(spec.areas[1:], start=1):  # log-variance heads where the math puts them
        assert (getattr(h[l], "W_ff_logvar", None) is not None) == area.stochastic
        assert (getattr(h[l], "W_fb_logvar", None) is not None) == spec.areas[l - 1].stochastic
    x = put(h, (np.random.default_rng(0).random((8, 784)) < 0.2) * 1.0)
    rule = ELBO(posterior="ladder" if "ladder" in name else "bottom_up")
    optimizer = Adam(1e-3)
    losses = []
    for _ in range(3):
        state = rule.infer(h, x)
        losses.append(float(to_np(h, state.loss)))
        optimizer.step(h, rule.gradients(h, state))
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_registered_and_unsupervised():
    assert RULES["elbo"] is ELBO and ELBO.name == "elbo"
    capabilities = ELBO().capabilities
    assert capabilities.supervised is False and capabilities.setting == "variational"
    assert capabilities.held_out_loss and capabilities.inference == "stochastic"


@pytest.mark.parametrize(
    "settings, where",
    [
        ({"beta": -1.0}, "rule.beta"),
        ({"warmup": -1}, "rule.warmup"),
        ({"likelihood": "poisson"}, "rule.likelihood"),
        ({"samples": 0}, "rule.samples"),
        ({"k": 0}, "rule.k"),
        ({"posterior": "top_down"}, "rule.posterior"),
        ({"kl": "exact"}, "rule.kl"),
        ({"k": 5, "kl": "analytic"}, "rule.kl"),
        ({"seed": -2}, "rule.seed"),
    ],
)
def test_bad_settings_name_the_setting(settings, where):
    with pytest.raises(ConfigurationError, match=where):
        ELBO(**settings)


def test_models_the_elbo_cannot_train_are_refused():
    deterministic_top = HierarchySpec.from_sizes([4, 3])
    h = build64(deterministic_top, "numpy")
    with pytest.raises(ConfigurationError, match=r"model\.areas\[1\]\.stochastic"):
        ELBO().infer(h, put(h, np.zeros((2, 4))))
    laplace_top = HierarchySpec(areas=(
        AreaSpec("x", 4), AreaSpec("z", 2, stochastic=True, prior=Prior("laplace"))))
    h = build64(laplace_top, "numpy")
    with pytest.raises(ConfigurationError, match=r"model\.areas\[1\]\.prior\.kind"):
        ELBO().infer(h, put(h, np.zeros((2, 4))))
    with pytest.raises(ConfigurationError, match=r"model\.areas\[0\]\.stochastic"):
        HierarchySpec(areas=(AreaSpec("x", 4, stochastic=True), AreaSpec("z", 2)))


def test_gradients_need_the_rules_own_state():
    spec = one_level()
    h, _ = randomized(spec, "numpy")
    state = ELBO().infer(h, put(h, np.zeros((2, 5))))
    with pytest.raises(ConfigurationError, match="variational"):
        ELBO().gradients(h, state)
