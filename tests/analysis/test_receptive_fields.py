"""Receptive fields from weights and by reverse correlation, against planted fields."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from cortexsim import plots
from cortexsim.analysis import (
    fields_from_weights,
    fit_gabors,
    gabor2d,
    ridge_fields,
    spike_triggered_average,
)

SHAPE = (8, 8)


def _planted(units: int = 3) -> np.ndarray:
    """Three Gabor fields of different orientation, position and phase, (units, 64)."""
    return np.stack(
        [
            gabor2d(SHAPE, 3.5 + u * 0.5, 3.0 + u * 0.4, 1.6, 2.2, u * 1.0, 0.2, u * 0.9, 1.0)
            for u in range(units)
        ]
    ).reshape(units, -1)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_generative_rows_and_recognition_columns_are_the_fields():
    w_fb = np.arange(3 * 64, dtype=float).reshape(3, 64)  # (n_l, n_{l-1})
    fields = fields_from_weights(w_fb, SHAPE)
    assert fields.shape == (3, 8, 8)
    assert np.array_equal(fields[1], w_fb[1].reshape(8, 8))
    assert fields[2, 1, 0] == w_fb[2, 8]  # row-major pixels: row 1, column 0 is pixel 8
    w_ff = w_fb.T.copy()  # (n_{l-1}, n_l)
    assert np.array_equal(fields_from_weights(w_ff, SHAPE, kind="recognition"), fields)
    fields[0, 0, 0] = -1.0
    assert w_fb[0, 0] == 0.0  # a copy, not a view


def test_weight_errors_name_argument_and_shape():
    with pytest.raises(ValueError, match=r"shape.*\(7, 7\).*64"):
        fields_from_weights(np.zeros((3, 64)), (7, 7))
    with pytest.raises(ValueError, match=r"weights.*\(64,\)"):
        fields_from_weights(np.zeros(64))
    with pytest.raises(ValueError, match="kind"):
        fields_from_weights(np.zeros((3, 64)), kind="forward")


def test_sta_and_ridge_recover_planted_fields_from_white_noise():
    rng = np.random.default_rng(0)
    k = _planted()
    stimuli = rng.normal(size=(4000, 64))  # white, variance 1
    responses = stimuli @ k.T + 0.5 * rng.normal(size=(4000, 3)) + 2.0
    sta = spike_triggered_average(stimuli, responses)
    ridge = ridge_fields(stimuli, responses, alpha=1.0)
    assert sta.shape == ridge.shape == (3, 64)
    for u in range(3):
        assert _corr(sta[u], k[u]) > 0.95
        assert _corr(ridge[u], k[u]) > 0.95
    # For unit-variance white stimuli the cross-covariance is the filter itself.
    assert np.abs(sta - k).mean() < 0.05 and np.abs(sta - k).max() < 0.2
    assert np.abs(ridge - k).max() < 0.05
    assert spike_triggered_average(stimuli.reshape(-1, 8, 8), responses, SHAPE).shape == (3, 8, 8)


def test_classic_sta_of_counts_from_a_linear_nonlinear_poisson_model():
    rng = np.random.default_rng(1)
    k = _planted(2)
    stimuli = rng.normal(size=(5000, 64))
    counts = rng.poisson(np.exp(0.4 * stimuli @ k.T))
    sta = spike_triggered_average(stimuli, counts, weighting="spikes")
    for u in range(2):
        assert _corr(sta[u], k[u]) > 0.95
    silent = np.column_stack([counts[:, 0], np.zeros(5000)])
    assert np.all(np.isnan(spike_triggered_average(stimuli, silent, weighting="spikes")[1]))
    with pytest.raises(ValueError, match="non-negative"):
        spike_triggered_average(stimuli, counts - 1.0, weighting="spikes")


def test_ridge_undoes_stimulus_correlations_where_the_sta_cannot():
    rng = np.random.default_rng(2)
    k = _planted(1)
    white = rng.normal(size=(3000, 64))
    mixing = np.eye(64) + 0.8 * np.roll(np.eye(64), 1, axis=1) + 0.5 * np.roll(np.eye(64), 8, 1)
    stimuli = white @ mixing  # neighbouring pixels correlated, like natural images
    responses = stimuli @ k[0] + 0.3 * rng.normal(size=3000)
    ridge = ridge_fields(stimuli, responses, alpha=10.0)
    sta = spike_triggered_average(stimuli, responses)
    assert _corr(ridge[0], k[0]) > 0.99
    # The STA is the field blurred by the stimulus covariance: cov(S) k.
    assert _corr(sta[0], k[0]) < _corr(ridge[0], k[0]) - 0.02
    blurred = np.cov(stimuli, rowvar=False, bias=True) @ k[0]
    assert _corr(sta[0], blurred) > 0.99
    # Ridge in closed form: (S_c^T S_c + alpha I)^-1 S_c^T r_c.
    s_c = stimuli - stimuli.mean(0)
    r_c = responses - responses.mean()
    closed = np.linalg.solve(s_c.T @ s_c + 10.0 * np.eye(64), s_c.T @ r_c)
    assert np.allclose(ridge[0], closed, atol=1e-8)


def test_reverse_correlation_checks_shapes():
    with pytest.raises(ValueError, match=r"responses: 9 rows.*\(9, 2\)"):
        spike_triggered_average(np.zeros((10, 4)), np.zeros((9, 2)))
    with pytest.raises(ValueError, match=r"stimuli.*\(10,\)"):
        ridge_fields(np.zeros(10), np.zeros(10))
    with pytest.raises(ValueError, match="alpha"):
        ridge_fields(np.zeros((10, 4)), np.zeros(10), alpha=-1.0)


def _png(fig, path) -> np.ndarray:
    image = imread(plots.save(fig, path))
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.01  # not a blank canvas
    return image


def test_receptive_field_grid_renders_with_and_without_fits(tmp_path):
    k = _planted(4)
    params, r2 = fit_gabors(k, SHAPE)
    _png(plots.receptive_field_grid(k, SHAPE, fits=params, r2=r2), tmp_path / "grid.png")
    _png(plots.receptive_field_grid(k.reshape(4, 8, 8), columns=4), tmp_path / "plain.png")
    with pytest.raises(ValueError, match="shape"):
        plots.receptive_field_grid(np.zeros((2, 10)))
