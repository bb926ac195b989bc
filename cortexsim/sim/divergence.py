"""Detecting NaN and Inf, and naming where they appeared.

Detection is cheap: the batch's loss and final energy are finite only if
every activity and weight that produced them is, so one number crosses to the
host per check. Only after a failed check are the areas searched, to name the
first area and quantity that holds a non-finite value.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import DivergenceError
from ..model.hierarchy import Hierarchy
from ..inference import State

__all__ = ["check_finite", "check_parameters"]


def _first_bad(hierarchy: Hierarchy, state: State | None) -> tuple[str, str] | None:
    be = hierarchy.backend
    xp = be.xp
    for l, area in enumerate(hierarchy.areas):
        named: list[tuple[str, Any]] = []
        if state is not None:
            named += [("activities", state.mu[l])]
            if state.eps is not None and l < len(state.eps):
                named.append(("prediction errors", state.eps[l]))
        named += list(area.parameters().items())
        for quantity, array in named:
            if array is not None and not bool(be.to_numpy(xp.all(xp.isfinite(array)))):
                return area.name, quantity
    return None


def _raise(where: tuple[str, str] | None, epoch: int, batch: int | None, rule: str) -> None:
    at = f"epoch {epoch + 1}" + ("" if batch is None else f", batch {batch}")
    what = (
        f"area {where[0]!r}: {where[1]} became NaN or Inf"
        if where is not None
        else "the loss or energy became NaN or Inf"
    )
    raise DivergenceError(
        f"{what} in {at} (rule {rule!r}); lower the learning rate or the inference "
        f"step size, or resume from the last checkpoint with other settings"
    )


def check_finite(hierarchy: Hierarchy, state: State, epoch: int, batch: int, rule: str) -> None:
    """Raise ``DivergenceError`` naming area, quantity, epoch and batch if the
    batch's loss or energy is not finite."""
    be = hierarchy.backend
    summary: Any = 0.0
    if state.loss is not None:
        summary = summary + state.loss
    if state.energy is not None:
        summary = summary + state.energy[-1]
    if isinstance(summary, float) or math.isfinite(be.scalar(summary)):
        return
    _raise(_first_bad(hierarchy, state), epoch, batch, rule)


def check_parameters(hierarchy: Hierarchy, epoch: int, rule: str) -> None:
    """Raise ``DivergenceError`` if any weight or bias is not finite."""
    be = hierarchy.backend
    xp = be.xp
    finite: Any = True
    for array in hierarchy.parameters().values():
        finite = finite & xp.all(xp.isfinite(array))
    if bool(be.to_numpy(xp.asarray(finite))):
        return
    _raise(_first_bad(hierarchy, None), epoch, None, rule)
