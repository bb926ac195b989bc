"""Natural-image patches from the photographs bundled with scikit-image.

These stand in for Olshausen & Field's ``IMAGES.mat``, which cannot be
downloaded here: the scikit-image wheel carries its photographs, so patches
load with no network.
"""

from __future__ import annotations

import functools

import numpy as np

from cortexsim.errors import ConfigurationError, DataError, did_you_mean

__all__ = ["PHOTOS", "PATCH_FILTERS", "photographs", "dog_filter", "whiten_1f", "load_patches"]

#: Candidate photographs; those missing from the installed scikit-image are skipped.
PHOTOS: tuple[str, ...] = (
    "camera", "brick", "grass", "gravel", "moon", "coins",
    "astronaut", "coffee", "chelsea", "rocket",
)
PATCH_FILTERS: tuple[str, ...] = ("dog", "whiten", "zca", "none")

# ITU-R BT.709 luma weights, the ones skimage.color.rgb2gray uses.
_LUMA = np.array([0.2125, 0.7154, 0.0721])
_EPS = 1e-8
# Share of the mean patch variance added before dividing by a patch's deviation.
_VAR_FLOOR = 0.01


def _skimage_data():
    try:
        import skimage.data
    except ImportError as exc:
        raise DataError(
            "natural-image patches need the photographs bundled with scikit-image, "
            f"which is not importable here ({exc}); run: pip install scikit-image"
        ) from exc
    return skimage.data


@functools.lru_cache(maxsize=4)
def _gray_photos(names: tuple[str, ...]) -> tuple[tuple[str, np.ndarray], ...]:
    data = _skimage_data()
    out = []
    for name in names:
        loader = getattr(data, name, None)
        if loader is None:
            continue
        try:
            img = np.asarray(loader())
        except (OSError, ImportError, ValueError):
            # Some versions fetch a few images over the network (via pooch);
            # offline those fail, and the bundled ones still serve.
            continue
        img = img.astype(np.float64) / (255.0 if img.dtype == np.uint8 else 1.0)
        if img.ndim == 3:
            img = img[..., :3] @ _LUMA
        img.setflags(write=False)  # shared through the cache
        out.append((name, img))
    return tuple(out)


def photographs(names: tuple[str, ...] | None = None) -> list[tuple[str, np.ndarray]]:
    """Return the available photographs as gray images.

    Parameters
    ----------
    names : tuple of str, optional
        Which ``skimage.data`` images to use; default :data:`PHOTOS`.

    Returns
    -------
    list of (str, numpy.ndarray of shape (H, W), float64 in [0, 1])
        Name and read-only gray image of each photograph that loaded.
    """
    found = list(_gray_photos(tuple(PHOTOS if names is None else names)))
    if not found:
        raise DataError(f"none of the photographs {names or PHOTOS} exist in this scikit-image")
    return found


def dog_filter(image: np.ndarray, sigmas: tuple[float, float] = (1.0, 1.6)) -> np.ndarray:
    """Band-pass an image with a difference of Gaussians, centre minus surround.

    Parameters
    ----------
    image : numpy.ndarray, shape (H, W)
        Gray image.
    sigmas : (float, float), default (1.0, 1.6)
        Centre and surround widths in pixels; the 1 : 1.6 ratio approximates
        a Laplacian of Gaussian (Marr & Hildreth), the retina/LGN-like
        prefilter of Rao & Ballard (1999).

    Returns
    -------
    numpy.ndarray, shape (H, W)
        The filtered image; its local mean is near zero because the kernel sums to zero.
    """
    from scipy.ndimage import gaussian_filter

    centre, surround = (float(s) for s in sigmas)
    if not 0 < centre < surround:
        raise ConfigurationError(
            f"dog_filter: sigmas {sigmas!r} must satisfy 0 < centre < surround"
        )
    blur_centre = gaussian_filter(image, centre, mode="reflect")
    return blur_centre - gaussian_filter(image, surround, mode="reflect")


def whiten_1f(image: np.ndarray, cutoff: float = 0.4) -> np.ndarray:
    """Flatten an image's 1/f amplitude spectrum, as Olshausen & Field (1996) did.

    Parameters
    ----------
    image : numpy.ndarray, shape (H, W)
        Gray image.
    cutoff : float, default 0.4
        Roll-off frequency f0 in cycles per pixel of the filter
        ``f exp(-(f / f0)^4)``; O&F's 200 cycles per 512-pixel picture is 0.39.

    Returns
    -------
    numpy.ndarray, shape (H, W)
        The whitened image.
    """
    h, w = image.shape
    # Mirror the image into a 2H x 2W tile: it is periodic without jumps at the
    # borders, so the FFT does not whiten edge discontinuities into bright lines.
    tile = np.pad(image - image.mean(), ((0, h), (0, w)), mode="symmetric")
    fy = np.fft.fftfreq(2 * h)[:, None]
    fx = np.fft.rfftfreq(2 * w)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    gain = f * np.exp(-((f / cutoff) ** 4))
    return np.fft.irfft2(np.fft.rfft2(tile) * gain, s=tile.shape)[:h, :w]


def _zca(x: np.ndarray, eps: float) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    evals, evecs = np.linalg.eigh(x.T @ x / x.shape[0])
    # Regularise relative to the mean eigenvalue so that eps does not depend
    # on the overall contrast of the photographs.
    scale = 1.0 / np.sqrt(np.maximum(evals, 0.0) + eps * evals.mean())
    return x @ (evecs * scale) @ evecs.T


@functools.lru_cache(maxsize=4)
def _filtered(filter: str, sigmas: tuple, cutoff: float, photos: tuple | None) -> tuple:
    # Cached: whitening every photograph costs far more than cutting patches.
    out = []
    for _, img in photographs(photos):
        if filter == "dog":
            img = dog_filter(img, sigmas)
        elif filter == "whiten":
            img = whiten_1f(img, cutoff)
        img = (img - img.mean()) / (img.std() + _EPS)
        img.setflags(write=False)
        out.append(img)
    return tuple(out)


def load_patches(
    size: int = 16,
    count: int = 10000,
    filter: str = "dog",
    seed: int = 0,
    *,
    normalize: bool = True,
    sigmas: tuple[float, float] = (1.0, 1.6),
    cutoff: float = 0.4,
    zca_eps: float = 0.1,
    photos: tuple[str, ...] | None = None,
) -> np.ndarray:
    """Cut square patches at seed-fixed random places from filtered photographs.

    Parameters
    ----------
    size : int, default 16
        Patch side P in pixels.
    count : int, default 10000
        Number of patches N; each comes from a photograph chosen uniformly.
    filter : {"dog", "whiten", "zca", "none"}, default "dog"
        Preprocessing: difference of Gaussians (:func:`dog_filter`), 1/f
        whitening of the full images (:func:`whiten_1f`), ZCA whitening of the
        patches themselves, or none. Each full image is first scaled to zero
        mean and unit variance so that every photograph weighs the same.
    seed : int, default 0
        Seed of the photograph choice and positions.
    normalize : bool, default True
        Subtract each patch's mean and divide by its standard deviation,
        after the filter; 1% of the mean patch variance is added first, so
        nearly flat patches stay nearly flat.
    sigmas : (float, float), default (1.0, 1.6)
        DoG centre and surround widths in pixels.
    cutoff : float, default 0.4
        Roll-off of the 1/f whitening filter, in cycles per pixel.
    zca_eps : float, default 0.1
        ZCA regulariser as a share of the mean eigenvalue.
    photos : tuple of str, optional
        ``skimage.data`` images to cut from; default :data:`PHOTOS`.

    Returns
    -------
    numpy.ndarray, shape (N, P * P), float32
        Row-major flattened patches.
    """
    if filter not in PATCH_FILTERS:
        raise ConfigurationError(
            f"load_patches: unknown filter {filter!r}; allowed: {', '.join(PATCH_FILTERS)}"
            f"{did_you_mean(filter, PATCH_FILTERS)}"
        )
    for label, value in (("size", size), ("count", count)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigurationError(
                f"load_patches: {label} must be a whole number >= 1, got {value!r}"
            )
    names = None if photos is None else tuple(photos)
    filtered = _filtered(filter, tuple(sigmas), float(cutoff), names)
    images = [img for img in filtered if min(img.shape) >= size]
    if not images:
        raise ConfigurationError(f"load_patches: size {size} is larger than every photograph")
    rng = np.random.default_rng(seed)
    source = rng.integers(len(images), size=count)
    out = np.empty((count, size * size), dtype=np.float64)
    for k, img in enumerate(images):
        (rows,) = np.nonzero(source == k)
        top = rng.integers(img.shape[0] - size + 1, size=rows.size)
        left = rng.integers(img.shape[1] - size + 1, size=rows.size)
        windows = np.lib.stride_tricks.sliding_window_view(img, (size, size))
        out[rows] = windows[top, left].reshape(rows.size, -1)
    if filter == "zca":
        out = _zca(out, zca_eps)
    if normalize:
        out -= out.mean(axis=1, keepdims=True)
        var = out.var(axis=1, keepdims=True)
        # The floor keeps flat patches (sky, saturated regions) from being
        # blown up into unit-variance quantisation noise.
        out /= np.sqrt(var + _VAR_FLOOR * var.mean() + _EPS)
    return out.astype(np.float32)
