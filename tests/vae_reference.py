"""An independent NumPy reference of the negative (importance-weighted) ELBO,
written from the densities (not from cortexsim's code), for the finite-difference
and closed-form tests of the ``elbo`` rule."""

from __future__ import annotations

import math

import numpy as np
from conftest import build64, np_act
from scipy.special import logsumexp

from cortexsim import AreaSpec, HierarchySpec


def log_normal(z, mean, var):
    """log N(z; mean, diag(var)) per unit."""
    return -0.5 * (np.log(2 * np.pi * var) + (z - mean) ** 2 / var)


def kl_normal(mq, vq, mp, vp):
    """KL(N(mq, vq) || N(mp, vp)) per unit, variances given."""
    return 0.5 * (np.log(vp / vq) + (vq + (mq - mp) ** 2) / vp - 1.0)


def draw_noise(spec, rng, rows):
    """The rule's draw order: one (rows, n_l) standard normal per stochastic area, bottom first."""
    return [rng.standard_normal((rows, a.size)) if a.stochastic else None for a in spec.areas]


def negative_bound(spec, P, x, noise, *, posterior="bottom_up", likelihood="bernoulli",
                   kl="analytic", k=1, samples=1, beta=1.0):
    """-(1/B) sum_b (1/S) sum_s log (1/k) sum_j w, with log w = log p(x|z) - beta sum KL."""
    areas = spec.areas
    L = len(areas) - 1
    names = [a.name for a in areas]
    W = lambda l, p: P[(names[l], p)]
    B = x.shape[0]
    R = samples * k
    X = np.tile(x, (R, 1))
    mhat, vhat, z = {}, {}, {}
    h = X
    for l in range(1, L + 1):
        m = np_act(areas[l].activation, h @ W(l, "W_ff") + W(l, "b_ff"))
        if areas[l].stochastic:
            mhat[l] = m
            vhat[l] = np.exp(h @ W(l, "W_ff_logvar") + W(l, "b_ff_logvar"))
            if posterior == "bottom_up":
                z[l] = m + np.sqrt(vhat[l]) * noise[l]
                m = z[l]
        h = m
    prior = areas[L].prior
    pm = {L: 0.0 if prior is None else prior.mean}
    pv = {L: 1.0 if prior is None else prior.scale ** 2}
    qm, qv = {L: mhat[L]}, {L: vhat[L]}
    if posterior == "ladder":
        z[L] = mhat[L] + np.sqrt(vhat[L]) * noise[L]
    d = z[L]
    for l in range(L, 0, -1):
        u = np_act(areas[l].feedback_activation, d)
        below = u @ W(l, "W_fb") + W(l, "b_fb")
        if l == 1:
            out = below
        elif areas[l - 1].stochastic:
            j = l - 1
            pm[j], pv[j] = below, np.exp(u @ W(l, "W_fb_logvar") + W(l, "b_fb_logvar"))
            if posterior == "ladder":
                precision = 1.0 / vhat[j] + 1.0 / pv[j]
                qv[j] = 1.0 / precision
                qm[j] = qv[j] * (mhat[j] / vhat[j] + pm[j] / pv[j])
                z[j] = qm[j] + np.sqrt(qv[j]) * noise[j]
            else:
                qm[j], qv[j] = mhat[j], vhat[j]
            d = z[j]
        else:
            d = below
    if likelihood == "bernoulli":
        prob = 1.0 / (1.0 + np.exp(-out))
        log_px = np.sum(X * np.log(prob) + (1 - X) * np.log(1 - prob), axis=1)
    else:
        log_px = np.sum(log_normal(X, out, 1.0 / areas[0].precision), axis=1)
    logw = log_px
    for l, sample in z.items():
        closed = kl == "analytic" and (posterior == "ladder" or l == L)
        if closed:
            term = kl_normal(qm[l], qv[l], pm[l], pv[l])
        else:
            term = log_normal(sample, qm[l], qv[l]) - log_normal(sample, pm[l], pv[l])
        logw = logw - beta * term.sum(axis=1)
    grid = logw.reshape(samples, k, B)
    bound = logsumexp(grid, axis=1) - math.log(k)
    return -bound.mean()


# -- small models and data shared by the variational tests ------------------------------------

def one_level_spec(sizes=(5, 4, 3)):
    """x - tanh h - stochastic z."""
    x, h, z = sizes
    return HierarchySpec(areas=(
        AreaSpec("x", x),
        AreaSpec("h", h, activation="tanh", feedback_activation="tanh"),
        AreaSpec("z", z, activation="linear", stochastic=True),
    ))


def two_level_spec(sizes=(5, 4, 3, 3, 2), top_prior=None, x_precision=1.0):
    """x - tanh h1 - stochastic z1 - sigmoid/tanh h2 - stochastic z2 (with ``top_prior``)."""
    x, h1, z1, h2, z2 = sizes
    return HierarchySpec(areas=(
        AreaSpec("x", x, precision=x_precision),
        AreaSpec("h1", h1, activation="tanh", feedback_activation="tanh"),
        AreaSpec("z1", z1, activation="linear", stochastic=True),
        AreaSpec("h2", h2, activation="sigmoid", feedback_activation="tanh"),
        AreaSpec("z2", z2, activation="linear", stochastic=True, prior=top_prior),
    ))


PCA_TRAIN, PCA_SINGULAR, PCA_NOISE = 2000, (4.0, 3.0, 2.0), 0.5


def pca_data():
    """Probabilistic-PCA data in 10 dimensions: a 3-dimensional signal (singular
    values ``PCA_SINGULAR``) plus isotropic noise of sd ``PCA_NOISE``; returns
    (x (PCA_TRAIN, 10), the top three eigenvectors of its covariance (10, 3))."""
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.normal(size=(10, 10)))[0][:, :3]
    x = rng.normal(size=(PCA_TRAIN, 3)) @ (np.diag(PCA_SINGULAR) @ basis.T) + rng.normal(size=10)
    x += PCA_NOISE * rng.normal(size=x.shape)
    _, vec = np.linalg.eigh(np.cov(x.T, bias=True))
    return x, vec[:, ::-1][:, :3]


def randomized(spec, backend_name, seed=3, scale=0.3):
    """A float64 hierarchy of ``spec`` with every parameter drawn N(0, scale^2); (hierarchy, parameters)."""
    h = build64(spec, backend_name, seed=seed)
    rng = np.random.default_rng(seed)
    params = {k: rng.normal(0.0, scale, size=v.shape) for k, v in h.parameters_to_numpy().items()}
    h.load_parameters(params)
    return h, params


def random_data(spec, likelihood, batch=3, seed=7):
    """A batch for ``spec``'s data area: fair coin flips (Bernoulli) or standard normals."""
    rng = np.random.default_rng(seed)
    shape = (batch, spec.areas[0].size)
    return (rng.random(shape) < 0.5) * 1.0 if likelihood == "bernoulli" else rng.normal(size=shape)
