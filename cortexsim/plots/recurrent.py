"""Figures of a recurrent VAE (DRAW, conceptual compression): the canvas over
the steps, reconstructions from the first k steps' latents, and what each step
costs and buys (KL per step; distortion against rate), for one or several
KL weights.

Every function takes plain arrays and returns a ``matplotlib.figure.Figure``
built without pyplot, saved with :func:`cortexsim.plots.common.save`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .common import _figure, _legend, _style, _suptitle, rule_colors
from .generative import _image_figure, _images, _mosaic, _show

__all__ = ["canvas_over_steps", "distortion_rate", "kl_per_step"]


def canvas_over_steps(images: Any, shape: Sequence[int], column_labels: Sequence[str] | None = None,
                      title: str | None = None) -> Figure:
    """A grid of images: one row per example, one column per step (or per
    number of posterior steps, for conceptual compression).

    Parameters
    ----------
    images : array (rows, columns, H * W) or (rows, columns, H, W)
        Grey levels in 0..1 (the canvas through the likelihood's mean).
    shape : (H, W)
        Image shape.
    column_labels : list of str, optional
        Written above the columns.
    """
    x = _images("images", images, shape, 2)
    rows, cols, h, w = x.shape
    fig, ax = _image_figure(rows, cols, h, w)
    _show(ax, _mosaic(x), x[np.isfinite(x)])
    if column_labels is not None:
        ax.set_xticks([c * (w + 1) + (w - 1) / 2 for c in range(cols)])
        ax.set_xticklabels(list(column_labels), fontsize="x-small")
        ax.xaxis.set_ticks_position("top")
        ax.tick_params(length=0)
    _suptitle(fig, title or "Canvas over the steps")
    return fig


def kl_per_step(kl: Mapping[str, Any], title: str | None = None) -> Figure:
    """The KL term of each step (nats per image), one line per model.

    Parameters
    ----------
    kl : mapping of label to array (steps,)
    """
    fig, (ax,) = _figure(1)
    colors = rule_colors(list(kl))
    for label, values in kl.items():
        values = np.asarray(values, dtype=np.float64)
        ax.plot(np.arange(1, values.size + 1), values, marker="o", color=colors[label], label=label)
    ax.set_xlabel("step t")
    ax.set_ylabel("KL(q(z_t) || p(z_t)) (nats per image)")
    _style(ax)
    _legend(ax)
    _suptitle(fig, title or "Information sent at each step")
    return fig


def distortion_rate(curves: Mapping[str, tuple[Any, Any]], title: str | None = None) -> Figure:
    """Distortion against rate as more steps' latents come from the posterior.

    Parameters
    ----------
    curves : mapping of label to (rate, distortion), arrays (steps + 1,)
        ``rate[k]``: the KL of the first ``k`` steps (nats per image);
        ``distortion[k]``: ``-log p(x | canvas)`` with the later steps drawn from the prior.
    """
    fig, (ax,) = _figure(1)
    colors = rule_colors(list(curves))
    for label, (rate, distortion) in curves.items():
        rate, distortion = np.asarray(rate, dtype=np.float64), np.asarray(distortion, dtype=np.float64)
        ax.plot(rate, distortion, marker="o", color=colors[label], label=label)
        for k in (0, len(rate) - 1):
            ax.annotate(f"k={k}", (rate[k], distortion[k]), fontsize="x-small",
                        xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("rate: KL of the first k steps (nats per image)")
    ax.set_ylabel("distortion: -log p(x | canvas) (nats)")
    _style(ax)
    _legend(ax)
    _suptitle(fig, title or "Distortion against rate (conceptual compression)")
    return fig
