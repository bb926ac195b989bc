"""Recurrent cells of recurrent areas: the LSTM (Hochreiter & Schmidhuber 1997,
with the forget gate of Gers et al. 2000, no peepholes) and the GRU (Cho et al.
2014, with the reset gate applied after the recurrent product, as cuDNN does),
each one forward step and its explicit backward step (backpropagation through
time is these steps run in reverse; no autodiff).

A cell of ``n`` units takes two pre-activations per step, ``ax = input @ W + b``
and ``ah = h_{t-1} @ U`` (rows, G n) with the gates side by side
(``G = 4`` for the LSTM: ``i, f, g, o``; ``G = 3`` for the GRU: ``z, r, n``)::

    LSTM   a = ax + ah,  i = s(a_i), f = s(a_f), g = tanh(a_g), o = s(a_o)
           c_t = f c_{t-1} + i g,   h_t = o tanh(c_t)
    GRU    z = s(ax_z + ah_z), r = s(ax_r + ah_r), n = tanh(ax_n + r ah_n)
           h_t = (1 - z) n + z h_{t-1}

``s`` is the logistic sigmoid. The LSTM's state is ``(h, c)``; the GRU's ``(h, None)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError, did_you_mean

__all__ = ["CELLS", "Cell", "get_cell"]

CELLS = ("lstm", "gru")


def _sigmoid(xp: Any, a: Any) -> Any:
    return 0.5 * (1.0 + xp.tanh(0.5 * a))  # no overflow for large |a|


def _split(a: Any, n: int, gates: int) -> list[Any]:
    return [a[:, j * n:(j + 1) * n] for j in range(gates)]


@dataclass(frozen=True)
class Cell:
    """One kind of recurrent cell: ``step`` forward and ``back`` through one step."""

    name: str

    @property
    def gates(self) -> int:
        """Blocks of ``n`` columns in the pre-activations (LSTM 4, GRU 3)."""
        return 4 if self.name == "lstm" else 3

    def step(self, xp: Any, ax: Any, ah: Any, h: Any, c: Any) -> tuple[Any, Any, dict[str, Any]]:
        """One step from state ``(h, c)`` (rows, n) (``c`` None for the GRU).

        Parameters
        ----------
        ax, ah : arrays (rows, G n)
            The input and recurrent pre-activations.

        Returns
        -------
        h_t, c_t : arrays (rows, n) (``c_t`` None for the GRU)
        cache : dict
            What ``back`` needs.
        """
        n = h.shape[1]
        if self.name == "lstm":
            a_i, a_f, a_g, a_o = _split(ax + ah, n, 4)
            i, f, o = _sigmoid(xp, a_i), _sigmoid(xp, a_f), _sigmoid(xp, a_o)
            g = xp.tanh(a_g)
            c_t = f * c + i * g
            tc = xp.tanh(c_t)
            return o * tc, c_t, {"i": i, "f": f, "g": g, "o": o, "tc": tc, "c": c}
        x_z, x_r, x_n = _split(ax, n, 3)
        h_z, h_r, h_n = _split(ah, n, 3)
        z, r = _sigmoid(xp, x_z + h_z), _sigmoid(xp, x_r + h_r)
        u = xp.tanh(x_n + r * h_n)
        return (1.0 - z) * u + z * h, None, {"z": z, "r": r, "u": u, "h_n": h_n, "h": h}

    def back(self, xp: Any, cache: dict[str, Any], g_h: Any, g_c: Any) -> tuple[Any, Any, Any, Any]:
        """Backward through one step.

        Parameters
        ----------
        g_h : array (rows, n)
            Loss gradient at ``h_t`` (from its every use).
        g_c : array (rows, n) or None
            Loss gradient at the LSTM's ``c_t`` from the next step (None: zero).

        Returns
        -------
        g_ax, g_ah : arrays (rows, G n)
            Gradients at the two pre-activations (the same array for the LSTM).
        g_h_direct : array (rows, n) or None
            The part of the gradient at ``h_{t-1}`` that bypasses ``ah`` (the
            GRU's ``z h_{t-1}``); the caller adds ``g_ah @ U^T``.
        g_c_prev : array (rows, n) or None
            Gradient at ``c_{t-1}`` (LSTM).
        """
        if self.name == "lstm":
            i, f, g, o, tc = cache["i"], cache["f"], cache["g"], cache["o"], cache["tc"]
            g_ct = g_h * o * (1.0 - tc * tc)
            if g_c is not None:
                g_ct = g_ct + g_c
            da = xp.concat([g_ct * g * i * (1.0 - i), g_ct * cache["c"] * f * (1.0 - f),
                            g_ct * i * (1.0 - g * g), g_h * tc * o * (1.0 - o)], axis=1)
            return da, da, None, g_ct * f
        z, r, u, h_n = cache["z"], cache["r"], cache["u"], cache["h_n"]
        g_an = g_h * (1.0 - z) * (1.0 - u * u)
        g_az = g_h * (cache["h"] - u) * z * (1.0 - z)
        g_ar = g_an * h_n * r * (1.0 - r)
        g_ax = xp.concat([g_az, g_ar, g_an], axis=1)
        g_ah = xp.concat([g_az, g_ar, g_an * r], axis=1)
        return g_ax, g_ah, g_h * z, None


def get_cell(name: str, where: str = "cell") -> Cell:
    """The cell called ``name``; ``ConfigurationError`` naming ``where`` otherwise."""
    if name not in CELLS:
        raise ConfigurationError(
            f"{where}: unknown cell {name!r}; allowed: {', '.join(CELLS)}{did_you_mean(str(name), CELLS)}"
        )
    return Cell(name)
