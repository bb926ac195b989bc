"""2-D Gabor functions, least-squares Gabor fits of receptive fields, and
summaries of the fitted orientations and frequencies.

Coordinates are pixels: ``x`` is the column index and ``y`` the row index of an
image patch, ``(0, 0)`` the centre of the top-left pixel. With
``x' = (x - x0) cos(theta) + (y - y0) sin(theta)`` and
``y' = -(x - x0) sin(theta) + (y - y0) cos(theta)``::

    G(x, y) = offset + amplitude * exp(-x'^2 / (2 sigma_x^2) - y'^2 / (2 sigma_y^2))
                                 * cos(2 pi frequency x' + phase)

``theta`` is the direction of the carrier's wave vector, from the x axis
towards +y (downwards in an image), so the stripes run at ``theta + 90 deg``;
``frequency`` is in cycles per pixel; ``sigma_x`` is the envelope's width
across the stripes and ``sigma_y`` along them. Fits are reported in one
canonical form: ``amplitude >= 0``, ``sigma > 0``, ``theta`` in [0, pi),
``phase`` in (-pi, pi].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from scipy import ndimage, optimize, stats

__all__ = [
    "GABOR_PARAMS",
    "GaborParams",
    "fit_gabor",
    "fit_gabors",
    "fraction_well_fit",
    "frequency_spread",
    "gabor2d",
    "orientation_spread",
    "stripe_orientation",
]

GABOR_PARAMS = (
    "x0", "y0", "sigma_x", "sigma_y", "theta", "frequency", "phase", "amplitude", "offset"
)
WELL_FIT = 0.8
_PEAKS = 3  # FFT peaks tried as starting carriers
_GOOD_ENOUGH = 0.99  # stop trying further starts once a fit explains this much variance


class GaborParams(NamedTuple):
    """The nine parameters of :func:`gabor2d` (pixels, radians, cycles per pixel)."""

    x0: float
    y0: float
    sigma_x: float
    sigma_y: float
    theta: float
    frequency: float
    phase: float
    amplitude: float
    offset: float


def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    return x.astype(np.float64).ravel(), y.astype(np.float64).ravel()


def _evaluate(p: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x0, y0, sx, sy, theta, f, phase, amp, offset = p
    c, s = np.cos(theta), np.sin(theta)
    xr = (x - x0) * c + (y - y0) * s
    yr = -(x - x0) * s + (y - y0) * c
    envelope = np.exp(-0.5 * (xr / sx) ** 2 - 0.5 * (yr / sy) ** 2)
    return offset + amp * envelope * np.cos(2.0 * np.pi * f * xr + phase)


def gabor2d(
    shape: Sequence[int],
    x0: float,
    y0: float,
    sigma_x: float,
    sigma_y: float,
    theta: float,
    frequency: float,
    phase: float = 0.0,
    amplitude: float = 1.0,
    offset: float = 0.0,
) -> np.ndarray:
    """A Gabor patch of ``shape`` (rows, columns) with the parameters of the module docstring."""
    shape = tuple(int(v) for v in shape)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape: expected (rows, columns), got {shape}")
    p = np.array([x0, y0, sigma_x, sigma_y, theta, frequency, phase, amplitude, offset], float)
    return _evaluate(p, *_grid(shape)).reshape(shape)


def _canonical(p: np.ndarray) -> np.ndarray:
    """The same Gabor with amplitude >= 0, sigmas > 0, theta in [0, pi), phase in (-pi, pi]."""
    x0, y0, sx, sy, theta, f, phase, amp, offset = p
    if f < 0:  # cos(-a x' + phase) = cos(a x' - phase)
        f, phase = -f, -phase
    if amp < 0:
        amp, phase = -amp, phase + np.pi
    theta = np.mod(theta, 2.0 * np.pi)
    if theta >= np.pi:  # rotating by pi flips x', which flips the phase
        theta, phase = theta - np.pi, -phase
    phase = -np.mod(-phase + np.pi, 2.0 * np.pi) + np.pi  # (-pi, pi]
    return np.array([x0, y0, abs(sx), abs(sy), theta, f, phase, amp, offset])


def _linear_part(p: np.ndarray, x: np.ndarray, y: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Set phase, amplitude and offset by linear least squares, the rest held fixed."""
    x0, y0, sx, sy, theta, f = p[:6]
    c, s = np.cos(theta), np.sin(theta)
    xr = (x - x0) * c + (y - y0) * s
    yr = -(x - x0) * s + (y - y0) * c
    envelope = np.exp(-0.5 * (xr / sx) ** 2 - 0.5 * (yr / sy) ** 2)
    carrier = 2 * np.pi * f * xr
    design = np.column_stack(
        [envelope * np.cos(carrier), envelope * np.sin(carrier), np.ones_like(x)]
    )
    (a, b, offset), *_ = np.linalg.lstsq(design, data, rcond=None)
    # A cos(u + phase) = A cos(phase) cos(u) - A sin(phase) sin(u)
    return np.array([x0, y0, sx, sy, theta, f, np.arctan2(-b, a), np.hypot(a, b), offset])


def _starts(field: np.ndarray, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Starting points: carriers from the largest FFT peaks, envelope from the energy."""
    h, w = field.shape
    centred = field - field.mean()
    power = np.abs(np.fft.rfft2(centred))
    power[0, 0] = 0.0
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    order = np.argsort(power.ravel())[::-1][:_PEAKS]
    starts = []
    for index in order:
        r, c = np.unravel_index(index, power.shape)
        kx, ky = float(fx[0, c]), float(fy[r, 0])
        f = max(np.hypot(kx, ky), 1e-3)
        # Smooth the energy over about a period so the carrier's zeros do not split the blob.
        energy = ndimage.gaussian_filter(centred**2, sigma=min(0.5 / f, max(h, w) / 4))
        weights = energy.ravel() / max(energy.sum(), 1e-300)
        cx, cy = float(weights @ x), float(weights @ y)
        spread = np.sqrt(max(float(weights @ ((x - cx) ** 2 + (y - cy) ** 2)) / 2.0, 0.25))
        for scale in (1.0, 0.6):
            sigma = float(np.clip(scale * spread, 0.5, max(h, w)))
            p = np.array([cx, cy, sigma, sigma, np.arctan2(ky, kx), f, 0.0, 1.0, 0.0])
            starts.append(_linear_part(p, x, y, field.ravel()))
    return starts


def fit_gabor(field: Any, shape: Sequence[int] | None = None) -> tuple[GaborParams, float]:
    """Least-squares fit of :func:`gabor2d` to one receptive field.

    Starts from each of the three largest peaks of the field's Fourier spectrum
    (carrier direction and frequency), with the envelope centred on the
    smoothed energy and two widths, phase, amplitude and offset solved
    linearly; each start is refined by ``scipy.optimize.least_squares``
    (trust-region reflective, frequency bounded to [0, 0.75] cycles per pixel,
    widths to [0.25, 2 * size] pixels) and the best is kept.

    Parameters
    ----------
    field : array (h, w), or (d,) with ``shape``
    shape : tuple of int, optional
        (h, w) of a flat field.

    Returns
    -------
    params : GaborParams
        In the canonical form of the module docstring.
    r2 : float
        ``1 - SS_res / SS_tot`` (total about the field's mean); NaN, with NaN
        parameters, for a constant or non-finite field.
    """
    f = np.asarray(field, dtype=np.float64)
    if shape is not None:
        if f.size != int(np.prod(shape)):
            raise ValueError(f"field: shape {f.shape} cannot be reshaped to {tuple(shape)}")
        f = f.reshape(tuple(shape))
    if f.ndim != 2:
        raise ValueError(
            f"field: expected an image (h, w) or a flat field with shape=, got {f.shape}"
        )
    data = f.ravel()
    ss_tot = float(np.sum((data - data.mean()) ** 2)) if np.all(np.isfinite(data)) else 0.0
    # A constant field leaves rounding noise about its mean, not a pattern to fit.
    if ss_tot <= data.size * (1e-12 * float(np.max(np.abs(data), initial=0.0))) ** 2:
        return GaborParams(*[float("nan")] * 9), float("nan")
    h, w = f.shape
    x, y = _grid((h, w))
    size = float(max(h, w))
    low = [-size, -size, 0.25, 0.25, -4 * np.pi, 0.0, -4 * np.pi, -np.inf, -np.inf]
    high = [2 * size, 2 * size, 2 * size, 2 * size, 4 * np.pi, 0.75, 4 * np.pi, np.inf, np.inf]
    best, best_cost = None, np.inf
    for start in _starts(f, x, y):
        start = np.clip(start, np.array(low) + 1e-6, np.array(high) - 1e-6)
        result = optimize.least_squares(
            lambda p: _evaluate(p, x, y) - data, start, bounds=(low, high), x_scale="jac"
        )
        if result.cost < best_cost:
            best, best_cost = result.x, result.cost
        if 1.0 - 2.0 * best_cost / ss_tot >= _GOOD_ENOUGH:
            break
    return GaborParams(*map(float, _canonical(best))), float(1.0 - 2.0 * best_cost / ss_tot)


def fit_gabors(fields: Any, shape: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fit_gabor` for every unit's field.

    Parameters
    ----------
    fields : array (units, h, w), or (units, d) with ``shape``
    shape : tuple of int, optional
        (h, w) of flat fields.

    Returns
    -------
    params : array (units, 9)
        Columns in the order of ``GABOR_PARAMS``.
    r2 : array (units,)
    """
    fl = np.asarray(fields, dtype=np.float64)
    if fl.ndim == 2 and shape is not None:
        if fl.shape[1] != int(np.prod(shape)):
            raise ValueError(f"fields: rows of length {fl.shape[1]} (shape {fl.shape}) "
                             f"cannot be reshaped to {tuple(shape)}")
        fl = fl.reshape(fl.shape[0], *shape)
    if fl.ndim != 3:
        raise ValueError(
            f"fields: expected (units, h, w) or (units, d) with shape=, got {fl.shape}"
        )
    fits = [fit_gabor(field) for field in fl]
    params = np.array([p for p, _ in fits], dtype=np.float64).reshape(len(fits), 9)
    return params, np.array([r for _, r in fits], dtype=np.float64)


def fraction_well_fit(r2: Any, threshold: float = WELL_FIT) -> float:
    """Fraction of units whose fit has ``R^2 >= threshold``; NaN (unfittable) counts as not."""
    r = np.asarray(r2, dtype=np.float64).ravel()
    if r.size == 0:
        return float("nan")
    return float(np.mean(np.nan_to_num(r, nan=-np.inf) >= threshold))


def stripe_orientation(theta: Any) -> np.ndarray:
    """The orientation of a Gabor's stripes, in degrees in [0, 180): 0 horizontal
    stripes, 90 vertical, measured like ``theta`` from the x axis towards +y.

    ``theta`` (radians) is the direction of the carrier's wave vector, across
    the stripes, so the stripes run at ``theta + 90`` degrees. NaN stays NaN.
    """
    return np.mod(np.degrees(np.asarray(theta, dtype=np.float64)) + 90.0, 180.0)


def orientation_spread(theta: Any) -> dict[str, float]:
    """Mean orientation and circular variance of axial angles (period pi, so angles are doubled).

    Parameters
    ----------
    theta : array (units,)
        Orientations in radians (e.g. the ``theta`` column of :func:`fit_gabors`);
        NaN is skipped.

    Returns
    -------
    dict
        ``mean`` in [0, pi); ``circular_variance = 1 - R`` with ``R = |mean exp(2 i theta)|``:
        0 when all units share one orientation, near 1 when they cover all
        orientations evenly; ``n`` the number of angles used.
    """
    t = np.asarray(theta, dtype=np.float64).ravel()
    t = t[np.isfinite(t)]
    if t.size == 0:
        return {"mean": float("nan"), "circular_variance": float("nan"), "n": 0}
    doubled = np.mod(2.0 * t, 2.0 * np.pi)
    return {
        "mean": float(stats.circmean(doubled) / 2.0),
        "circular_variance": float(stats.circvar(doubled)),
        "n": int(t.size),
    }


def frequency_spread(frequency: Any) -> dict[str, float]:
    """Median, quartiles and octave spread of spatial frequencies (cycles per pixel).

    ``octaves`` is the sample standard deviation (ddof=1) of ``log2(frequency)``;
    non-positive and NaN frequencies are skipped (a blob without carrier has none).
    """
    f = np.asarray(frequency, dtype=np.float64).ravel()
    f = f[np.isfinite(f) & (f > 0)]
    if f.size == 0:
        nan = float("nan")
        return {"median": nan, "q25": nan, "q75": nan, "octaves": nan, "n": 0}
    q25, median, q75 = np.percentile(f, [25, 50, 75])
    octaves = float(np.std(np.log2(f), ddof=1)) if f.size > 1 else 0.0
    return {"median": float(median), "q25": float(q25), "q75": float(q75),
            "octaves": octaves, "n": int(f.size)}
