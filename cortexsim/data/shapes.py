"""Procedural 2-D shapes in the manner of dSprites, with every ground-truth factor.

The grid is shape 3 (square, ellipse, heart) x scale 6 (0.5 .. 1) x orientation
40 (0 .. 2 pi, 2 pi excluded) x posX 32 x posY 32 = 737,280 binary 64 x 64
images, indexed in dSprites' order: shape varies slowest, posY fastest. The
real dSprites file also has a constant ``color`` factor (left out here) and
lists orientation ``linspace(0, 2 pi, 40)`` with 2 pi included; the drawings
are similar in kind, not pixel-identical to DeepMind's.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cortexsim.errors import ConfigurationError

__all__ = [
    "FACTOR_NAMES",
    "FACTOR_SIZES",
    "SHAPE_NAMES",
    "N_IMAGES",
    "ShapesSample",
    "shapes_factors",
    "factors_from_index",
    "index_from_factors",
    "factor_values",
    "render",
    "load_shapes",
]

FACTOR_NAMES: tuple[str, ...] = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES: tuple[int, ...] = (3, 6, 40, 32, 32)
SHAPE_NAMES: tuple[str, ...] = ("square", "ellipse", "heart")
N_IMAGES = int(np.prod(FACTOR_SIZES))
IMAGE_SIZE = 64

# Mixed-radix place values: posY is the fastest-varying digit, as in dSprites.
_BASES = np.concatenate([np.cumprod(FACTOR_SIZES[::-1])[::-1][1:], [1]]).astype(np.int64)
# Half-size in pixels of a scale-1 shape, in units where the square's half side is 1.
_RADIUS = 8.0
# The farthest a shape reaches from its centre (the square's corner, sqrt 2 units):
# keeping centres this far (plus a pixel) from the border means no rotation
# ever crops a shape or even touches the outermost pixels.
_MARGIN = _RADIUS * np.sqrt(2.0) + 1.0
_CHUNK = 1024


class ShapesSample(NamedTuple):
    """Images with their ground-truth factors.

    Parameters
    ----------
    images : numpy.ndarray, shape (N, 4096)
        Flattened 64 x 64 images with values in {0, 1}.
    classes : numpy.ndarray, shape (N, 5), int64
        Factor class indices in :data:`FACTOR_NAMES` order.
    values : numpy.ndarray, shape (N, 5), float64
        Factor values (shape 1..3 as in dSprites, scale, orientation in
        radians, posX and posY in [0, 1]).
    """

    images: np.ndarray
    classes: np.ndarray
    values: np.ndarray


def shapes_factors() -> dict[str, np.ndarray]:
    """Return each factor's name with its values, in dSprites order.

    Returns
    -------
    dict of str -> numpy.ndarray, shape (K_f,)
        ``shape`` [1, 2, 3] (square, ellipse, heart), ``scale`` 6 values in
        0.5 .. 1, ``orientation`` 40 values ``2 pi k / 40``, ``posX`` and
        ``posY`` 32 values in 0 .. 1; ``K_f`` is :data:`FACTOR_SIZES`.
    """
    return {
        "shape": np.array([1.0, 2.0, 3.0]),
        "scale": np.linspace(0.5, 1.0, 6),
        "orientation": 2.0 * np.pi * np.arange(40) / 40.0,
        "posX": np.linspace(0.0, 1.0, 32),
        "posY": np.linspace(0.0, 1.0, 32),
    }


def factors_from_index(index) -> np.ndarray:
    """Map flat grid indices to factor class indices.

    Parameters
    ----------
    index : array_like of int, shape (...)
        Positions in the 737,280-image grid.

    Returns
    -------
    numpy.ndarray, shape (..., 5), int64
        Class indices in :data:`FACTOR_NAMES` order.
    """
    index = np.asarray(index, dtype=np.int64)
    if index.size and (index.min() < 0 or index.max() >= N_IMAGES):
        raise ConfigurationError(f"shapes: index must lie in 0..{N_IMAGES - 1}")
    return (index[..., None] // _BASES) % np.asarray(FACTOR_SIZES)


def index_from_factors(classes) -> np.ndarray:
    """Map factor class indices, shape (..., 5), to flat grid indices, shape (...)."""
    classes = np.asarray(classes, dtype=np.int64)
    if classes.shape[-1:] != (5,) or np.any(classes < 0) or np.any(classes >= FACTOR_SIZES):
        raise ConfigurationError(
            f"shapes: classes must have shape (..., 5) within sizes {FACTOR_SIZES}"
        )
    return classes @ _BASES


def factor_values(classes) -> np.ndarray:
    """Look up factor values, shape (..., 5) float64, for class indices of shape (..., 5)."""
    classes = np.asarray(classes, dtype=np.int64)
    table = shapes_factors()
    return np.stack([table[k][classes[..., i]] for i, k in enumerate(FACTOR_NAMES)], axis=-1)


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # Implicit regions in units of the scaled radius; v points up on screen.
    if shape == 0:
        return np.maximum(np.abs(u), np.abs(v)) <= 1.0
    if shape == 1:
        return (u / 1.2) ** 2 + (v / 0.6) ** 2 <= 1.0
    # The classic heart curve (u^2 + v^2 - 1)^3 = u^2 v^3, filled.
    r = u * u + v * v - 1.0
    return r * r * r - u * u * v * v * v <= 0.0


def render(shape, scale, orientation, x, y) -> np.ndarray:
    """Draw filled shapes on 64 x 64 binary images.

    Parameters
    ----------
    shape : array_like of int, shape (...)
        Shape class: 0 square, 1 ellipse, 2 heart.
    scale : array_like of float, shape (...)
        Size factor; 1 draws a square of side 16 pixels.
    orientation : array_like of float, shape (...)
        Rotation in radians, counter-clockwise on screen.
    x, y : array_like of float, shape (...)
        Centre in [0, 1]: x runs left to right along columns, y top to bottom
        along rows, mapped to pixels with a margin so that no shape is cropped.

    Returns
    -------
    numpy.ndarray, shape (..., 64, 64), uint8
        1 inside the shape, 0 outside; the inputs broadcast against each other.
    """
    shape, scale, orientation, x, y = np.broadcast_arrays(
        np.asarray(shape, dtype=np.int64), *(np.asarray(a, dtype=np.float64)
                                             for a in (scale, orientation, x, y))
    )
    if np.any((shape < 0) | (shape > 2)) or np.any(scale <= 0):
        raise ConfigurationError("render: shape must be 0, 1 or 2 and scale > 0")
    batch = shape.shape
    flat = [a.reshape(-1) for a in (shape, scale, orientation, x, y)]
    out = np.zeros((flat[0].size, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    # Sample each pixel at its centre; float32 halves the memory of the grids.
    centres = np.arange(IMAGE_SIZE, dtype=np.float32) + np.float32(0.5)
    span = IMAGE_SIZE - 2.0 * _MARGIN
    for s in range(3):
        (which,) = np.nonzero(flat[0] == s)
        # Chunks bound the (chunk, 64, 64) temporaries to a few tens of MB.
        for start in range(0, which.size, _CHUNK):
            idx = which[start:start + _CHUNK]
            sc, th, px, py = (a[idx].astype(np.float32)[:, None, None] for a in flat[1:])
            dx = centres[None, None, :] - (_MARGIN + px * span)
            dy = centres[None, :, None] - (_MARGIN + py * span)
            cos, sin = np.cos(th), np.sin(th)
            size = sc * np.float32(_RADIUS)
            # Undo the rotation; rows grow downward, so flip to make v point up.
            u = (cos * dx - sin * dy) / size
            v = (-sin * dx - cos * dy) / size
            out[idx] = _inside(s, u, v)
    return out.reshape(batch + (IMAGE_SIZE, IMAGE_SIZE))


def load_shapes(n: int | None = None, seed: int = 0, dtype=np.float32) -> ShapesSample:
    """Render the shapes grid or a seed-fixed random sample of it.

    Parameters
    ----------
    n : int, optional
        Number of distinct factor combinations drawn at random without
        replacement; None renders all 737,280 in grid order (about 12 GB as
        float32, so pass ``dtype=numpy.uint8`` or sample).
    seed : int, default 0
        Seed of the sample; the same (n, seed) gives the same images in the
        same order.
    dtype : numpy dtype, default numpy.float32
        Dtype of the images.

    Returns
    -------
    ShapesSample
        ``images`` (N, 4096) in {0, 1}, ``classes`` (N, 5) int64 and
        ``values`` (N, 5) float64.
    """
    if n is None:
        index = np.arange(N_IMAGES, dtype=np.int64)
    else:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 < n <= N_IMAGES:
            raise ConfigurationError(
                f"load_shapes: n must be a whole number in 1..{N_IMAGES}, got {n!r}"
            )
        index = np.random.default_rng(seed).choice(N_IMAGES, size=int(n), replace=False)
    classes = factors_from_index(index)
    values = factor_values(classes)
    images = render(classes[:, 0], *values[:, 1:].T)
    return ShapesSample(images.reshape(len(index), -1).astype(dtype, copy=False), classes, values)
