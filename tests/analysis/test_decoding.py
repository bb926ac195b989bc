"""Cross-validated linear decoding: a planted code decodes, shuffled labels do not."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from cortexsim import plots
from cortexsim.analysis import chance_level, decode, decode_areas


def _planted_labels(n: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(4), n // 4)
    codes = rng.normal(size=(4, 20))
    activity = 2.0 * codes[labels] + rng.normal(size=(n, 20))
    return activity, labels


def test_planted_label_code_decodes_nearly_perfectly_and_shuffled_at_chance():
    activity, labels = _planted_labels()
    score = decode(activity, labels)
    assert score.mean > 0.95 and score.scores.shape == (5,)
    assert score.sd == pytest.approx(np.std(score.scores, ddof=1))
    assert score.chance == 0.25
    shuffled = decode(activity, np.random.default_rng(1).permutation(labels))
    assert abs(shuffled.mean - 0.25) < 0.12


def test_planted_linear_factors_decode_with_r2_near_one():
    rng = np.random.default_rng(2)
    factors = rng.normal(size=(200, 2))
    activity = factors @ rng.normal(size=(2, 15)) + 0.05 * rng.normal(size=(200, 15))
    score = decode(activity, factors)  # floats: regression, scored by R^2
    assert score.mean > 0.95 and score.chance == 0.0
    shuffled = decode(activity, rng.permutation(factors))
    assert shuffled.mean < 0.1


def test_areas_share_folds_and_results_are_reproducible():
    activity, labels = _planted_labels()
    noise = np.random.default_rng(3).normal(size=activity.shape)
    scores = decode_areas({"V1": activity, "noise": noise}, labels, folds=4, random_state=7)
    assert list(scores) == ["V1", "noise"]
    assert scores["V1"].mean > scores["noise"].mean + 0.5
    again = decode(activity, labels, folds=4, random_state=7)
    assert np.array_equal(again.scores, scores["V1"].scores)


def test_chance_and_shape_errors():
    assert chance_level(["a", "b", "b", "b"]) == 0.75
    with pytest.raises(ValueError, match=r"target: expected shape \(10,\).*\(9,\)"):
        decode(np.zeros((10, 3)), np.zeros(9))
    with pytest.raises(ValueError, match=r"activity.*\(10,\)"):
        decode(np.zeros(10), np.zeros(10))
    with pytest.raises(ValueError, match="folds"):
        decode(np.zeros((10, 3)), np.arange(10) % 2, folds=1)


def test_decoding_figure_renders_flat_and_grouped(tmp_path):
    activity, labels = _planted_labels()
    scores = decode_areas({"V1": activity, "V2": activity[:, :5]}, labels, folds=3)
    flat = imread(plots.save(plots.decoding_accuracy(scores), tmp_path / "flat.png"))
    grouped = {"pc": scores, "bp": {"V1": (0.9, 0.02), "V2": (0.7, 0.05)}}
    nested = imread(plots.save(plots.decoding_accuracy(grouped), tmp_path / "grouped.png"))
    for image in (flat, nested):
        assert image.shape[0] > 100 and image[..., :3].std() > 0.01
