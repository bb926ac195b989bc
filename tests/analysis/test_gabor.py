"""Gabor function and fits against planted Gabors and hand-computed summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.image import imread

from cortexsim import plots
from cortexsim.analysis import (
    GABOR_PARAMS,
    fit_gabor,
    fit_gabors,
    fraction_well_fit,
    frequency_spread,
    gabor2d,
    orientation_spread,
)
from cortexsim.analysis.gabor import _canonical

SHAPE = (16, 16)
PLANTED = (7.3, 6.6, 2.1, 3.0, 0.7, 0.16, 0.9, 1.5, 0.1)  # canonical already
TOLERANCE = (0.15, 0.15, 0.15, 0.2, 0.03, 0.005, 0.12, 0.06, 0.02)


def _angle_diff(a: float, b: float, period: float) -> float:
    d = (a - b) % period
    return min(d, period - d)


def _close(fit, planted, tolerance=TOLERANCE) -> None:
    for name, got, want, tol in zip(GABOR_PARAMS, fit, planted, tolerance):
        if name == "theta":
            diff = _angle_diff(got, want, math.pi)
        elif name == "phase":
            diff = _angle_diff(got, want, 2 * math.pi)
        else:
            diff = abs(got - want)
        assert diff <= tol, f"{name}: fitted {got:.4f}, planted {want:.4f}"


def test_gabor_matches_the_formula_at_a_pixel():
    x0, y0, sx, sy, theta, f, phase, amp, offset = PLANTED
    image = gabor2d(SHAPE, *PLANTED)
    row, col = 9, 4  # y = 9, x = 4
    xr = (col - x0) * math.cos(theta) + (row - y0) * math.sin(theta)
    yr = -(col - x0) * math.sin(theta) + (row - y0) * math.cos(theta)
    want = offset + amp * math.exp(-xr**2 / (2 * sx**2) - yr**2 / (2 * sy**2)) * math.cos(
        2 * math.pi * f * xr + phase
    )
    assert image.shape == SHAPE
    assert image[row, col] == pytest.approx(want, rel=1e-12)


def test_fit_recovers_a_planted_gabor():
    params, r2 = fit_gabor(gabor2d(SHAPE, *PLANTED))
    assert r2 > 0.9999
    _close(params, PLANTED, [t / 10 for t in TOLERANCE])


def test_fit_recovers_a_planted_gabor_under_mild_noise():
    rng = np.random.default_rng(0)
    clean = gabor2d(SHAPE, *PLANTED)
    noisy = clean + rng.normal(scale=0.03, size=SHAPE)
    params, r2 = fit_gabor(noisy.ravel(), shape=SHAPE)
    assert r2 > 0.95
    _close(params, PLANTED)
    # Least squares: no worse than the planted parameters themselves.
    planted_r2 = 1 - np.sum((noisy - clean) ** 2) / np.sum((noisy - noisy.mean()) ** 2)
    assert r2 >= planted_r2 - 1e-9


def test_canonical_form_describes_the_same_image():
    rng = np.random.default_rng(1)
    for _ in range(20):
        p = np.array([7, 8, rng.uniform(-3, 3), rng.uniform(-3, 3), rng.uniform(-7, 7),
                      rng.uniform(-0.3, 0.3), rng.uniform(-7, 7), rng.uniform(-2, 2), 0.2])
        c = _canonical(p)
        assert np.allclose(gabor2d(SHAPE, *c), gabor2d(SHAPE, *p), atol=1e-12)
        assert c[2] > 0 and c[3] > 0 and c[5] >= 0 and c[7] >= 0
        assert 0 <= c[4] < math.pi and -math.pi < c[6] <= math.pi


def test_fit_gabors_over_units_in_random_orientations():
    rng = np.random.default_rng(2)
    planted = [
        (rng.uniform(6, 9), rng.uniform(6, 9), rng.uniform(1.8, 2.6), rng.uniform(2.2, 3.2),
         rng.uniform(0, math.pi), rng.uniform(0.1, 0.25), rng.uniform(-3, 3), 1.0, 0.0)
        for _ in range(6)
    ]
    fields = np.stack([gabor2d(SHAPE, *p) for p in planted]).reshape(6, -1)
    params, r2 = fit_gabors(fields, SHAPE)
    assert params.shape == (6, 9) and r2.shape == (6,)
    assert np.all(r2 > 0.999)
    for fit, p in zip(params, planted):
        _close(fit, p)


def test_fit_of_a_constant_field_is_nan():
    params, r2 = fit_gabor(np.full(SHAPE, 0.3))
    assert math.isnan(r2) and all(math.isnan(v) for v in params)
    with pytest.raises(ValueError, match=r"field.*\(64,\)"):
        fit_gabor(np.zeros(64))
    with pytest.raises(ValueError, match=r"fields.*\(3, 10\)"):
        fit_gabors(np.zeros((3, 10)), (3, 3))


def test_summaries_against_hand_values():
    assert fraction_well_fit([0.9, 0.5, np.nan, 0.8], threshold=0.8) == 0.5
    spread = orientation_spread([0.1, math.pi - 0.1])  # +-0.1 rad about horizontal
    assert _angle_diff(spread["mean"], 0.0, math.pi) < 1e-12
    assert spread["circular_variance"] == pytest.approx(1 - math.cos(0.2))
    even = orientation_spread(np.arange(8) * math.pi / 8)
    assert even["circular_variance"] == pytest.approx(1.0)
    f = frequency_spread([0.1, 0.2, 0.4, np.nan, 0.0])
    assert f["n"] == 3 and f["median"] == pytest.approx(0.2)
    assert f["octaves"] == pytest.approx(1.0)  # log2 steps of 1: sd (ddof=1) is 1


def test_gabor_summary_renders(tmp_path):
    rng = np.random.default_rng(3)
    params = np.column_stack([rng.uniform(size=(30, 4)), rng.uniform(0, math.pi, 30),
                              rng.uniform(0.05, 0.3, 30), rng.uniform(size=(30, 3))])
    r2 = rng.uniform(0.5, 1.0, 30)
    image = imread(plots.save(plots.gabor_summary(params, r2), tmp_path / "gabor.png"))
    assert image.shape[0] > 100 and image[..., :3].std() > 0.01
    empty = plots.gabor_summary(params, np.zeros(30))  # no unit passes: still a figure
    assert imread(plots.save(empty, tmp_path / "empty.png")).shape[1] > 100
