"""Prior energies and gradients against formulas and central differences."""

import numpy as np
import pytest

from conftest import to_np
from cortexsim import Prior, get_backend

PRIORS = [Prior("gaussian", 0.3, 0.7), Prior("laplace", -0.2, 1.5), Prior("cauchy", 0.1, 0.4),
          Prior("cauchy", 0.0, 1.0, weight=0.05)]


def reference(prior, mu):
    z = (mu - prior.mean) / prior.scale
    if prior.kind == "gaussian":
        return prior.weight * 0.5 * np.sum(z**2)
    if prior.kind == "laplace":
        return prior.weight * np.sum(np.abs(z))
    return prior.weight * np.sum(np.log1p(z**2))


@pytest.mark.parametrize("prior", PRIORS, ids=lambda p: f"{p.kind}-{p.weight}")
def test_energy_and_gradient(backend_name, prior):
    be = get_backend(backend_name, "float64")
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(4, 5))
    mu = np.where(np.abs(mu - prior.mean) < 1e-3, mu + 0.01, mu)  # away from laplace's kink
    got = be.scalar(prior.energy(be, be.asarray(mu)))
    assert got == pytest.approx(reference(prior, mu), rel=1e-13)
    grad = to_np(be, prior.gradient(be, be.asarray(mu), be.empty(mu.shape)))
    numeric = np.zeros_like(mu)
    h = 1e-6
    for i in np.ndindex(mu.shape):
        up, down = mu.copy(), mu.copy()
        up[i] += h
        down[i] -= h
        numeric[i] = (reference(prior, up) - reference(prior, down)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-8)
