"""The hybrid member of the generative target family (rules/generative_hybrid.py):
every update is the gradient of the local loss its docstring writes down
(central differences of an independent NumPy reference, float64, at the
refined posterior and noise the rule inferred), the recognition target is the
refined posterior (no refinement, nothing to learn at a stochastic area),
gradients read nothing but the state, a checkpoint continues the noise
stream, training on binarized digits keeps the latents active where the
literal rule collapses, and study files name the key of a bad setting."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import central_difference, np_act, put, rel_err, to_np
from test_generative_target_prop import (
    DECODER, ENCODER, MODELS, W, digits, minus_dG_dd, np_G, np_recognition, prior_of_top, problem,
    replayed, trained,
)

from cortexsim import ConfigurationError
from cortexsim.rules import RULES, GenerativeHybrid, GenerativeTargetProp, make_rule
from cortexsim.study.plan import load_study

ROOT = Path(__file__).resolve().parents[2]
__all__ = ["digits"]  # the shared fixture of binarized digits


def np_amortized(spec, P, x):
    """The noise-free recognition pass: (a, h, mean, logvar) per area."""
    L = len(spec.areas) - 1
    a, h, m, v = [None] * (L + 1), [x] + [None] * L, [None] * (L + 1), [None] * (L + 1)
    for l in range(1, L + 1):
        a[l], m[l], v[l] = np_recognition(spec, P, l, h[l - 1])
        h[l] = m[l]
    return dict(a=a, h=h, m=m, v=v)


def np_refined(spec, P, x, M, V, noise):
    """Samples of the mean-field q* (M, V), the recognition areas above them
    from those samples, and the decoder pass from them: ``h``, ``d`` and each
    area's prediction ``pm[l]`` (``pv[l]``) of area l-1."""
    areas = spec.areas
    L = len(areas) - 1
    h = [x] + [None] * L
    for l in range(1, L + 1):
        if areas[l].stochastic:
            h[l] = M[l] + np.exp(V[l] / 2) * noise[l]
        else:
            h[l] = np_recognition(spec, P, l, h[l - 1])[1]
    d, pm = [None] * (L + 1), [None] * (L + 1)
    d[L] = h[L]
    for l in range(L, 0, -1):
        u = np_act(areas[l].feedback_activation, d[l])
        pm[l] = u @ W(P, spec, l, "W_fb") + W(P, spec, l, "b_fb")
        if l > 1:
            d[l - 1] = h[l - 1] if areas[l - 1].stochastic else pm[l]
    return dict(h=h, d=d, pm=pm)


def np_A(spec, P, l, amortized_input, M, V, target):
    """A_l over area l's recognition weights, its input and targets fixed, batch
    mean; on a deterministic area ``target`` already holds the reconstruction term."""
    B = amortized_input.shape[0]
    _, m, v = np_recognition(spec, P, l, amortized_input)
    if spec.areas[l].stochastic:  # KL(N(M, e^V) || N(m, e^v))
        return 0.5 * np.sum(v - V + (np.exp(V) + (M - m) ** 2) * np.exp(-v) - 1.0) / B
    return 0.5 * spec.areas[l].precision * np.sum((m - target) ** 2) / B


def inferred(rule, h, x):
    state = rule.infer(h, put(h, x))
    grads = {k: to_np(h, g) for k, g in rule.gradients(h, state).items()}
    return state, grads


def refined_of(h, state):
    r = state.variational["local"]["refined"]
    host = lambda arrays: [None if a is None else to_np(h, a) for a in arrays]  # noqa: E731
    return host(r.q_mean), host(r.q_logvar), host(r.noise)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("model", sorted(MODELS))
def test_updates_are_gradients_of_the_local_losses(backend_name, model, likelihood):
    spec, h, P, x = problem(model, backend_name, likelihood)
    rule = GenerativeHybrid(steps=4, step_size=0.2, reconstruction=1.3, likelihood=likelihood, seed=2)
    state, got = inferred(rule, h, x)
    assert set(got) == set(rule.learned_parameters(h))
    M, V, noise = refined_of(h, state)
    amortized = np_amortized(spec, P, x)
    for l, area in enumerate(spec.areas[1:], start=1):
        if area.stochastic:  # the refinement moved the posterior off the amortized guess
            assert np.abs(M[l] - amortized["m"][l]).max() > 1e-3
    ref = np_refined(spec, P, x, M, V, noise)
    L = len(spec.areas) - 1
    for l, area in enumerate(spec.areas[1:], start=1):
        for name in DECODER:
            key = (area.name, name)
            if key in got:  # G_l on the refined pass: d_l and h_{l-1} fixed
                want = central_difference(
                    lambda q: np_G(spec, q, l, ref["d"][l], ref["h"][l - 1], likelihood), P, key)
                assert np.abs(want).max() > 1e-6, key
                assert rel_err(got[key], want) < 1e-6, (key, rel_err(got[key], want))
        target = np.full(area.size, prior_of_top(spec)[0]) if l == L else ref["pm"][l + 1]
        if not area.stochastic:  # t_l = p_l + rho eps_l / pi_l, eps_l = -dG_l/dd_l on the refined pass
            target = target + rule.reconstruction * minus_dG_dd(spec, P, l, ref, likelihood) / area.precision
        for name in ENCODER:
            key = (area.name, name)
            if key in got:  # A_l: the noise-free input and the targets fixed
                want = central_difference(
                    lambda q: np_A(spec, q, l, amortized["h"][l - 1], M[l], V[l], target), P, key)
                assert np.abs(want).max() > 1e-6, key
                assert rel_err(got[key], want) < 1e-6, (key, rel_err(got[key], want))


def test_without_refinement_a_stochastic_area_has_nothing_to_learn():
    """steps = 0: the refined posterior is the amortized one, KL(q || q) = 0 with
    zero gradient, so the stochastic areas' recognition updates vanish while the
    deterministic ones (towards the prediction from above) and the generative ones do not."""
    spec, h, P, x = problem("two_level", "numpy", "bernoulli")
    state, got = inferred(GenerativeHybrid(steps=0, seed=1), h, x)
    for l, area in enumerate(spec.areas[1:], start=1):
        for name in ENCODER:
            key = (area.name, name)
            if key in got:
                assert (np.abs(got[key]).max() < 1e-12) == area.stochastic, (key, np.abs(got[key]).max())
        assert np.abs(got[(area.name, "W_fb")]).max() > 1e-6
    local = state.variational["local"]
    assert float(local["start_elbo"]) == float(local["refined_elbo"])


def test_beta_weighs_the_kl_terms_of_the_refined_bound():
    """The refined posterior is that of the beta-ELBO: the rule's equals
    ``inference.refine`` at that beta on the same noise stream, and differs
    from the beta = 1 one."""
    from cortexsim.inference.refine import amortized_posterior, refine

    spec, h, P, x = problem("two_level", "numpy", "bernoulli", batch=8)
    means = {}
    for beta in (1.0, 4.0):
        rule = GenerativeHybrid(steps=6, step_size=0.1, beta=beta, seed=4)
        rng = replayed(json.loads(json.dumps(rule.state_dict())))
        refined = rule.infer(h, put(h, x)).variational["local"]["refined"]
        for area in spec.areas:  # the draws of the sampled bound come first
            if area.stochastic:
                rng.standard_normal((x.shape[0], area.size))
        found = refine(h, put(h, x), rule.refinement, beta=beta, rng=rng,
                       initial=amortized_posterior(h, put(h, x)))
        for l, area in enumerate(spec.areas):
            if area.stochastic:
                np.testing.assert_allclose(to_np(h, refined.q_mean[l]), to_np(h, found.mean[l]), rtol=1e-12)
        means[beta] = to_np(h, refined.q_mean[-1])
    assert np.abs(means[4.0] - means[1.0]).max() > 1e-3


def test_refinement_raises_the_batch_bound():
    spec, h, P, x = problem("two_level", "numpy", "bernoulli", batch=16)
    local = GenerativeHybrid(steps=30, step_size=0.1, seed=4).infer(h, put(h, x)).variational["local"]
    assert float(local["refined_elbo"]) > float(local["start_elbo"]) + 0.5, local


def test_gradients_read_only_the_state_and_the_areas_own_weights():
    """No gradient crosses an area boundary: after infer, changing area k's
    parameters changes only area k's updates, and only where the
    reconstruction term reads its own generative weights (deterministic areas)."""
    spec, h, P, x = problem("two_level", "numpy", "bernoulli")
    rule = GenerativeHybrid(steps=3, seed=1)
    state = rule.infer(h, put(h, x))
    base = {k: to_np(h, g) for k, g in rule.gradients(h, state).items()}
    rng = np.random.default_rng(1)
    for area in spec.areas[1:]:
        changed = {key: value + 0.2 * rng.normal(size=value.shape) if key[0] == area.name else value
                   for key, value in P.items()}
        h.load_parameters(changed)
        got = {k: to_np(h, g) for k, g in rule.gradients(h, state).items()}
        h.load_parameters(P)
        moved = {key for key in got if not np.array_equal(got[key], base[key])}
        assert all(key[0] == area.name for key in moved), (area.name, moved)
        assert ((area.name, "W_ff") in moved) == (not area.stochastic), (area.name, moved)


def test_a_checkpoint_continues_the_noise_stream_bit_identically():
    spec, h, _, x = problem("two_level", "numpy", "bernoulli")
    first = GenerativeHybrid(steps=3, seed=3)
    first.gradients(h, first.infer(h, put(h, x)))
    saved = json.loads(json.dumps(first.state_dict()))
    expected = {k: to_np(h, g) for k, g in first.gradients(h, first.infer(h, put(h, x))).items()}
    second = GenerativeHybrid(steps=3, seed=11)
    second.load_state_dict(saved)
    got = {k: to_np(h, g) for k, g in second.gradients(h, second.infer(h, put(h, x))).items()}
    assert all(np.array_equal(got[k], expected[k]) for k in expected)


# measured (numpy, float64, the 630 steps of test_generative_target_prop.py): see the docs page
def test_training_on_digits_keeps_the_latents_the_literal_rule_loses(digits):
    start = trained("untrained", None, digits)
    literal = trained("literal", lambda: GenerativeTargetProp("literal"), digits)
    hybrid = trained("hybrid", lambda: GenerativeHybrid(), digits)
    assert hybrid["active"] >= 6 > literal["active"], (hybrid, literal)
    assert hybrid["nll"] < literal["nll"] - 1.5 and hybrid["nll"] < start["nll"] - 15.0, (hybrid, literal)
    assert hybrid["kl"] > 1.0, hybrid


STUDY = """
[study]
name = "hybrid"
seeds = [0]

[model]
path = "{model}"

[data]
name = "digits"
binarize = "static"

[[rules]]
rule = "generative_hybrid"
{settings}
"""


@pytest.mark.parametrize("settings, message", [
    ("steps = -1", r"rules\[0\]\.steps: expected a whole number >= 0"),
    ("steps = 2.5", r"rules\[0\]\.steps"),
    ("step_size = 0", r"rules\[0\]\.step_size: must be > 0"),
    ('ascent = "rmsprop"', r"rules\[0\]\.ascent: unknown value 'rmsprop'"),
    ("samples = 3", r"rules\[0\].*samples"),
    ("beta = -1.0", r"rules\[0\]\.beta: must be >= 0"),
    ("reconstruction = -1.0", r"rules\[0\]\.reconstruction: must be >= 0"),
])
def test_study_file_errors_name_the_key(tmp_path, settings, message):
    path = tmp_path / "study.toml"
    path.write_text(STUDY.format(model=(ROOT / "models" / "hvae2_mnist_iwae.toml").as_posix(),
                                 settings=settings))
    with pytest.raises(ConfigurationError, match=message):
        load_study(path)


def test_registered_with_its_declarations():
    assert RULES["generative_hybrid"] is GenerativeHybrid
    rule = make_rule("generative_hybrid", steps=7, step_size=0.2, ascent="sgd", seed=3)
    assert (rule.refinement.steps, rule.refinement.step_size, rule.refinement.optimizer) == (7, 0.2, "sgd")
    caps = rule.capabilities
    assert caps.setting == "variational" and caps.supervised is False and caps.held_out_loss
    assert caps.inference == "stochastic"
