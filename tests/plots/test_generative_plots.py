"""Smoke tests of the generative-study figures: each renders to a PNG."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from cortexsim import plots

RNG = np.random.default_rng(0)


def _png(fig, tmp_path, name):
    path = plots.save(fig, tmp_path / name, dpi=40)
    assert path.exists()
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 20 and image.shape[1] > 20
    return image


def test_samples_grid(tmp_path):
    images = RNG.random((10, 64))
    _png(plots.samples_grid(images, (8, 8)), tmp_path, "samples.png")
    _png(plots.samples_grid(images.reshape(10, 8, 8), columns=5), tmp_path, "samples_3d.png")


def test_reconstructions(tmp_path):
    x = (RNG.random((7, 16, 16)) > 0.5).astype(float)
    _png(plots.reconstructions(x, 0.8 * x, columns=4), tmp_path, "recon.png")


def test_latent_traversals(tmp_path):
    images = RNG.random((3, 7, 12 * 12))
    fig = plots.latent_traversals(
        images, (12, 12), units=[4, 0, 9], values=np.linspace(-3, 3, 7), kl=[1.2, 0.8, 0.01]
    )
    _png(fig, tmp_path, "traversals.png")


def test_kl_per_unit(tmp_path):
    kl = np.array([0.001, 2.5, 0.0, 1.1, 0.3, 0.002])
    _png(plots.kl_per_unit(kl), tmp_path, "kl.png")
    _png(plots.kl_per_unit(kl, active=kl > 0.5), tmp_path, "kl_mask.png")


def test_disentanglement_vs_beta(tmp_path):
    betas = [1.0, 4.0, 16.0]
    results = {
        "MIG": {b: RNG.random(3) for b in betas},
        "β-VAE metric": {b: RNG.random(3) for b in betas},
    }
    _png(plots.disentanglement_vs_beta(results), tmp_path, "beta.png")
    _png(plots.disentanglement_vs_beta({}), tmp_path, "empty.png")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: plots.samples_grid(np.zeros((4, 10)), (3, 3)), r"images: expected shape"),
        (lambda: plots.samples_grid(np.zeros((4, 9))), r"pass shape"),
        (lambda: plots.reconstructions(np.zeros((4, 9)), np.zeros((3, 9)), (3, 3)), "originals"),
        (lambda: plots.latent_traversals(np.zeros((2, 3, 4, 4)), kl=[1.0]), r"kl: expected 2"),
        (lambda: plots.kl_per_unit(np.zeros((2, 3))), r"kl: expected shape \(units,\)"),
    ],
)
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
