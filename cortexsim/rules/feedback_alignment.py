"""Feedback alignment and direct feedback alignment: backprop's error pass
with the transported weights replaced by fixed random feedback weights.

Forward, as everywhere: ``a_l = h_{l-1} @ W_ff_l + b_ff_l``, ``h_l = f_l(a_l)``;
the output error is ``g_L = -dloss/da_L`` (see ``docs/math.md``).

Feedback alignment (Lillicrap, Cownden, Tweed & Akerman 2016, "Random
synaptic feedback weights support error backpropagation for deep learning",
Nat. Commun. 7:13276) sends the error down one area at a time through the
area's own *fixed* feedback weights ``W_fb_l`` (n_l, n_{l-1}), the shape of
``W_ff_l^T``::

    g_{l-1} = (g_l @ W_fb_l) * f_{l-1}'(a_{l-1})        l = L .. 2

Direct feedback alignment (Nøkland 2016, "Direct feedback alignment provides
learning in deep neural networks", NIPS) sends the output error straight to
every hidden area through a fixed random matrix ``B_l`` (n_L, n_l)::

    g_l = (g_L @ B_l) * f_l'(a_l)                       l = 1 .. L-1

In both, the update is the local product of presynaptic activity and the
error, ``dW_ff_l = -(1/B) h_{l-1}^T g_l`` and ``db_ff_l = -(1/B) sum_b g_l``
(``rules.local.hebbian_gradients``), returned as a descent direction: an
estimate of the loss gradient. With ``W_fb_l = W_ff_l^T`` feedback alignment
is backprop exactly; the top area's update is always backprop's. The
feedback weights are never learned: the forward weights come to *align* with
them, so that the updates of the hidden areas turn towards backprop's during
training (the effect the tests measure).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..model.hierarchy import Hierarchy
from ..inference import State, Sweep, feedforward
from ..model.losses import get_loss
from ..validation import check_int, check_number
from .backprop import backward, hidden_error, output_error
from .base import Capabilities, Rule, register
from .local import Gradients, hebbian_gradients

__all__ = [
    "DirectFeedbackAlignment",
    "FeedbackAlignment",
    "direct_feedback_backward",
    "feedback_alignment_backward",
]


def feedback_alignment_backward(
    hierarchy: Hierarchy, sweep: Sweep, y: Any, loss: Any
) -> tuple[list[Any], Any]:
    """Send the output error of ``sweep`` down through the fixed ``W_fb`` weights.

    Parameters
    ----------
    hierarchy : Hierarchy
        Supplies ``W_fb_l`` (n_l, n_{l-1}) of every area and the scratch buffers.
    sweep : Sweep
        The feedforward pass the errors belong to.
    y : array (batch, n_L)
        Targets of the top area.
    loss : str or Loss
        ``"mse"`` or ``"cross_entropy"``.

    Returns
    -------
    errors : list of arrays
        ``errors[l]`` (batch, n_l), the feedback-alignment estimate of
        ``-dloss_b/da_l``; ``errors[0]`` is None.
    loss_value : 0-d array
        The loss, mean over the batch.
    """
    return backward(hierarchy, sweep, y, loss, feedback=lambda l: hierarchy.areas[l].W_fb, tag="fa")


def direct_feedback_backward(
    hierarchy: Hierarchy, sweep: Sweep, y: Any, loss: Any, matrices: list[Any]
) -> tuple[list[Any], Any]:
    """Send the output error of ``sweep`` straight to every hidden area.

    Parameters
    ----------
    hierarchy, sweep, y, loss
        As in ``feedback_alignment_backward``.
    matrices : list of backend arrays
        ``matrices[l]`` is ``B_l`` (n_L, n_l) for ``1 <= l < L``; the other
        entries are unused.

    Returns
    -------
    errors : list of arrays
        ``errors[l] = (g_L @ B_l) * f_l'(a_l)`` (batch, n_l), ``errors[L] = g_L``;
        ``errors[0]`` is None.
    loss_value : 0-d array
        The loss, mean over the batch.
    """
    loss = get_loss(loss)
    top = len(hierarchy.areas) - 1
    errors: list[Any] = [None] * (top + 1)
    errors[top], value = output_error(hierarchy, sweep, y, loss, "dfa")
    for l in range(1, top):
        errors[l] = hidden_error(hierarchy, sweep, l, errors[top], matrices[l], "dfa")
    return errors, value


class _ErrorPassRule(Rule):
    """Shared plumbing: feedforward sweep + an error pass + Hebbian updates."""

    name = ""

    @property
    def capabilities(self) -> Capabilities:
        """Supervised; one feedforward sweep; updates recognition weights."""
        return Capabilities(supervised=True, inference="sweep", setting="discriminative")
    tag = ""

    def __init__(self, loss: str = "mse") -> None:
        self.loss = get_loss(loss, "rule.loss")
        # The errors list of the last state this rule inferred, held (so its id
        # cannot be reused) to recognise its own states in ``gradients``.

    def _backward(self, hierarchy: Hierarchy, sweep: Sweep, y: Any) -> tuple[list[Any], Any]:
        raise NotImplementedError

    def learned_parameters(self, hierarchy: Hierarchy) -> list[tuple[str, str]]:
        """The (area, parameter) keys this rule returns gradients for: the
        recognition weights and biases; the feedback weights stay fixed."""
        return [(a.name, p) for a in hierarchy.areas[1:] for p in ("W_ff", "b_ff")]

    def infer(self, hierarchy: Hierarchy, x: Any, y: Any, observe: Any = None) -> State:
        """The feedforward sweep and this rule's error pass (there is no
        relaxation for ``observe`` to see).

        Parameters
        ----------
        x : array (batch, n_0)
            Inputs.
        y : array (batch, n_L)
            Targets of the top area (one-hot labels for classification).
        """
        sweep = feedforward(hierarchy, x)
        errors, loss_value = self._backward(hierarchy, sweep, y)
        return State(
            mode="feedforward", sweep=sweep, mu=sweep.h, target=y, loss=loss_value,
            presynaptic=[None] + sweep.h[:-1], errors=errors, producer=self,
        )

    def gradients(self, hierarchy: Hierarchy, state: State) -> Gradients:
        """Descent directions of every recognition weight and bias.

        On a state this rule did not infer (backprop's, predictive coding's,
        ...) the error pass runs again from that state's feedforward sweep and
        target, so the update can be compared with another rule's on the same
        batch and weights.
        """
        if state.producer is self:
            errors = state.errors
        else:
            errors, _ = self._backward(hierarchy, state.sweep, state.target)
        return hebbian_gradients(
            hierarchy, [None] + state.sweep.h[:-1], errors, tag=self.tag
        )


@register("feedback_alignment")
class FeedbackAlignment(_ErrorPassRule):
    """Feedback alignment (Lillicrap et al. 2016): backprop with each area's
    fixed feedback weights ``W_fb`` in place of ``W_ff^T``.

    Parameters
    ----------
    loss : str
        ``"mse"`` or ``"cross_entropy"``.

    Notes
    -----
    The feedback weights are those the hierarchy was built with
    (``HierarchySpec.feedback_init``: ``"random"`` for feedback alignment;
    ``"transpose"`` turns the rule into backprop at the start of training).
    They are never updated by this rule.
    """

    name = "feedback_alignment"
    tag = "fa"

    def _backward(self, hierarchy: Hierarchy, sweep: Sweep, y: Any) -> tuple[list[Any], Any]:
        return feedback_alignment_backward(hierarchy, sweep, y, self.loss)

    def __repr__(self) -> str:
        return f"FeedbackAlignment(loss={self.loss.name!r})"


@register("direct_feedback_alignment")
class DirectFeedbackAlignment(_ErrorPassRule):
    """Direct feedback alignment (Nøkland 2016): the output error reaches every
    hidden area through its own fixed random matrix ``B_l`` (n_L, n_l).

    Parameters
    ----------
    loss : str
        ``"mse"`` or ``"cross_entropy"``.
    seed : int
        Seeds the feedback matrices together with the hierarchy's seed and
        the area index.
    scale : float
        ``B_l`` is uniform on ``[-scale / sqrt(n_L), scale / sqrt(n_L)]``.

    Notes
    -----
    ``B_l`` is drawn on the host from ``numpy.random.default_rng((seed,
    hierarchy.seed, l))`` in float64 and copied to the hierarchy's backend
    once per hierarchy, so every backend uses the same matrices. The uniform
    ``±1/sqrt(fan-in)`` law (the fan-in of the feedback projection is n_L) is
    Torch's ``nn.Linear`` reset, the library of Nøkland's code; we could not
    check his exact setting here, so it is a documented choice. Its overall
    scale only rescales the hidden areas' updates (and is irrelevant under
    Adam, which is invariant to a per-parameter scale).
    """

    name = "direct_feedback_alignment"
    tag = "dfa"

    def __init__(self, loss: str = "mse", seed: int = 0, scale: float = 1.0) -> None:
        super().__init__(loss)
        self.seed = check_int(seed, "rule.seed")
        self.scale = check_number(scale, "rule.scale", positive=True)
        # Run-time state: the fixed B_l of the hierarchy they were drawn for.
        self.matrices: list[Any] | None = None
        self._drawn_for: Hierarchy | None = None

    def feedback_matrices_host(self, hierarchy: Hierarchy) -> list[np.ndarray | None]:
        """Host float64 copies of ``B_l`` (n_L, n_l); entries 0 and L are None."""
        sizes = [area.size for area in hierarchy.areas]
        top = len(sizes) - 1
        limit = self.scale / math.sqrt(sizes[top])
        matrices: list[np.ndarray | None] = [None] * (top + 1)
        for l in range(1, top):
            rng = np.random.default_rng([self.seed, hierarchy.seed, l])
            matrices[l] = rng.uniform(-limit, limit, size=(sizes[top], sizes[l]))
        return matrices

    def prepare(self, hierarchy: Hierarchy) -> None:
        """Draw the fixed ``B_l`` for ``hierarchy`` onto its backend. They are a
        function of the rule's seed and the hierarchy's, so a checkpoint need
        not carry them."""
        be = hierarchy.backend
        self.matrices = [
            None if host is None else be.asarray(host)
            for host in self.feedback_matrices_host(hierarchy)
        ]
        self._drawn_for = hierarchy

    def feedback_matrices(self, hierarchy: Hierarchy) -> list[Any]:
        """``B_l`` on the hierarchy's backend, drawn on first use and kept."""
        if self._drawn_for is not hierarchy:
            self.prepare(hierarchy)
        return self.matrices

    def _backward(self, hierarchy: Hierarchy, sweep: Sweep, y: Any) -> tuple[list[Any], Any]:
        return direct_feedback_backward(
            hierarchy, sweep, y, self.loss, self.feedback_matrices(hierarchy)
        )

    def __repr__(self) -> str:
        return (
            f"DirectFeedbackAlignment(loss={self.loss.name!r}, seed={self.seed}, "
            f"scale={self.scale})"
        )
