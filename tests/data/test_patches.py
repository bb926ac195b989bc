"""Tests of natural-image patches: shapes, seeding, DoG, whitening, missing scikit-image."""

import sys

import numpy as np
import pytest

from cortexsim.data import patches
from cortexsim.errors import ConfigurationError, DataError

pytest.importorskip("skimage")


def band_ratio(p, size):
    """Mean power at low over mid spatial frequencies of the patches' spectrum."""
    x = p.reshape(-1, size, size)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    power = (np.abs(np.fft.fft2(x)) ** 2).mean(axis=0)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij"))
    return power[(f > 0) & (f <= 0.15)].mean() / power[(f > 0.15) & (f <= 0.3)].mean()


def test_photographs_are_gray_unit_range():
    found = patches.photographs()
    assert len(found) >= 5
    for name, img in found:
        assert img.ndim == 2 and 0 <= img.min() and img.max() <= 1, name


@pytest.mark.parametrize("filt", patches.PATCH_FILTERS)
def test_shape_dtype_seed_and_normalisation(filt):
    a = patches.load_patches(size=8, count=600, filter=filt, seed=2)
    b = patches.load_patches(size=8, count=600, filter=filt, seed=2)
    c = patches.load_patches(size=8, count=600, filter=filt, seed=3)
    assert a.shape == (600, 64) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_allclose(a.mean(axis=1), 0, atol=1e-5)
    std = a.std(axis=1)
    assert std.max() <= 1 and np.median(std) > 0.9  # flat patches stay below 1


def test_dog_patches_have_near_zero_local_mean():
    raw = patches.load_patches(16, 2000, "none", normalize=False)
    dog = patches.load_patches(16, 2000, "dog", normalize=False)

    def mean_to_contrast(p):
        return np.abs(p.mean(axis=1)).mean() / p.std(axis=1).mean()

    assert mean_to_contrast(dog) < 0.25
    assert mean_to_contrast(raw) > 0.8
    assert abs(dog.mean()) < 0.02


def test_whitening_flattens_the_spectrum():
    raw = band_ratio(patches.load_patches(16, 2000, "none", normalize=False), 16)
    white = band_ratio(patches.load_patches(16, 2000, "whiten", normalize=False), 16)
    zca = band_ratio(patches.load_patches(16, 2000, "zca", normalize=False), 16)
    assert raw > 5  # natural images: power falls roughly as 1/f^2
    assert white < raw / 3 and white < 3.5
    assert 0.5 < zca < 2


def test_bad_arguments():
    with pytest.raises(ConfigurationError, match="did you mean 'whiten'"):
        patches.load_patches(filter="whitten")
    with pytest.raises(ConfigurationError):
        patches.load_patches(size=0)
    with pytest.raises(ConfigurationError, match="larger than every photograph"):
        patches.load_patches(size=5000, count=1)
    with pytest.raises(ConfigurationError):
        patches.dog_filter(np.zeros((8, 8)), (2.0, 1.0))


def clear_caches():
    patches._gray_photos.cache_clear()
    patches._filtered.cache_clear()


def test_missing_scikit_image_message(monkeypatch):
    clear_caches()
    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    try:
        with pytest.raises(DataError, match="pip install scikit-image"):
            patches.load_patches(count=10)
    finally:
        clear_caches()
