"""Tests of static, dynamic and threshold binarization."""

import numpy as np
import pytest

from cortexsim.data import binarize
from cortexsim.errors import ConfigurationError

X = np.random.default_rng(0).random((400, 50)).astype(np.float32)


@pytest.mark.parametrize("mode", ["static", "dynamic", "threshold"])
def test_values_and_dtype(mode):
    out = binarize(X, mode, rng=np.random.default_rng(1))
    assert out.shape == X.shape and out.dtype == np.float32
    assert set(np.unique(out)) <= {0.0, 1.0}


def test_static_is_deterministic_and_unbiased():
    a, b = binarize(X, seed=7), binarize(X, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, binarize(X, seed=8))
    assert abs(a.mean() - X.mean()) < 0.01


def test_dynamic_differs_between_calls_and_is_reproducible():
    rng = np.random.default_rng(3)
    a, b = binarize(X, "dynamic", rng=rng), binarize(X, "dynamic", rng=rng)
    assert not np.array_equal(a, b)
    rng2 = np.random.default_rng(3)
    np.testing.assert_array_equal(a, binarize(X, "dynamic", rng=rng2))
    mean = np.mean([binarize(X, "dynamic", rng=rng) for _ in range(20)], axis=0)
    assert np.abs(mean - X).mean() < 0.1  # each pixel is on with probability x
    assert abs(a.mean() - X.mean()) < 0.01


def test_threshold_and_extremes():
    x = np.array([[0.0, 0.49, 0.5, 0.51, 1.0]])
    np.testing.assert_array_equal(binarize(x, "threshold"), [[0, 0, 0, 1, 1]])
    ends = np.tile([0.0, 1.0], (1000, 1))
    np.testing.assert_array_equal(binarize(ends), ends)
    assert binarize(np.array([[0, 1]], dtype=np.uint8)).dtype == np.float32


def test_errors():
    with pytest.raises(ConfigurationError, match="did you mean 'dynamic'"):
        binarize(X, "dinamic")
    with pytest.raises(ConfigurationError, match="rng"):
        binarize(X, "dynamic")
    with pytest.raises(ConfigurationError, match=r"\[0, 1\]"):
        binarize(X * 255)
