"""Treves-Rolls sparseness (Vinje & Gallant normalization) against known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.image import imread

from cortexsim import plots
from cortexsim.analysis import lifetime_sparseness, population_sparseness, treves_rolls


def test_one_hot_code_is_maximally_sparse():
    code = 3.0 * np.eye(5)  # each stimulus drives one unit, each unit one stimulus
    assert lifetime_sparseness(code) == pytest.approx(np.ones(5))
    assert population_sparseness(code) == pytest.approx(np.ones(5))


def test_constant_code_is_dense():
    code = np.full((6, 4), 0.7)
    assert lifetime_sparseness(code) == pytest.approx(np.zeros(4))
    assert population_sparseness(code) == pytest.approx(np.zeros(6))


def test_hand_computed_value_and_absolute_values():
    # r = 1, 2, 3: mean 2, mean square 14/3; (1 - 4 / (14/3)) / (1 - 1/3) = (1/7) / (2/3) = 3/14
    assert treves_rolls([1.0, 2.0, 3.0]) == pytest.approx(3 / 14)
    assert treves_rolls([-1.0, 2.0, -3.0]) == pytest.approx(3 / 14)  # magnitudes count


def test_matches_the_published_formula_with_sums():
    rng = np.random.default_rng(0)
    r = rng.exponential(size=(30, 7))
    want = []
    for unit in r.T:
        n = len(unit)
        s = (1 - (sum(unit) / n) ** 2 / sum(v * v / n for v in unit)) / (1 - 1 / n)
        want.append(s)
    assert lifetime_sparseness(r) == pytest.approx(want, rel=1e-12)
    assert population_sparseness(r.T) == pytest.approx(want, rel=1e-12)
    assert population_sparseness(r).shape == (30,)


def test_silent_rows_and_single_responses_are_nan():
    code = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 2.0]])
    pop = population_sparseness(code)
    assert math.isnan(pop[0]) and 0 < pop[1] < 1
    assert math.isnan(lifetime_sparseness(code)[1])  # unit 1 never responds
    assert np.all(np.isnan(lifetime_sparseness(np.ones((1, 3)))))  # n = 1: 1 - 1/n = 0
    with pytest.raises(ValueError, match=r"responses.*\(3,\)"):
        lifetime_sparseness(np.ones(3))


def test_sparseness_figure_renders(tmp_path):
    rng = np.random.default_rng(1)
    values = {"V1": lifetime_sparseness(rng.exponential(size=(50, 40)) ** 3),
              "V2": lifetime_sparseness(rng.uniform(size=(50, 30)))}
    image = imread(plots.save(plots.sparseness(values), tmp_path / "sparse.png"))
    assert image.shape[0] > 100 and image[..., :3].std() > 0.01
