"""Iterative refinement of variational posteriors (inference/refine.py): the
prediction-error gradient is that of the mean-field ELBO (float64 central
differences of an independent NumPy reference at fixed noise); on linear-Gaussian
hierarchies the refined posterior reaches the closed-form optimum of its
family (the exact posterior and log p(x) where the family holds it, the
diagonal optimum where it does not); on a briefly trained digits VAE
refinement raises the ELBO over the amortized pass; the weights never move."""

import numpy as np
import pytest
from conftest import build64, np_act, put, rel_err, to_np
from scipy.stats import multivariate_normal
from vae_reference import kl_normal, random_data, randomized, two_level_spec

from cortexsim import Adam, AreaSpec, ConfigurationError, HierarchySpec, Scheduler, build
from cortexsim.data import binarize, load
from cortexsim.inference.refine import (
    Refinement,
    amortized_posterior,
    elbo_and_gradient,
    refine,
    refined_bounds,
)
from cortexsim.rules import ELBO

# -- an independent reference of the mean-field bound ----------------------------------------


def mean_field_elbo(spec, P, x, mean, logvar, noise, likelihood="bernoulli", beta=1.0):
    """Per-datum (1/R) sum_r [log p(x | z_r) - beta sum_l KL(N(m_l, e^v_l) || p(z_l | z_{l+1, r}))],
    z_l = m_l + exp(v_l / 2) e_l, written from the densities."""
    areas = spec.areas
    L = len(areas) - 1
    names = [a.name for a in areas]
    B = x.shape[0]
    R = next(e for e in noise if e is not None).shape[0] // B
    tile = lambda a: np.tile(a, (R, 1))  # noqa: E731
    z = {l: tile(mean[l]) + np.exp(tile(logvar[l]) / 2) * noise[l] for l in range(1, L + 1) if areas[l].stochastic}
    prior = areas[L].prior
    pm = {L: 0.0 if prior is None else prior.mean}
    pv = {L: 1.0 if prior is None else prior.scale ** 2}
    d = z[L]
    for l in range(L, 0, -1):
        u = np_act(areas[l].feedback_activation, d)
        below = u @ P[(names[l], "W_fb")] + P[(names[l], "b_fb")]
        if l == 1:
            out = below
        elif areas[l - 1].stochastic:
            pm[l - 1] = below
            pv[l - 1] = np.exp(u @ P[(names[l], "W_fb_logvar")] + P[(names[l], "b_fb_logvar")])
            d = z[l - 1]
        else:
            d = below
    X = tile(x)
    if likelihood == "bernoulli":
        prob = 1.0 / (1.0 + np.exp(-out))
        elbo = np.sum(X * np.log(prob) + (1 - X) * np.log(1 - prob), axis=1)
    else:
        var = 1.0 / areas[0].precision
        elbo = np.sum(-0.5 * (np.log(2 * np.pi * var) + (X - out) ** 2 / var), axis=1)
    for l in z:
        elbo = elbo - beta * kl_normal(tile(mean[l]), np.exp(tile(logvar[l])), pm[l], pv[l]).sum(axis=1)
    return elbo.reshape(R, B).mean(axis=0)


def central(f, arrays, l, h=1e-6):
    base = arrays[l]
    grad = np.zeros_like(base)
    for index in np.ndindex(base.shape):
        old = base[index]
        base[index] = old + h
        plus = f()
        base[index] = old - h
        minus = f()
        base[index] = old
        grad[index] = (plus - minus) / (2 * h)
    return grad


@pytest.mark.parametrize("likelihood, beta", [("bernoulli", 1.0), ("gaussian", 0.7)])
def test_gradient_matches_finite_differences(backend_name, likelihood, beta):
    """x - tanh h1 - z1 - sigmoid h2 - z2: errors cross a deterministic area on
    the way up from x and from z1, and the variance head of z2's prediction."""
    spec = two_level_spec((5, 4, 3, 3, 2), x_precision=1.5)
    h, P = randomized(spec, backend_name, scale=0.5)
    x = random_data(spec, likelihood, batch=3)
    rng = np.random.default_rng(11)
    R, B = 4, 3
    mean = [rng.normal(size=(B, a.size)) if a.stochastic else None for a in spec.areas]
    logvar = [rng.normal(0, 0.5, size=(B, a.size)) if a.stochastic else None for a in spec.areas]
    noise = [rng.standard_normal((R * B, a.size)) if a.stochastic else None for a in spec.areas]
    on = lambda arrays: [None if a is None else put(h, a) for a in arrays]  # noqa: E731
    elbo, g_mean, g_logvar = elbo_and_gradient(h, put(h, x), on(mean), on(logvar), on(noise),
                                               likelihood=likelihood, beta=beta)

    def f():
        return mean_field_elbo(spec, P, x, mean, logvar, noise, likelihood, beta).sum()

    np.testing.assert_allclose(to_np(h, elbo), mean_field_elbo(spec, P, x, mean, logvar, noise, likelihood, beta),
                               rtol=1e-12)
    for l in (2, 4):
        assert rel_err(to_np(h, g_mean[l]), central(f, mean, l)) < 1e-6, ("mean", l)
        assert rel_err(to_np(h, g_logvar[l]), central(f, logvar, l)) < 1e-6, ("logvar", l)
    assert all(g is None for l, g in enumerate(g_mean) if l not in (2, 4))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_forward_with_a_given_posterior_is_the_mean_field_bound(backend_name, likelihood):
    """``variational.forward(given=...)``, the refined pass of the hybrid rule:
    its samples are those of the given q, its closed-form KL terms make the
    mean-field ELBO of the reference, and the recognition areas above a sample
    are computed from it."""
    from cortexsim.inference.variational import forward, log_weights

    spec = two_level_spec((5, 4, 3, 3, 2), x_precision=1.5)
    h, P = randomized(spec, backend_name, scale=0.5)
    x = random_data(spec, likelihood, batch=3)
    rng = np.random.default_rng(12)
    mean = [rng.normal(size=(3, a.size)) if a.stochastic else None for a in spec.areas]
    logvar = [rng.normal(0, 0.5, size=(3, a.size)) if a.stochastic else None for a in spec.areas]
    noise = [rng.standard_normal((3, a.size)) if a.stochastic else None for a in spec.areas]
    on = lambda arrays: [None if a is None else put(h, a) for a in arrays]  # noqa: E731
    p = forward(h, put(h, x), on(noise), likelihood=likelihood, given=(on(mean), on(logvar)))
    np.testing.assert_allclose(to_np(h, log_weights(h.backend.xp, p)),
                               mean_field_elbo(spec, P, x, mean, logvar, noise, likelihood), rtol=1e-12)
    z1 = mean[2] + np.exp(logvar[2] / 2) * noise[2]
    np.testing.assert_allclose(to_np(h, p.z[2]), z1, rtol=1e-12)
    above = np_act(spec.areas[3].activation, z1 @ P[(spec.areas[3].name, "W_ff")] + P[(spec.areas[3].name, "b_ff")])
    np.testing.assert_allclose(to_np(h, p.h[3]), above, rtol=1e-12)
    with pytest.raises(ConfigurationError, match="needs posterior = 'bottom_up'"):
        forward(h, put(h, x), on(noise), posterior="ladder", given=(on(mean), on(logvar)))


def test_one_stochastic_area_starts_at_the_elbo_rule_bound(backend_name):
    """With one stochastic area the start is the amortized q itself: at the same
    noise, step 0's bound is the negative loss of the elbo rule."""
    spec = HierarchySpec(areas=(AreaSpec("x", 5), AreaSpec("h", 4, activation="tanh", feedback_activation="tanh"),
                                AreaSpec("z", 3, stochastic=True)))
    h, _ = randomized(spec, backend_name)
    x = random_data(spec, "bernoulli", batch=4)
    rule = ELBO(samples=2, seed=5)
    saved = rule.state_dict()
    loss = to_np(h, rule.infer(h, put(h, x)).loss)
    replay = np.random.default_rng()
    replay.bit_generator.state = saved["rng"]
    noise = [None, None, put(h, replay.standard_normal((8, 3)))]
    refined = refine(h, x, Refinement(steps=0, samples=2), noise=noise)
    assert to_np(h, refined.trace).shape == (1, 4)
    assert -to_np(h, refined.elbo).mean() == pytest.approx(float(loss), rel=1e-12)


# -- linear-Gaussian hierarchies: the closed-form optimum -------------------------------------


def moment_matched(rng, rows, sizes, batch):
    """Noise whose sample mean is 0 and sample covariance I exactly (per datum, over
    all stochastic areas jointly), so the sample-average bound of a model whose
    log-density is quadratic in z equals its expectation."""
    e = rng.standard_normal((rows, sum(sizes)))
    e -= e.mean(axis=0)
    e = e @ np.linalg.inv(np.linalg.cholesky(e.T @ e / rows)).T
    parts = np.split(e, np.cumsum(sizes)[:-1], axis=1)
    return [np.repeat(p, batch, axis=0) for p in parts]  # row r * batch + b holds draw r for datum b


def linear_gaussian(levels, rng, orthogonal=False):
    """x (4, precision 2) <- linear z1 (3) [<- linear z2 (2), fixed variance 0.5]; N(0, I) at the top.
    Returns the built hierarchy, its parameters and (H, prior mean, prior covariance, c1, s_x^2):
    w = (z1[, z2]) ~ N(mu_w, S_w), x = H w + c1 + N(0, s_x^2 I)."""
    areas = [AreaSpec("x", 4, precision=2.0), AreaSpec("z1", 3, activation="linear", stochastic=True)]
    if levels == 2:
        areas.append(AreaSpec("z2", 2, activation="linear", stochastic=True))
    spec = HierarchySpec(areas=tuple(areas))
    h = build64(spec, "numpy", seed=1)
    P = {k: rng.normal(0, 0.5, size=v.shape) for k, v in h.parameters_to_numpy().items()}
    W1 = rng.normal(size=(3, 4))
    if orthogonal:  # orthogonal rows of different lengths: a factorial posterior
        W1 = np.diag([1.5, 1.0, 0.7]) @ np.linalg.qr(rng.normal(size=(4, 3)))[0].T
    P[("z1", "W_fb")] = W1
    P[("z1", "b_fb")] = rng.normal(size=4)
    if levels == 2:
        P[("z2", "W_fb")] = rng.normal(size=(2, 3))
        P[("z2", "b_fb")] = rng.normal(size=3)
        P[("z2", "W_fb_logvar")] = np.zeros((2, 3))
        P[("z2", "b_fb_logvar")] = np.full(3, np.log(0.5))
    h.load_parameters(P)
    c1 = P[("z1", "b_fb")]
    if levels == 1:
        H, mu_w, S_w = W1.T, np.zeros(3), np.eye(3)
    else:
        W2, c2 = P[("z2", "W_fb")], P[("z2", "b_fb")]
        mu_w = np.concatenate([c2, np.zeros(2)])          # z1 = W2^T z2 + c2 + N(0, 0.5 I), z2 ~ N(0, I)
        S_w = np.block([[W2.T @ W2 + 0.5 * np.eye(3), W2.T], [W2, np.eye(2)]])
        H = np.hstack([W1.T, np.zeros((4, 2))])
    return h, spec, (H, mu_w, S_w, c1, 0.5)


def exact(model, x):
    """Posterior mean and precision of w given each x, and log p(x) (joint Gaussian, conditioned)."""
    H, mu_w, S_w, c1, sx2 = model
    precision = np.linalg.inv(S_w) + H.T @ H / sx2
    mean = np.linalg.solve(precision, (np.linalg.solve(S_w, mu_w)[:, None] + H.T @ (x - c1).T / sx2)).T
    log_px = multivariate_normal(H @ mu_w + c1, H @ S_w @ H.T + sx2 * np.eye(4)).logpdf(x)
    return mean, precision, log_px


def gaussian_kl(m, s, mean, precision):
    """KL(N(m, diag s) || N(mean, precision^-1)) per row."""
    diff = m - mean
    return 0.5 * (np.sum(np.diag(precision) * s, axis=1) + np.einsum("bi,ij,bj->b", diff, precision, diff)
                  - len(precision) - np.linalg.slogdet(precision)[1] - np.log(s).sum(axis=1))


@pytest.mark.parametrize("levels, optimizer", [(1, "sgd"), (2, "sgd"), (2, "adam")])
def test_linear_gaussian_reaches_the_optimum_of_the_diagonal_family(levels, optimizer):
    """One level with orthogonal decoder rows: the exact posterior is diagonal, so the
    family holds it and the refined ELBO reaches log p(x). Two levels: z1 and z2
    are correlated a posteriori, so the mean-field diagonal family cannot hold it;
    its optimum (Gaussian target: mean = the exact posterior mean, variance =
    1 / diag(precision)) lies below log p(x) by 0.5 (sum log diag(Lambda) - log det Lambda)."""
    rng = np.random.default_rng(0)
    h, spec, model = linear_gaussian(levels, rng, orthogonal=levels == 1)
    before = h.parameters_to_numpy()
    x = rng.normal(size=(3, 4)) * 2.0
    sizes = [a.size for a in spec.areas if a.stochastic]
    rows = 12
    noise = [None] + [put(h, e) for e in moment_matched(rng, rows, sizes, 3)]  # areas x, z1[, z2]
    # plain ascent: step 0.04 < 2 / (the largest curvature, 24 on the two-level model)
    settings = (Refinement(steps=1500, step_size=0.04, optimizer="sgd", samples=rows) if optimizer == "sgd"
                else Refinement(steps=3000, step_size=0.05, optimizer="adam", samples=rows))
    refined = refine(h, x, settings, likelihood="gaussian", noise=noise)
    mu, precision, log_px = exact(model, x)
    m = np.hstack([to_np(h, refined.mean[l]) for l in range(1, levels + 1)])
    s = np.exp(np.hstack([to_np(h, refined.logvar[l]) for l in range(1, levels + 1)]))
    np.testing.assert_allclose(m, mu, atol=1e-5)
    np.testing.assert_allclose(s, np.broadcast_to(1.0 / np.diag(precision), s.shape), rtol=1e-4)
    optimum = log_px - 0.5 * (np.log(np.diag(precision)).sum() - np.linalg.slogdet(precision)[1])
    # the trace is the exact ELBO (moment-matched noise), and it is log p(x) - KL(q || posterior)
    trace = to_np(h, refined.trace)
    np.testing.assert_allclose(trace[-1], log_px - gaussian_kl(m, s, mu, precision), rtol=1e-10)
    np.testing.assert_allclose(trace[-1], optimum, atol=1e-8)
    start_mean, _ = amortized_posterior(h, x)
    np.testing.assert_array_equal(to_np(h, start_mean[1]), to_np(h, h.backend.asarray(x) @ h[1].W_ff + h[1].b_ff))
    assert np.all(trace[0] < optimum - 0.1)  # the recognition weights are random: far from the optimum
    if levels == 1:
        np.testing.assert_allclose(trace[-1], log_px, atol=1e-8)
    else:
        assert np.all(optimum < log_px - 0.01)  # the diagonal family's gap, which refinement cannot close
    after = h.parameters_to_numpy()
    assert all(np.array_equal(before[key], after[key]) for key in before)


# -- a briefly trained model ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_digits():
    """64-32-8 Bernoulli VAE, 300 Adam steps on 960 statically binarized digits (float64)."""
    digits = load("digits")
    scale = digits.x_train.max()
    x = binarize(digits.x_train[:960] / scale, "static", seed=0)
    spec = HierarchySpec(areas=(
        AreaSpec("pixels", 64),
        AreaSpec("hidden", 32, activation="tanh", feedback_activation="tanh"),
        AreaSpec("latent", 8, stochastic=True),
    ))
    h = build(spec, dtype="float64", seed=0)
    Scheduler(h, ELBO(seed=0), Adam(3e-3), x, None, batch_size=32, epochs=10, seed=0).run()
    test = binarize(digits.x_test[:100] / scale, "static", seed=1)
    return h, test


def test_refinement_raises_the_elbo_of_a_trained_model(trained_digits):
    """Refined q beats the amortized q on nearly every test image, and stays below
    the importance-sampled log p(x): refinement closes part of the gap, the rest
    is the diagonal family's own (Cremer et al.'s approximation gap)."""
    h, x = trained_digits
    before = h.parameters_to_numpy()
    settings = Refinement(steps=50, step_size=0.05, samples=8, seed=2)
    bounds = refined_bounds(h, x, settings, samples=100, k=200, seed=3)
    closed = bounds["refined_elbo"] - bounds["amortized_elbo"]
    # measured: amortized ELBO -27.34, refined -27.14 nats per image (0.20 closed, positive
    # on 97 of 100 images); L_200 -26.68 (refined q as proposal), -26.69 (amortized q)
    assert closed.mean() > 0.1, closed.mean()
    assert np.mean(closed > 0) > 0.8
    np.testing.assert_allclose(bounds["start_elbo"], bounds["amortized_elbo"], rtol=1e-12)  # one stochastic area
    log_px = np.maximum(bounds["refined_iw"], bounds["amortized_iw"]).mean()
    assert bounds["refined_elbo"].mean() < log_px - 0.2
    assert abs(bounds["refined_iw"].mean() - bounds["amortized_iw"].mean()) < 0.1
    after = h.parameters_to_numpy()
    assert all(np.array_equal(before[key], after[key]) for key in before)


def test_trace_rises_with_plain_gradient_ascent(trained_digits):
    h, x = trained_digits
    refined = refine(h, x[:50], Refinement(steps=40, step_size=0.05, optimizer="sgd", samples=16, seed=0))
    trace = to_np(h, refined.trace).mean(axis=1)
    # measured: -27.32 at the start, -27.05 over the last 5 steps (nats per image)
    assert trace[-5:].mean() > trace[0] + 0.1, trace


# -- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings, where", [
    ({"steps": -1}, "refinement.steps"),
    ({"step_size": 0.0}, "refinement.step_size"),
    ({"optimizer": "adma"}, "refinement.optimizer"),
    ({"samples": 0}, "refinement.samples"),
    ({"start": "top_down"}, "refinement.start"),
    ({"seed": 1.5}, "refinement.seed"),
])
def test_settings_errors_name_the_key(settings, where):
    with pytest.raises(ConfigurationError, match=rf"^{where}: "):
        Refinement(**settings)
    with pytest.raises(ConfigurationError, match=rf"^rules\[1\]\.refinement\.{where.split('.')[1]}: "):
        Refinement.from_dict(settings, where="rules[1].refinement")


def test_unknown_key_and_bad_noise_are_refused():
    with pytest.raises(ConfigurationError, match=r"^refinement\.stpes: unknown key.*did you mean 'steps'"):
        Refinement.from_dict({"stpes": 3})
    assert Refinement.from_dict({"steps": 3, "optimizer": "sgd"}) == Refinement(steps=3, optimizer="sgd")
    spec = two_level_spec()
    h, _ = randomized(spec, "numpy")
    x = random_data(spec, "bernoulli", batch=3)
    noise = [None, None, np.zeros((6, 3)), None, np.zeros((3, 2))]
    with pytest.raises(ConfigurationError, match=r"^noise\[2\]: needs shape \(3, 3\)"):
        refine(h, x, Refinement(steps=1), noise=noise)
