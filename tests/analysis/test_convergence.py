"""Inference convergence diagnostics against traces with hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.image import imread

from cortexsim import plots
from cortexsim.analysis import (
    convergence_summary,
    final_energy,
    monotonic_fraction,
    relative_change,
    steps_to_tolerance,
)


def _decay(c: float, k: float, steps: int = 60) -> np.ndarray:
    """E_t = 1 + c exp(-k t): relaxes to 1 at rate k."""
    return 1.0 + c * np.exp(-k * np.arange(steps + 1))


def test_exponential_decay_reaches_tolerance_at_the_hand_computed_step():
    # |E_t - E_{t-1}| / E_{t-1} = u (1 - e^-k) / (1 + u) with u = c e^{-k (t-1)}, below tol when
    # u < q = tol / (1 - e^-k - tol), i.e. t - 1 > ln(c / q) / k = 23.877 for c=5, k=0.3, tol=1e-3.
    c, k, tol = 5.0, 0.3, 1e-3
    q = tol / (1 - math.exp(-k) - tol)
    assert math.floor(math.log(c / q) / k) + 2 == 25
    assert steps_to_tolerance(_decay(c, k), tol) == 25
    # Twice as far away: t - 1 > (ln(2 c / q)) / k = 23.877 + ln(2) / 0.3 = 26.187, so 28.
    assert math.floor(math.log(2 * c / q) / k) + 2 == 28
    both = np.stack([_decay(c, k), _decay(2 * c, k)])
    assert steps_to_tolerance(both, tol).tolist() == [25, 28]


def test_never_converging_trace_is_minus_one():
    linear = 100.0 - np.arange(50)  # relative change >= 1/100
    assert steps_to_tolerance(linear, 1e-3) == -1
    assert steps_to_tolerance(linear, 0.02) == 1  # 1/100 < 0.02 from the first step


def test_relative_change_final_energy_and_monotonicity_by_hand():
    assert relative_change([4.0, 2.0, 1.0, 1.0]).tolist() == [-0.5, -0.5, 0.0]
    assert relative_change([-2.0, -3.0]).tolist() == [-0.5]  # falls by half of |E|
    assert relative_change([0.0, 0.0, 1.0]).tolist() == [0.0, np.inf]
    assert monotonic_fraction([3.0, 2.0, 2.5, 1.0]) == pytest.approx(2 / 3)
    stopped = np.array([[5.0, 3.0, 2.9995, np.nan, np.nan], [5.0, 4.0, 4.5, 3.0, 2.0]])
    assert final_energy(stopped).tolist() == [2.9995, 2.0]
    assert monotonic_fraction(stopped).tolist() == [1.0, 0.75]
    assert steps_to_tolerance(stopped, 1e-3).tolist() == [2, -1]


def test_summary_collects_every_diagnostic():
    traces = np.stack([_decay(5.0, 0.3), _decay(10.0, 0.3), 100.0 - np.arange(61)])
    s = convergence_summary(traces, 1e-3)
    assert s["steps_to_tolerance"].tolist() == [25, 28, -1]
    assert s["converged_fraction"] == pytest.approx(2 / 3)
    assert s["median_steps"] == 26.5
    assert s["final_energy"][2] == 40.0


def test_shape_errors():
    with pytest.raises(ValueError, match=r"energy.*\(1,\)"):
        steps_to_tolerance([1.0])
    with pytest.raises(ValueError, match=r"energy.*\(2, 2, 2\)"):
        final_energy(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="tol"):
        steps_to_tolerance([2.0, 1.0], tol=0)


def test_convergence_figure_renders(tmp_path):
    rng = np.random.default_rng(0)
    traces = {"pc": np.stack([_decay(c, 0.3, 40) for c in rng.uniform(2, 8, 10)]),
              "slow": np.stack([_decay(c, 0.05, 40) for c in rng.uniform(2, 8, 10)])}
    image = imread(plots.save(plots.convergence(traces, tol=1e-3), tmp_path / "conv.png"))
    assert image.shape[0] > 100 and image[..., :3].std() > 0.01
