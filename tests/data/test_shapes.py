"""Tests of the procedural dSprites-like shapes: grid, ordering, rendering, sampling."""

import numpy as np
import pytest

from cortexsim.data import load
from cortexsim.data.shapes import (
    FACTOR_NAMES,
    FACTOR_SIZES,
    N_IMAGES,
    factor_values,
    factors_from_index,
    index_from_factors,
    load_shapes,
    render,
    shapes_factors,
)
from cortexsim.errors import ConfigurationError


def com(img):
    rows, cols = np.nonzero(img)
    return rows.mean(), cols.mean()


def test_factor_grid():
    f = shapes_factors()
    assert tuple(f) == FACTOR_NAMES
    assert tuple(len(v) for v in f.values()) == FACTOR_SIZES == (3, 6, 40, 32, 32)
    assert N_IMAGES == 737_280
    np.testing.assert_allclose(f["scale"][[0, -1]], [0.5, 1.0])
    assert f["orientation"][0] == 0 and f["orientation"][-1] < 2 * np.pi
    np.testing.assert_allclose(np.diff(f["orientation"]), 2 * np.pi / 40)


def test_index_order_matches_dsprites():
    # posY fastest, then posX, orientation, scale; shape slowest.
    assert factors_from_index(1).tolist() == [0, 0, 0, 0, 1]
    assert factors_from_index(32).tolist() == [0, 0, 0, 1, 0]
    assert factors_from_index(32 * 32).tolist() == [0, 0, 1, 0, 0]
    assert factors_from_index(40 * 32 * 32).tolist() == [0, 1, 0, 0, 0]
    assert factors_from_index(N_IMAGES // 3).tolist() == [1, 0, 0, 0, 0]
    assert factors_from_index(N_IMAGES - 1).tolist() == [s - 1 for s in FACTOR_SIZES]
    idx = np.random.default_rng(0).integers(N_IMAGES, size=1000)
    np.testing.assert_array_equal(index_from_factors(factors_from_index(idx)), idx)
    with pytest.raises(ConfigurationError):
        factors_from_index(N_IMAGES)


def test_sample_deterministic_and_consistent():
    a = load_shapes(n=60, seed=3)
    b = load_shapes(n=60, seed=3)
    c = load_shapes(n=60, seed=4)
    assert a.images.shape == (60, 4096) and a.images.dtype == np.float32
    assert a.classes.shape == (60, 5) and a.values.shape == (60, 5)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.classes, b.classes)
    assert not np.array_equal(a.classes, c.classes)
    assert set(np.unique(a.images)) <= {0.0, 1.0}
    assert len(np.unique(index_from_factors(a.classes))) == 60  # no repeats
    np.testing.assert_array_equal(a.values, factor_values(a.classes))
    again = render(a.classes[:, 0], *a.values[:, 1:].T).reshape(60, -1)
    np.testing.assert_array_equal(again, a.images)


def test_centre_of_mass_follows_position():
    pos = np.linspace(0, 1, 32)
    by_x = render(0, 0.75, 0.0, pos, 0.5)
    by_y = render(0, 0.75, 0.0, 0.5, pos)
    cx = np.array([com(im)[1] for im in by_x])
    cy = np.array([com(im)[0] for im in by_y])
    assert np.all(np.diff(cx) >= 0) and cx[-1] - cx[0] > 35
    assert np.all(np.diff(cy) >= 0) and cy[-1] - cy[0] > 35
    # posX moves along columns only, posY along rows only.
    assert np.ptp([com(im)[0] for im in by_x]) < 1
    assert np.ptp([com(im)[1] for im in by_y]) < 1


def test_area_grows_with_scale_and_shapes_differ():
    scales = shapes_factors()["scale"]
    imgs = render(np.arange(3)[:, None], scales[None, :], 0.4, 0.5, 0.5)
    assert imgs.shape == (3, 6, 64, 64) and imgs.dtype == np.uint8
    area = imgs.sum(axis=(2, 3))
    assert np.all(np.diff(area, axis=1) > 0)
    np.testing.assert_allclose(area[:, -1] / area[:, 0], 4.0, rtol=0.15)
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.sum(imgs[i, -1] != imgs[j, -1]) > 20


def test_orientation_and_symmetry():
    square = render(0, 1.0, [0.0, np.pi / 2, np.pi / 4], 0.5, 0.5)
    assert np.sum(square[0] != square[1]) <= 4  # a square is 90-degree symmetric
    assert np.sum(square[0] != square[2]) > 20
    heart = render(2, 1.0, [0.0, np.pi], 0.5, 0.5)
    assert np.sum(heart[0] != heart[1]) > 20  # a heart is not


def test_no_shape_is_cropped_at_the_border():
    theta = shapes_factors()["orientation"]
    shape, orient, x, y = np.meshgrid([0, 1, 2], theta, [0.0, 1.0], [0.0, 1.0], indexing="ij")
    imgs = render(shape, 1.0, orient, x, y)
    assert imgs[..., [0, -1], :].sum() == 0 and imgs[..., :, [0, -1]].sum() == 0
    assert imgs.sum(axis=(-2, -1)).min() > 100


def test_bad_arguments():
    with pytest.raises(ConfigurationError):
        load_shapes(n=0)
    with pytest.raises(ConfigurationError):
        render(3, 1.0, 0.0, 0.5, 0.5)


def test_load_shapes_as_dataset():
    ds = load("shapes", n=50, seed=1)
    assert ds.x_train.shape == (40, 4096) and ds.x_test.shape == (10, 4096)
    assert ds.image_shape == (64, 64) and ds.n_classes == 3
    assert set(np.unique(ds.y_train)) <= {0, 1, 2}
    sample = load_shapes(n=50, seed=1)
    np.testing.assert_array_equal(ds.y_test, sample.classes[40:, 0])
    with pytest.raises(ConfigurationError, match="n applies only"):
        load("digits", n=5)
