"""Amortized inference: one feedforward sweep through the recognition weights,
``h[l] = f_l(h[l-1] @ W_ff[l] + b_ff[l])``."""

from __future__ import annotations

from typing import Any

from ..model.hierarchy import Hierarchy
from .state import Sweep

__all__ = ["feedforward"]


def feedforward(hierarchy: Hierarchy, x: Any) -> Sweep:
    """Run the recognition path bottom-up.

    Parameters
    ----------
    hierarchy : Hierarchy
        The model; its parameters are read, not changed.
    x : array (batch, n_0)
        Data on the hierarchy's backend.

    Returns
    -------
    Sweep
        Pre-activations and activities of every area, in the hierarchy's
        scratch buffers (valid until the next sweep).
    """
    be = hierarchy.backend
    batch = x.shape[0]
    a: list[Any] = [None]
    h: list[Any] = [x]
    for area in hierarchy.areas[1:]:
        shape = (batch, area.size)
        pre = be.matmul(h[-1], area.W_ff, out=hierarchy.buffer("ff.a", area.index, shape))
        pre += area.b_ff
        a.append(pre)
        h.append(area.activation.apply(be, pre, hierarchy.buffer("ff.h", area.index, shape)))
    return Sweep(a=a, h=h)
