"""The recurrent VAE (``draw``): backpropagation through time agrees with
float64 central differences of the bound for every cell, likelihood, prior and
attention setting; one step reduces to the one-level VAE; it trains through
the Scheduler; its model is validated where the user wrote it."""

import itertools

import numpy as np
import pytest
from conftest import build64, put, rel_err, to_np
from vae_reference import one_level_spec

from cortexsim import Adam, AreaSpec, ConfigurationError, HierarchySpec, Scheduler, build
from cortexsim.inference import recurrent
from cortexsim.inference.importance import log_likelihood_estimate, recurrent_log_likelihood
from cortexsim.inference.variational import forward as vae_forward, log_weights as vae_log_weights
from cortexsim.rules import RULES, RecurrentELBO
from cortexsim.rules.draw_backward import backward


def draw_spec(cell="lstm", read=0, write=0, pixels=16, hidden=5, latent=3, precision=1.0):
    return HierarchySpec(areas=(
        AreaSpec("pixels", pixels, precision=precision),
        AreaSpec("rnn", hidden, cell=cell, read=read, write=write),
        AreaSpec("z", latent, activation="linear", stochastic=True),
    ))


def randomized(spec, backend_name, rule, seed=3, scale=0.4):
    h = build64(spec, backend_name, seed=seed)
    rule.prepare(h)
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(0.0, scale, size=v.shape) for k, v in h.parameters_to_numpy().items()}
    h.load_parameters(params)
    return h, params


def data(likelihood, pixels=16, batch=3, seed=7):
    rng = np.random.default_rng(seed)
    shape = (batch, pixels)
    return (rng.random(shape) < 0.5) * 1.0 if likelihood == "bernoulli" else rng.normal(size=shape)


def negative_bound(h, params, x, noise, rule):
    """The rule's objective at fixed noise, from the forward pass alone."""
    h.load_parameters(params)
    xp = h.backend.xp
    p = recurrent.forward(h, put(h, x), [put(h, e) for e in noise], likelihood=rule.likelihood,
                          prior=rule.prior)
    return -float(h.backend.scalar(xp.sum(recurrent.log_weights(xp, p, rule.beta)))) / x.shape[0]


CASES = [dict(cell=c, likelihood=lk, attention=a, prior=pr)
         for c, lk, a, pr in itertools.product(("lstm", "gru"), ("bernoulli", "gaussian"), (False, True),
                                               ("standard", "learned"))]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_backpropagation_through_time_matches_finite_differences(backend_name, case):
    if backend_name != "numpy" and case["likelihood"] == "gaussian":
        pytest.skip("other backends check every cell, prior and attention setting with the Bernoulli likelihood; NumPy checks both likelihoods")
    steps = 3
    beta = [0.5, 1.0, 2.0] if case["prior"] == "learned" else 0.7  # per-step and shared weights
    rule = RecurrentELBO(steps=steps, beta=beta, likelihood=case["likelihood"], prior=case["prior"], seed=2)
    attention = dict(read=2, write=3) if case["attention"] else {}
    spec = draw_spec(case["cell"], precision=1.5, **attention)
    h, params = randomized(spec, backend_name, rule)
    x = data(case["likelihood"])
    state = rule.infer(h, put(h, x))
    noise = [to_np(h, e) for e in state.variational["pass"].noise]
    grads = {key: to_np(h, g) for key, g in rule.gradients(h, state).items()}
    assert set(grads) == set(rule.learned_parameters(h)) == set(params)
    assert float(to_np(h, state.energy)[0]) == pytest.approx(negative_bound(h, params, x, noise, rule), rel=1e-12)
    rng = np.random.default_rng(0)
    eps = 1e-6
    for key, value in params.items():
        flat = value.ravel()
        picks = rng.choice(flat.size, size=min(flat.size, 4), replace=False)
        numeric = []
        for i in picks:
            plus, minus = dict(params), dict(params)
            plus[key] = flat.copy(); plus[key][i] += eps
            minus[key] = flat.copy(); minus[key][i] -= eps
            plus[key], minus[key] = plus[key].reshape(value.shape), minus[key].reshape(value.shape)
            numeric.append((negative_bound(h, plus, x, noise, rule)
                            - negative_bound(h, minus, x, noise, rule)) / (2 * eps))
        analytic = grads[key].ravel()[picks]
        assert np.allclose(analytic, numeric, rtol=1e-5, atol=1e-8), (key, analytic, numeric)


def test_one_step_reduces_to_the_one_level_vae():
    """A GRU whose update gate is shut (bias -40) and whose error input is
    zero is a tanh layer: one step of the recurrent VAE is then the one-level
    VAE x - tanh h - z with the same weights, and its bound is the same."""
    n0, n, nz = 6, 4, 3
    vae = build64(one_level_spec((n0, n, nz)), "numpy", seed=1)
    rng = np.random.default_rng(1)
    V = {k: rng.normal(0.0, 0.5, size=v.shape) for k, v in vae.parameters_to_numpy().items()}
    vae.load_parameters(V)
    h = build64(draw_spec("gru", pixels=n0, hidden=n, latent=nz), "numpy")
    P = {k: np.zeros(v.shape) for k, v in h.parameters_to_numpy().items()}
    shut = np.concatenate([np.full(n, -40.0), np.zeros(n), np.zeros(n)])  # gates z, r, n
    P["rnn", "W_ff"][:n0, 2 * n:] = V["h", "W_ff"]          # x -> the candidate; x^ and h^dec unused
    P["rnn", "b_ff"] = shut + np.concatenate([np.zeros(2 * n), V["h", "b_ff"]])
    P["z", "W_fb"][:, 2 * n:] = V["z", "W_fb"]              # z -> the decoder's candidate
    P["z", "b_fb"] = shut + np.concatenate([np.zeros(2 * n), V["z", "b_fb"]])
    P["rnn", "W_fb"], P["rnn", "b_fb"] = V["h", "W_fb"], V["h", "b_fb"]
    for name in ("W_ff", "b_ff", "W_ff_logvar", "b_ff_logvar"):
        P["z", name] = V["z", name]
    h.load_parameters(P)
    x = data("bernoulli", pixels=n0, batch=5)
    e = rng.standard_normal((5, nz))
    xp = h.backend.xp
    for analytic in (True, False):
        p = recurrent.forward(h, put(h, x), [put(h, e)], analytic_kl=analytic)
        q = vae_forward(vae, put(vae, x), [None, None, put(vae, e)], analytic_kl=analytic)
        np.testing.assert_allclose(to_np(h, recurrent.log_weights(xp, p)), to_np(vae, vae_log_weights(xp, q)),
                                   rtol=1e-13, atol=1e-12)
    ours = recurrent_log_likelihood(h, x, k=7, steps=1, seed=3)
    theirs = log_likelihood_estimate(vae, x, k=7, seed=3)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_trains_through_the_scheduler_and_the_bound_rises():
    rng = np.random.default_rng(0)
    protos = (rng.random((4, 16)) < 0.5) * 1.0
    x = protos[rng.integers(0, 4, 400)]
    x = np.where(rng.random(x.shape) < 0.05, 1 - x, x).astype(np.float32)
    h = build(draw_spec("gru", hidden=16, latent=4), seed=0)
    rule = RULES["draw"](steps=3, prior="learned", k=4)
    before = rule.evaluate(h, x[:100])
    sched = Scheduler(h, rule, Adam(lr=1e-2), x, None, batch_size=50, epochs=8, seed=0)
    history = sched.run()
    after = rule.evaluate(h, x[:100])
    assert np.isfinite(history[-1]["energy"])
    assert after < before - 3.0, (before, after)


def test_the_model_is_validated_where_the_user_wrote_it():
    bad = {"areas": [{"name": "x", "size": 16}, {"name": "r", "size": 4, "cell": "lsmt"},
                     {"name": "z", "size": 2, "stochastic": True}]}
    with pytest.raises(ConfigurationError, match=r"model\.areas\[1\]\.cell: unknown cell 'lsmt'.*'lstm'"):
        HierarchySpec.from_dict(bad)
    bad["areas"][1]["cell"] = "gru"
    bad["areas"][0]["size"] = 15
    bad["areas"][1]["read"] = 2
    with pytest.raises(ConfigurationError, match=r"model\.areas\[1\]\.read: attention .* square"):
        HierarchySpec.from_dict(bad)
    with pytest.raises(ConfigurationError, match=r"model\.areas\[2\]\.read: attention belongs"):
        HierarchySpec.from_dict({"areas": [{"name": "x", "size": 16}, {"name": "r", "size": 4},
                                           {"name": "z", "size": 2, "read": 2}]})
    h = build(one_level_spec())
    with pytest.raises(ConfigurationError, match=r"model\.areas: a recurrent VAE has three areas"):
        RecurrentELBO().prepare(h)
    with pytest.raises(ConfigurationError, match=r"rule\.beta: a list needs one weight per step \(4\)"):
        RecurrentELBO(steps=4, beta=[1.0, 2.0])


@pytest.mark.parametrize("name, likelihood", [("draw_mnist", "bernoulli"), ("draw_attention_mnist", "bernoulli"),
                                              ("conceptual_compression_patches", "gaussian")])
def test_model_files_build_and_run(name, likelihood):
    from pathlib import Path
    spec = HierarchySpec.from_toml(Path(__file__).resolve().parents[2] / "models" / f"{name}.toml")
    h = build(spec)
    rule = RecurrentELBO(steps=2, likelihood=likelihood, prior="learned")
    rule.prepare(h)
    x = data(likelihood, pixels=spec.areas[0].size, batch=2).astype(np.float32)
    state = rule.infer(h, put(h, x))
    grads = rule.gradients(h, state)
    assert set(grads) == set(rule.learned_parameters(h))
    assert np.isfinite(float(to_np(h, state.loss)))
