"""Neighbouring image patches for a row of modules (Rao & Ballard 1999).

Rao & Ballard's level 1 is three modules, each looking at its own 16 x 16
patch of one image; the patches sit side by side, offset horizontally by 5
pixels (so they overlap by 11), and each is weighted by a Gaussian window.
Here a crop of ``height x (width + (modules - 1) * offset)`` pixels is cut
from a filtered photograph (``cortexsim.data.patches``), split into the
``modules`` windowed patches, and the patches are laid end to end: one row of
``modules * height * width`` values, module ``i`` at columns
``i * height * width .. (i + 1) * height * width``, which is what an area with
``modules`` modules expects (``cortexsim.model.wiring``).

We keep the photographs' global scale (each filtered photograph has unit
variance) instead of normalising every crop, so that stimuli made by hand
(bars, gratings: :func:`stimulus_modules`) are on the same scale as the
training data.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigurationError
from .patches import _filtered, dog_filter

__all__ = ["crop_width", "gaussian_window", "load_module_patches", "split_modules", "stimulus_modules"]


def crop_width(width: int, modules: int, offset: int) -> int:
    """Width of the crop that holds ``modules`` patches offset by ``offset`` pixels."""
    return width + (modules - 1) * offset


def gaussian_window(height: int, width: int, sigma: float | None) -> np.ndarray:
    """A (height, width) Gaussian centred on the patch; all ones when ``sigma`` is None."""
    if sigma is None:
        return np.ones((height, width))
    yy, xx = np.mgrid[0:height, 0:width]
    yy, xx = yy - (height - 1) / 2, xx - (width - 1) / 2
    return np.exp(-(xx**2 + yy**2) / (2.0 * sigma**2))


def split_modules(crops: np.ndarray, width: int, modules: int, offset: int,
                  window: float | None) -> np.ndarray:
    """Cut (N, height, crop_width) crops into windowed patches laid end to end.

    Returns
    -------
    numpy.ndarray, shape (N, modules * height * width)
    """
    crops = np.asarray(crops, dtype=np.float64)
    n, height, total = crops.shape
    if total != crop_width(width, modules, offset):
        raise ConfigurationError(
            f"split_modules: crops are {total} pixels wide, {modules} patches of {width} "
            f"offset by {offset} need {crop_width(width, modules, offset)}"
        )
    w = gaussian_window(height, width, window)
    parts = [(crops[:, :, i * offset : i * offset + width] * w).reshape(n, -1) for i in range(modules)]
    return np.concatenate(parts, axis=1)


def load_module_patches(
    count: int = 20000,
    *,
    height: int = 16,
    width: int = 16,
    modules: int = 3,
    offset: int = 5,
    window: float | None = 5.0,
    filter: str = "dog",
    seed: int = 0,
    photos: tuple[str, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Windowed module patches from seed-fixed random crops of filtered photographs.

    Parameters
    ----------
    count : int
        Number of crops N.
    height, width : int
        Size of one module's patch in pixels (Rao & Ballard: 16 x 16).
    modules, offset : int
        Patches per crop and the horizontal offset between neighbours (3 and 5).
    window : float or None
        Standard deviation in pixels of each patch's Gaussian window; None for none.
    filter : {"dog", "whiten", "none"}
        Filter of the photographs (``cortexsim.data.patches``); difference of
        Gaussians stands in for the retina and LGN, as in Rao & Ballard.
    seed : int
        Seed of the photograph choice and the crop positions.
    photos : tuple of str, optional
        ``skimage.data`` images to cut from.

    Returns
    -------
    x : numpy.ndarray, shape (N, modules * height * width), float32
    source : numpy.ndarray, shape (N,), int64
        Index of the photograph each crop came from.
    """
    if filter not in ("dog", "whiten", "none"):
        raise ConfigurationError(f"load_module_patches: unknown filter {filter!r}; allowed: dog, whiten, none")
    total = crop_width(width, modules, offset)
    images = [img for img in _filtered(filter, (1.0, 1.6), 0.4, photos) if img.shape[0] >= height and img.shape[1] >= total]
    if not images:
        raise ConfigurationError(f"load_module_patches: a {height} x {total} crop is larger than every photograph")
    rng = np.random.default_rng(seed)
    source = rng.integers(len(images), size=count)
    crops = np.empty((count, height, total))
    for k, img in enumerate(images):
        (rows,) = np.nonzero(source == k)
        top = rng.integers(img.shape[0] - height + 1, size=rows.size)
        left = rng.integers(img.shape[1] - total + 1, size=rows.size)
        windows = np.lib.stride_tricks.sliding_window_view(img, (height, total))
        crops[rows] = windows[top, left]
    return split_modules(crops, width, modules, offset, window).astype(np.float32), source.astype(np.int64)


def stimulus_modules(canvas: np.ndarray, *, height: int = 16, width: int = 16, modules: int = 3,
                     offset: int = 5, window: float | None = 5.0, filter: str = "dog",
                     margin: int = 16) -> np.ndarray:
    """Hand-made stimuli (N, height, crop_width) as the model sees photographs.

    Each stimulus is padded by ``margin`` pixels of zero (so the filter sees
    no edge), filtered like the training photographs, cropped back and split
    into windowed module patches. Returns (N, modules * height * width).
    """
    canvas = np.asarray(canvas, dtype=np.float64)
    if filter not in ("dog", "none"):
        raise ConfigurationError(f"stimulus_modules: filter {filter!r} is not available for stimuli; use dog or none")
    out = np.empty_like(canvas)
    for i, image in enumerate(canvas):
        padded = np.pad(image, margin)
        filtered = dog_filter(padded) if filter == "dog" else padded
        out[i] = filtered[margin:-margin, margin:-margin]
    return split_modules(out, width, modules, offset, window)
