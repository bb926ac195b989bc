"""The local learning step every rule shares: presynaptic activity times
postsynaptic error, averaged over the batch.

For a weight ``W`` (n_pre, n_post) driven by ``a = pre @ W + b`` and an error
``e = -dF/da`` (batch, n_post), ``dF/dW = -(1/B) pre^T e`` and
``dF/db = -(1/B) sum_b e``. Rules return these descent directions; an
optimizer subtracts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..model.hierarchy import Hierarchy, ParameterKey

__all__ = ["hebbian_gradients", "Gradients"]

Gradients = dict[ParameterKey, Any]


def hebbian_gradients(
    hierarchy: Hierarchy,
    presynaptic: Sequence[Any],
    errors: Sequence[Any],
    weights: tuple[str, str] = ("W_ff", "b_ff"),
    tag: str = "grad",
) -> Gradients:
    """Gradients of area ``l``'s weights from ``presynaptic[l]`` and ``errors[l]``.

    Parameters
    ----------
    hierarchy : Hierarchy
        Owner of the weights and of the scratch buffers the results live in.
    presynaptic, errors : sequences of arrays (batch, n_pre) and (batch, n_post)
        Indexed by area; entries that are None (area 0) are skipped.
    weights : (str, str)
        Which weight and bias the product updates: ``("W_ff", "b_ff")`` or
        ``("W_fb", "b_fb")``.
    tag : str
        Buffer name, so that two rules' gradients can coexist.
    """
    be = hierarchy.backend
    xp = be.xp
    grads: Gradients = {}
    for l, (pre, err) in enumerate(zip(presynaptic, errors)):
        if err is None:
            continue
        area = hierarchy.areas[l]
        weight, bias = weights
        scaled = hierarchy.buffer(f"{tag}.e", l, tuple(err.shape))
        be.multiply(err, -1.0 / err.shape[0], out=scaled)
        shape = tuple(getattr(area, weight).shape)
        grads[(area.name, weight)] = be.matmul(
            xp.matrix_transpose(pre), scaled, out=hierarchy.buffer(f"{tag}.{weight}", l, shape)
        )
        grads[(area.name, bias)] = xp.sum(scaled, axis=0)
    return grads
