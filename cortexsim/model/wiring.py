"""Modular wiring: an area made of ``m`` modules, each connected only to its
own block of the area below, optionally all sharing one set of weights.

This is how a row of cortical columns looking at neighbouring parts of the
visual field is written on one area (Rao & Ballard 1999: three level-1
modules on three overlapping image patches, weights shared). With ``m``
modules, an area of ``n`` units over an area of ``k`` units holds block-
diagonal weights: module ``i`` (units ``i n/m .. (i+1) n/m``) sees inputs
``i k/m .. (i+1) k/m``. ``W_fb`` (n, k) and ``W_ff`` (k, n) keep zeros off the
diagonal blocks; with ``shared = true`` every diagonal block (and every block
of the biases) holds the same values.

Structure is kept by projecting each gradient onto the structured matrices
before the optimizer uses it: off-block entries get zero gradient, and a
shared block gets the sum of its copies' gradients (the gradient with respect
to the one shared parameter). SGD, momentum and Adam then keep every copy
identical, since they see identical gradients from identical starting values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["project_gradient", "structure_initial"]


def _blocks(shape: tuple[int, ...], modules: int) -> list[tuple[slice, ...]]:
    """Index of each diagonal block of a matrix (either orientation) or of a vector."""
    if len(shape) == 1:
        step = shape[0] // modules
        return [(slice(i * step, (i + 1) * step),) for i in range(modules)]
    rows, cols = shape[0] // modules, shape[1] // modules
    return [(slice(i * rows, (i + 1) * rows), slice(i * cols, (i + 1) * cols)) for i in range(modules)]


def structure_initial(value: np.ndarray, modules: int, shared: bool) -> np.ndarray:
    """A host array with the modular structure imposed (block 0 copied if shared)."""
    out = np.zeros_like(value) if value.ndim == 2 else value.copy()
    blocks = _blocks(value.shape, modules)
    for block in blocks:
        out[block] = value[blocks[0] if shared else block]
    return out


def project_gradient(be: Any, grad: Any, modules: int, shared: bool) -> Any:
    """The gradient projected onto modular (and shared) parameters, on the backend."""
    blocks = _blocks(tuple(grad.shape), modules)
    if grad.ndim == 1 and not shared:
        return grad  # a bias belongs to its own module already
    parts = [grad[block] for block in blocks]
    out = be.xp.zeros_like(grad)  # a new array: the rule's gradient is left as it was
    if shared:
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        parts = [total] * modules
    else:
        parts = [be.xp.asarray(part, copy=True) for part in parts]
    for block, part in zip(blocks, parts):
        out[block] = part
    return out
