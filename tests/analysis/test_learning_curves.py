"""Learning-curve statistics against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from cortexsim.analysis import (
    best_epoch,
    mean_and_interval,
    mean_and_sd,
    stack_curves,
    summary_table,
)
from cortexsim.analysis.learning_curves import BEST_VALIDATION, FINAL_EPOCH


def test_interval_matches_a_hand_computed_student_t():
    curves = np.array([[0.50, 0.70, 0.90], [0.60, 0.75, 0.80], [0.40, 0.80, 0.85]])
    mean, low, high = mean_and_interval(curves, confidence=0.95)
    for j in range(3):
        column = curves[:, j]
        m = sum(column) / 3
        s = math.sqrt(sum((v - m) ** 2 for v in column) / 2)
        half = stats.t.ppf(0.975, 2) * s / math.sqrt(3)
        assert mean[j] == pytest.approx(m)
        assert low[j] == pytest.approx(m - half)
        assert high[j] == pytest.approx(m + half)
    # t with 2 degrees of freedom: 4.3027 (tables)
    assert stats.t.ppf(0.975, 2) == pytest.approx(4.302653, abs=1e-5)


def test_interval_other_confidence_is_narrower():
    curves = np.array([[1.0, 2.0], [3.0, 5.0]])
    _, low90, high90 = mean_and_interval(curves, confidence=0.90)
    _, low95, high95 = mean_and_interval(curves, confidence=0.95)
    assert np.all(high90 - low90 < high95 - low95)
    assert high90[0] - 2.0 == pytest.approx(stats.t.ppf(0.95, 1) * math.sqrt(2.0) / math.sqrt(2))


def test_one_seed_interval_is_the_mean():
    curve = np.array([[0.1, 0.5, 0.7]])
    mean, low, high = mean_and_interval(curve)
    np.testing.assert_array_equal(mean, curve[0])
    np.testing.assert_array_equal(low, curve[0])
    np.testing.assert_array_equal(high, curve[0])
    mean1d, low1d, _ = mean_and_interval(curve[0])  # a 1-D curve is one seed
    np.testing.assert_array_equal(mean1d, curve[0])
    np.testing.assert_array_equal(low1d, curve[0])


def test_ragged_curves_use_the_seeds_present():
    curves = stack_curves([[1.0, 2.0, 3.0], [3.0, 4.0]])
    assert curves.shape == (2, 3) and np.isnan(curves[1, 2])
    mean, low, high = mean_and_interval(curves)
    np.testing.assert_allclose(mean, [2.0, 3.0, 3.0])
    assert low[2] == high[2] == 3.0  # one seed there
    assert low[0] < 2.0 < high[0]


def test_confidence_out_of_range():
    with pytest.raises(ValueError, match="confidence"):
        mean_and_interval([[1.0]], confidence=1.0)


def test_best_epoch_takes_the_first_maximum():
    assert best_epoch([0.1, 0.9, 0.3, 0.9]) == 1
    assert best_epoch([0.5, 0.5, 0.5]) == 0
    assert best_epoch([0.2, np.nan, 0.4]) == 2
    with pytest.raises(ValueError):
        best_epoch([])
    with pytest.raises(ValueError):
        best_epoch([np.nan, np.nan])


def test_mean_and_sd_sample_sd():
    assert mean_and_sd([1.0, 3.0]) == pytest.approx((2.0, math.sqrt(2.0)))
    assert mean_and_sd([0.7]) == (0.7, 0.0)


def test_summary_rows_for_known_input():
    results = {
        "pc": [
            # best validation at index 1 (first of the tie) -> test 0.80; final 0.70
            {"validation": [0.5, 0.9, 0.9], "test": [0.4, 0.80, 0.70]},
            # best at index 2 -> test 0.90; final 0.90
            {"validation": [0.5, 0.6, 0.95], "test": [0.5, 0.6, 0.90]},
        ],
        "backprop": [{"validation": [0.9, 0.8], "test": [0.85, 0.95], "epoch": [1, 2]}],
        "noval": [{"test": [0.3, 0.6]}, {"test": [0.2, 0.4], "validation": None}],
    }
    rows = {row["label"]: row for row in summary_table(results)}
    assert list(rows) == ["pc", "backprop", "noval"]

    pc = rows["pc"]
    assert pc["seeds"] == 2
    assert pc["best_test_mean"] == pytest.approx(0.85)
    assert pc["best_test_sd"] == pytest.approx(np.std([0.80, 0.90], ddof=1))
    assert pc["final_test_mean"] == pytest.approx(0.80)
    assert pc["final_test_sd"] == pytest.approx(np.std([0.70, 0.90], ddof=1))
    assert pc["best_epoch_mean"] == pytest.approx(2.5)  # epochs 2 and 3 (1-based)
    assert pc["selection"] == BEST_VALIDATION and pc["note"] == ""

    bp = rows["backprop"]
    assert bp["seeds"] == 1
    assert (bp["best_test_mean"], bp["best_test_sd"]) == (0.85, 0.0)
    assert (bp["final_test_mean"], bp["final_test_sd"]) == (0.95, 0.0)
    assert bp["best_epoch_mean"] == 1.0

    noval = rows["noval"]
    assert noval["selection"] == FINAL_EPOCH and "final epoch" in noval["note"]
    assert noval["best_test_mean"] == pytest.approx(0.5)
    assert noval["best_test_sd"] == pytest.approx(np.std([0.6, 0.4], ddof=1))
    assert noval["best_epoch_mean"] == 2.0


def test_summary_needs_a_test_curve():
    with pytest.raises(ValueError, match="no test curve"):
        summary_table({"pc": [{"validation": [0.5]}]})
