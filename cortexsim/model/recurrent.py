"""The parameters of a recurrent area and of the area above it: their names,
shapes and where they start (docs/math.md, "Recurrent areas").

A recurrent area ``l`` of ``n`` units with a ``cell`` of ``G`` gates over an
area of ``n_0`` pixels carries an encoder cell (its recognition path) and a
decoder cell (its generative path)::

    W_ff (R + n, G n), b_ff (G n,)   encoder input weights: the read vector r_t (R
                                     values) and the decoder state h^dec_{t-1}
    U_ff (n, G n)                    encoder recurrent weights
    U_fb (n, G n)                    decoder recurrent weights
    W_fb (n, P), b_fb (P,)           the write: the decoder state's change of the canvas
    W_read, b_read (n, 5), (5,)      with read = N: attention parameters of the glimpse
    W_write, b_write (n, 5), (5,)    with write = N: those of the written patch

with ``R = 2 n_0`` (the image and its error) or ``2 N^2`` with a read glimpse,
and ``P = n_0`` or ``N^2`` with a write patch. The stochastic area above it
keeps its posterior heads ``W_ff`` (n, n_z) and ``W_ff_logvar``; its generative
weights ``W_fb`` (n_z, G n), ``b_fb`` (G n,) drive the decoder cell.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .cells import get_cell
from .spec import AreaSpec

__all__ = ["ATTENTION_PARAMETERS", "recurrent_shapes", "above_recurrent_shapes"]

ATTENTION_PARAMETERS = 5  # centre x, centre y, log variance, log stride, log intensity


def recurrent_shapes(area: AreaSpec, below: int) -> dict[str, tuple[int, ...]]:
    """Shapes of a recurrent area's parameters, in ``parameters()`` order."""
    n, gates = area.size, get_cell(area.cell).gates * area.size
    read = 2 * (area.read ** 2 if area.read else below)
    write = area.write ** 2 if area.write else below
    shapes = {"W_ff": (read + n, gates), "b_ff": (gates,), "W_fb": (n, write), "b_fb": (write,),
              "U_ff": (n, gates), "U_fb": (n, gates)}
    if area.read:
        shapes.update(W_read=(n, ATTENTION_PARAMETERS), b_read=(ATTENTION_PARAMETERS,))
    if area.write:
        shapes.update(W_write=(n, ATTENTION_PARAMETERS), b_write=(ATTENTION_PARAMETERS,))
    return shapes


def above_recurrent_shapes(size: int, recurrent: AreaSpec) -> dict[str, tuple[int, ...]]:
    """Shapes of the generative weights of the area above a recurrent one (the decoder's input)."""
    gates = get_cell(recurrent.cell).gates * recurrent.size
    return {"W_fb": (size, gates), "b_fb": (gates,)}


def initial_recurrent(shapes: dict[str, tuple[int, ...]],
                      draw: Callable[[int, int], np.ndarray]) -> dict[str, np.ndarray]:
    """Starting values: matrices drawn by ``draw(fan_in, fan_out)``, biases at
    zero, and the attention heads at zero (every glimpse starts centred, its
    grid spanning the image, at unit variance and intensity)."""
    values = {}
    for name, shape in shapes.items():
        if len(shape) == 1 or name in ("W_read", "W_write"):
            values[name] = np.zeros(shape)
        else:
            values[name] = draw(*shape)
    return values
