"""Tuning curves, preferred values and orientation selectivity against known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.image import imread

from cortexsim import plots
from cortexsim.analysis import (
    orientation_selectivity,
    preferred_angle,
    preferred_value,
    tuning_curves,
)


def test_means_and_sems_by_hand():
    responses = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0], [2.0, 1.0], [4.0, 1.0]])
    values = np.array([20, 10, 20, 10, 30])  # unsorted on purpose
    tc = tuning_curves(responses, values)
    assert tc.values.tolist() == [10, 20, 30]
    assert tc.count.tolist() == [2, 2, 1]
    assert tc.mean[:, 0].tolist() == [2.5, 3.0, 4.0]
    assert tc.mean[:, 1].tolist() == [1.5, 2.0, 1.0]
    # value 20, unit 0: responses 1 and 5, sd = sqrt(8), sem = sqrt(8) / sqrt(2) = 2
    assert tc.sem[1, 0] == pytest.approx(2.0)
    assert tc.sem[0, 1] == pytest.approx(0.5)  # 2 and 1: sd sqrt(0.5), sem 0.5
    assert np.all(np.isnan(tc.sem[2]))  # one trial: no standard error
    assert preferred_value(tc.mean, tc.values).tolist() == [30, 20]


def test_planted_von_mises_preferences_are_recovered():
    rng = np.random.default_rng(0)
    angles = np.repeat(np.arange(16) * math.pi / 16, 20)  # 16 orientations x 20 trials
    preferred = rng.uniform(0, math.pi, 8)
    drive = np.exp(2.0 * (np.cos(2 * (angles[:, None] - preferred[None, :])) - 1))
    responses = 0.1 + drive + 0.05 * rng.normal(size=drive.shape)
    tc = tuning_curves(responses, angles)
    vector = preferred_angle(tc.mean, tc.values)
    grid = preferred_value(tc.mean, tc.values)
    for got_v, got_g, want in zip(vector, grid, preferred):
        err_v = abs((got_v - want + math.pi / 2) % math.pi - math.pi / 2)
        err_g = abs((got_g - want + math.pi / 2) % math.pi - math.pi / 2)
        assert err_v < math.radians(3)
        assert err_g <= math.pi / 32 + math.radians(3)  # half a grid step, plus noise
    osi = orientation_selectivity(tc.mean, tc.values)
    assert np.all((osi > 0.3) & (osi < 0.9))


def test_selectivity_known_answers():
    angles = np.arange(8) * math.pi / 8
    one_hot = np.zeros(8)
    one_hot[3] = 2.0
    flat = np.ones(8)
    cosine = 1 + np.cos(2 * (angles - angles[2]))  # sum r e^{2ia} / sum r = (8/2) / 8
    curves = np.column_stack([one_hot, flat, cosine, -flat])
    osi = orientation_selectivity(curves, angles)
    assert osi[:3] == pytest.approx([1.0, 0.0, 0.5], abs=1e-12)
    assert math.isnan(osi[3])  # nothing above zero
    assert preferred_angle(curves, angles)[[0, 2]] == pytest.approx([angles[3], angles[2]])
    # Rectified: negative responses at the orthogonal orientation do not count.
    tuned = np.where(np.arange(8) == 0, 1.0, 0.0) - 0.5 * (np.arange(8) == 4)
    assert orientation_selectivity(tuned, angles)[0] == pytest.approx(1.0)
    # Direction (period 2 pi): angles are not doubled.
    directions = np.arange(8) * 2 * math.pi / 8
    dsi = orientation_selectivity(1 + np.cos(directions), directions, period=2 * math.pi)
    assert dsi[0] == pytest.approx(0.5)


def test_shape_errors():
    with pytest.raises(ValueError, match=r"values: 3 entries.*\(4, 2\)"):
        tuning_curves(np.zeros((4, 2)), [1, 2, 3])
    with pytest.raises(ValueError, match=r"mean has 4 rows"):
        orientation_selectivity(np.zeros((4, 2)), [0.0, 1.0])
    with pytest.raises(ValueError, match="period"):
        preferred_angle(np.ones((2, 1)), [0.0, 1.0], period=0)


def test_tuning_curves_figure_renders(tmp_path):
    angles = np.repeat(np.linspace(0, 180, 8, endpoint=False), 5)
    responses = np.cos(np.radians(angles)[:, None] * 2 - np.arange(4)) + 1
    tc = tuning_curves(responses + 0.1 * np.random.default_rng(0).normal(size=responses.shape),
                       angles)
    fig = plots.tuning_curves(tc.values, tc.mean, tc.sem, xlabel="orientation (deg)")
    image = imread(plots.save(fig, tmp_path / "tuning.png"))
    assert image.shape[0] > 100 and image[..., :3].std() > 0.01
