"""Figures of receptive fields: a grid of fields as images (optionally with
their Gabor fits), and the spread of fitted orientations and frequencies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from ..analysis.gabor import WELL_FIT, fraction_well_fit, frequency_spread, orientation_spread
from .common import PALETTE, _empty, _figure, _style, _suptitle

CELL = 0.95  # inches per field image
FIT_COLOR, POOR_COLOR = "#2ca02c", "#d62728"


def _images(fields: Any, shape: Sequence[int] | None) -> np.ndarray:
    f = np.asarray(fields, dtype=np.float64)
    if f.ndim == 3:
        return f
    if f.ndim != 2:
        raise ValueError(f"fields: expected (units, h, w) or (units, d), got shape {f.shape}")
    if shape is None:
        side = round(float(np.sqrt(f.shape[1])))
        if side * side != f.shape[1]:
            raise ValueError(
                f"fields: rows of {f.shape[1]} pixels (shape {f.shape}) are not square; "
                "pass shape=(h, w)"
            )
        shape = (side, side)
    if int(np.prod(shape)) != f.shape[1]:
        raise ValueError(f"shape: {tuple(shape)} does not hold the {f.shape[1]} pixels of a field")
    return f.reshape(f.shape[0], *shape)


def receptive_field_grid(
    fields: Any,
    shape: Sequence[int] | None = None,
    columns: int | None = None,
    fits: Any = None,
    r2: Any = None,
    threshold: float = WELL_FIT,
    max_fields: int = 100,
    title: str | None = None,
) -> Figure:
    """Each unit's receptive field as a gray image, symmetric about 0 per field.

    Parameters
    ----------
    fields : array (units, h, w), or (units, d) with ``shape`` (square ``d`` needs none)
        E.g. :func:`cortexsim.analysis.fields_from_weights` or a reverse-correlation estimate.
    shape : tuple of int, optional
    columns : int, optional
        Images per row; default about square.
    fits : array (units, 9), optional
        :func:`cortexsim.analysis.fit_gabors` parameters: each field gets the
        fit's one-sd envelope ellipse (long axis along ``sigma_y``, the stripes).
    r2 : array (units,), optional
        Fit quality, written on each field: green at ``>= threshold``, else red.
    max_fields : int
        Draw the first ``max_fields`` units only.

    Gray levels: white is the field's largest positive weight, black minus
    that magnitude, mid-gray 0, so the sign of every pixel reads the same in
    every field, whatever its scale.
    """
    images = _images(fields, shape)[: int(max_fields)]
    n = max(len(images), 1)
    columns = int(columns or int(np.ceil(np.sqrt(n))))
    rows = -(-n // columns)
    fig = Figure(figsize=(CELL * columns + 0.2, CELL * rows + 0.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.5 / (CELL * rows + 0.6),
                        wspace=0.06, hspace=0.06)
    params = None if fits is None else np.asarray(fits, dtype=np.float64).reshape(-1, 9)
    quality = None if r2 is None else np.asarray(r2, dtype=np.float64).ravel()
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i >= len(images):
            continue
        image = images[i]
        scale = float(np.nanmax(np.abs(image))) or 1.0
        ax.imshow(image, cmap="gray", vmin=-scale, vmax=scale, interpolation="nearest")
        if params is not None and i < len(params) and np.all(np.isfinite(params[i, :4])):
            x0, y0, sx, sy, theta = params[i, :5]
            ax.add_patch(Ellipse((x0, y0), 2 * sx, 2 * sy, angle=np.degrees(theta), fill=False,
                                 edgecolor=PALETTE[3], linewidth=0.9))
            ax.set_xlim(-0.5, image.shape[1] - 0.5)
            ax.set_ylim(image.shape[0] - 0.5, -0.5)
        if quality is not None and i < len(quality) and np.isfinite(quality[i]):
            color = FIT_COLOR if quality[i] >= threshold else POOR_COLOR
            ax.text(0.03, 0.97, f"{quality[i]:.2f}", transform=ax.transAxes, ha="left",
                    va="top", fontsize=6, color="white",
                    bbox={"boxstyle": "square,pad=0.1", "facecolor": color, "linewidth": 0})
    if not len(images):
        _empty(axes[0], "no fields")
    default = f"Receptive fields ({len(images)} units; gray: 0, white/black: +/- max |w| per field)"
    fig.suptitle(title or default, fontsize="small")
    return fig


def gabor_summary(
    params: Any,
    r2: Any = None,
    threshold: float = WELL_FIT,
    bins: int = 12,
    title: str | None = None,
) -> Figure:
    """Histograms of the fitted orientations and spatial frequencies of well-fit units.

    Parameters
    ----------
    params : array (units, 9)
        :func:`cortexsim.analysis.fit_gabors` parameters (``theta`` column 4,
        ``frequency`` column 5).
    r2 : array (units,), optional
        Only units with ``r2 >= threshold`` are counted; all finite fits without it.
    bins : int
        Orientation bins over [0, 180) degrees.
    """
    p = np.asarray(params, dtype=np.float64).reshape(-1, 9)
    keep = np.all(np.isfinite(p), axis=1)
    if r2 is not None:
        keep &= np.nan_to_num(np.asarray(r2, dtype=np.float64).ravel(), nan=-np.inf) >= threshold
    theta, freq = p[keep, 4], p[keep, 5]
    fig, (ax_o, ax_f) = _figure(2)
    if theta.size:
        spread = orientation_spread(theta)
        ax_o.hist(np.degrees(theta), bins=np.linspace(0, 180, int(bins) + 1), color=PALETTE[0],
                  edgecolor="white")
        ax_o.set_title(f"Orientation (circular variance {spread['circular_variance']:.2f})")
        fs = frequency_spread(freq)
        ax_f.hist(freq, bins=max(5, int(np.sqrt(freq.size)) + 1), color=PALETTE[2],
                  edgecolor="white")
        ax_f.axvline(fs["median"], color="0.3", linestyle="--", linewidth=1)
        ax_f.set_title(f"Frequency (median {fs['median']:.3g}, spread {fs['octaves']:.2f} oct)")
    else:
        _empty(ax_o, "no well-fit unit")
        _empty(ax_f, "no well-fit unit")
    ax_o.set(xlabel="carrier direction theta (deg; stripes at theta + 90)", ylabel="units",
             xlim=(0, 180), xticks=range(0, 181, 45))
    ax_f.set(xlabel="spatial frequency (cycles / pixel)", ylabel="units")
    for ax in (ax_o, ax_f):
        _style(ax)
    if r2 is None:
        what = f"{theta.size} units with a finite fit"
    else:
        share = fraction_well_fit(r2, threshold)
        what = f"{theta.size} of {p.shape[0]} units with R^2 >= {threshold:g} ({share:.0%})"
    _suptitle(fig, title or f"Gabor fits: {what}")
    return fig
