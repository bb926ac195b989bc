"""DRAW's selective attention: a grid of ``N x N`` Gaussian filters placed on
the image by five numbers the decoder state emits (Gregor, Danihelka, Graves,
Rezende & Wierstra 2015, "DRAW: a recurrent neural network for image
generation", ICML, arXiv:1502.04623, section 3.2, eqs. 19-29), forward and
backward as explicit steps.

For an image of ``B`` rows and ``A`` columns (stored row-major, ``(rows, B A)``)
and attention parameters ``(g~X, g~Y, log s^2, log d~, log gamma) = h W + b``::

    gX = (A + 1)/2 (g~X + 1),  gY = (B + 1)/2 (g~Y + 1),  d = (max(A, B) - 1)/(N - 1) d~
    mu^X_i = gX + (i - N/2 - 1/2) d,   mu^Y_j = gY + (j - N/2 - 1/2) d       i, j = 1 .. N
    F_X[i, a] = exp(-(a - mu^X_i)^2 / 2 s^2) / Z_X_i      a = 1 .. A   (rows of F sum to 1)
    read(x, x^) = gamma [F_Y x F_X^T, F_Y x^ F_X^T]       (2 N^2 values)
    write(w)    = (1 / gamma) F_Y^T w F_X                 (w: the N x N patch)

``Z`` gets a tiny constant so that a grid far off the image divides by no zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Glimpse", "filterbank", "filterbank_back", "read", "read_back", "write", "write_back"]

_TINY = 1e-8


class Glimpse:
    """The filterbanks of one attention step and what their backward step needs."""

    def __init__(self, **arrays: Any) -> None:
        self.__dict__.update(arrays)


def _axis(be: Any, params_x: Any, params_delta: Any, size: int, n: int, log_s2: Any,
          stride: float) -> tuple[Any, Any]:
    """Filterbank ``F`` (rows, n, size) along one image axis and the distances ``a - mu_i``."""
    xp = be.xp
    offsets = be.asarray(np.arange(1, n + 1) - n / 2 - 0.5)
    grid = be.asarray(np.arange(1, size + 1, dtype=np.float64))
    centre = (size + 1) / 2 * (params_x + 1.0)
    delta = stride * xp.exp(params_delta)
    mu = xp.reshape(centre, (-1, 1)) + offsets * xp.reshape(delta, (-1, 1))
    dist = grid - xp.reshape(mu, (mu.shape[0], n, 1))
    e = xp.exp(-dist * dist * xp.reshape(0.5 * xp.exp(-log_s2), (-1, 1, 1)))
    z = xp.sum(e, axis=2, keepdims=True) + _TINY
    return e / z, dist


def filterbank(be: Any, params: Any, side: tuple[int, int], n: int) -> Glimpse:
    """Filterbanks ``F_X`` (rows, N, A), ``F_Y`` (rows, N, B) and intensity ``gamma`` (rows,).

    Parameters
    ----------
    params : array (rows, 5)
        ``h W + b``: the five attention parameters per row.
    side : (B, A)
        Image rows and columns.
    n : int
        Glimpse size ``N`` (>= 2).
    """
    xp = be.xp
    rows, cols = side
    stride = (max(rows, cols) - 1) / (n - 1)
    p = [params[:, j] for j in range(5)]
    fx, dx = _axis(be, p[0], p[3], cols, n, p[2], stride)
    fy, dy = _axis(be, p[1], p[3], rows, n, p[2], stride)
    return Glimpse(fx=fx, fy=fy, dx=dx, dy=dy, gamma=xp.exp(p[4]), s2=xp.exp(p[2]),
                   delta=stride * xp.exp(p[3]), side=side, n=n, offsets=be.asarray(np.arange(1, n + 1) - n / 2 - 0.5))


def _axis_back(xp: Any, f: Any, dist: Any, s2: Any, g_f: Any) -> tuple[Any, Any]:
    """Gradients at the centres ``mu`` (rows, N) and at ``s^2`` (rows,) from ``g_f`` at ``F``."""
    # Through the normalisation, g_e = (g_F - sum_a g_F F) / Z; every parameter
    # reaches e = F Z through its exponent, so only g_e e is needed.
    g_ee = (g_f - xp.sum(g_f * f, axis=2, keepdims=True)) * f
    inv = xp.reshape(1.0 / s2, (-1, 1, 1))
    g_mu = xp.sum(g_ee * dist, axis=2) * xp.reshape(1.0 / s2, (-1, 1))
    g_s2 = xp.sum(g_ee * dist * dist * inv * inv * 0.5, axis=(1, 2))
    return g_mu, g_s2


def filterbank_back(xp: Any, gl: Glimpse, g_fx: Any, g_fy: Any, g_gamma: Any) -> Any:
    """Gradient at the five attention parameters (rows, 5) from those at ``F_X``, ``F_Y``, ``gamma``."""
    rows, cols = gl.side
    g_mux, g_s2x = _axis_back(xp, gl.fx, gl.dx, gl.s2, g_fx)
    g_muy, g_s2y = _axis_back(xp, gl.fy, gl.dy, gl.s2, g_fy)
    g_delta = xp.sum((g_mux + g_muy) * gl.offsets, axis=1)
    return xp.stack([xp.sum(g_mux, axis=1) * (cols + 1) / 2, xp.sum(g_muy, axis=1) * (rows + 1) / 2,
                     (g_s2x + g_s2y) * gl.s2, g_delta * gl.delta, g_gamma * gl.gamma], axis=1)


def read(xp: Any, gl: Glimpse, images: list[Any]) -> tuple[Any, list[Any]]:
    """``gamma [F_Y x F_X^T, ...]`` (rows, len(images) N^2) and the unscaled glimpses."""
    rows, cols = gl.side
    glimpses = [gl.fy @ xp.reshape(x, (x.shape[0], rows, cols)) @ xp.matrix_transpose(gl.fx)
                for x in images]
    flat = [xp.reshape(g, (g.shape[0], -1)) for g in glimpses]
    return xp.reshape(gl.gamma, (-1, 1)) * xp.concat(flat, axis=1), glimpses


def read_back(xp: Any, gl: Glimpse, images: list[Any], glimpses: list[Any], g_r: Any,
              need: list[bool]) -> tuple[Any, Any, Any, list[Any]]:
    """Gradients at ``F_X``, ``F_Y``, ``gamma`` and (where ``need``) at each image, from ``g_r``."""
    rows, cols = gl.side
    n2 = gl.n * gl.n
    g_fx = g_fy = 0.0
    g_gamma = 0.0
    g_images = []
    for j, (x, g) in enumerate(zip(images, glimpses)):
        g_flat = g_r[:, j * n2:(j + 1) * n2]
        g_gamma = g_gamma + xp.sum(g_flat * xp.reshape(g, (g.shape[0], -1)), axis=1)
        g_g = xp.reshape(xp.reshape(gl.gamma, (-1, 1)) * g_flat, g.shape)
        x3 = xp.reshape(x, (x.shape[0], rows, cols))
        g_fy = g_fy + g_g @ gl.fx @ xp.matrix_transpose(x3)
        g_fx = g_fx + xp.matrix_transpose(g_g) @ gl.fy @ x3
        g_images.append(xp.reshape(xp.matrix_transpose(gl.fy) @ g_g @ gl.fx, (x.shape[0], -1))
                        if need[j] else None)
    return g_fx, g_fy, g_gamma, g_images


def write(xp: Any, gl: Glimpse, patch: Any) -> Any:
    """``(1 / gamma) F_Y^T w F_X`` (rows, B A) for patches ``w`` (rows, N^2)."""
    w = xp.reshape(patch, (patch.shape[0], gl.n, gl.n))
    out = xp.matrix_transpose(gl.fy) @ w @ gl.fx
    return xp.reshape(out, (out.shape[0], -1)) / xp.reshape(gl.gamma, (-1, 1))


def write_back(xp: Any, gl: Glimpse, patch: Any, out: Any, g_out: Any) -> tuple[Any, Any, Any, Any]:
    """Gradients at the patch (rows, N^2), ``F_X``, ``F_Y`` and ``gamma`` from ``g_out`` (rows, B A)."""
    rows, cols = gl.side
    inv = xp.reshape(1.0 / gl.gamma, (-1, 1, 1))
    g_o = xp.reshape(g_out, (g_out.shape[0], rows, cols)) * inv
    w = xp.reshape(patch, (patch.shape[0], gl.n, gl.n))
    g_m = gl.fy @ g_o                                      # M = w F_X, out = F_Y^T M / gamma
    g_fy = w @ gl.fx @ xp.matrix_transpose(g_o)
    g_w = g_m @ xp.matrix_transpose(gl.fx)
    g_fx = xp.matrix_transpose(w) @ g_m
    g_gamma = -xp.sum(g_out * out, axis=1) / gl.gamma
    return xp.reshape(g_w, (g_w.shape[0], -1)), g_fx, g_fy, g_gamma
