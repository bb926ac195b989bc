"""What inference leaves behind for a learning rule to read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Sweep", "State"]


@dataclass
class Sweep:
    """A feedforward (amortized) pass through the recognition weights.

    ``a[l]`` is the pre-activation ``h[l-1] @ W_ff[l] + b_ff[l]`` and ``h[l]``
    the activity ``f_l(a[l])``, each (batch, n_l); ``a[0]`` is None and
    ``h[0]`` is the input.
    """

    a: list[Any]
    h: list[Any]

    @property
    def output(self) -> Any:
        """The top area's activity (the network's prediction)."""
        return self.h[-1]


@dataclass
class State:
    """The result of inference on one batch.

    Attributes
    ----------
    mode : str
        ``"feedforward"``, ``"discriminative"``, ``"generative"`` (or a rule's
        own: ``"wake_sleep"``, ``"target"``, ``"variational"``).
    sweep : Sweep
        The feedforward pass (the starting point, and what backprop uses).
    mu : list of arrays
        Activities per area after inference, (batch, n_l); ``mu[0]`` is the data.
    eps : list of arrays or None
        Precision-weighted prediction errors per area after inference.
    presynaptic : list of arrays
        ``presynaptic[l]`` (batch, n) is the activity that multiplies the error
        ``errors[l]`` in the local update of area ``l``'s learned weights.
    errors : list of arrays
        ``errors[l]`` (batch, n): the error each learned weight of area ``l``
        follows (``-dF/da_l`` in discriminative mode, the prediction error of
        the area below in generative mode); ``errors[0]`` is None.
    energy : array or None
        Free energy per sample (mean over the batch) at every evaluated step,
        starting at the initial state: (steps + 1,).
    steps : int
        Relaxation steps taken.
    converged : bool or None
        Whether the energy change fell below the tolerance (None without one).
    evaluations : int or None
        Energy-gradient evaluations made; None where it equals ``steps``
        (Euler). The Heun and adaptive solvers (``solvers.py``) make more
        than one per step.
    predictions : list of arrays or None
        Discriminative mode: each area's prediction from the area below at
        the final step (``predictions[0]`` is None).
    target : array or None
        The clamped target of the top area (discriminative settings).
    producer : object or None
        The rule object whose ``infer`` made this state; a rule reuses the
        errors of its own states and recomputes them for anyone else's.
    loss : array or None
        The loss of the feedforward sweep against the target (mean over the
        batch), where a target was given: the network's own loss on the batch,
        comparable across rules. Unsupervised rules report their own loss
        (the negative ELBO of ``rules/elbo.py``).
    reconstruction : array or None
        Variational mode: ``-log p(x | z)`` per datum (0-d).
    kl : list or None
        Variational mode: per area, the KL term per datum (0-d; None on
        deterministic areas and the data).
    kl_units : list or None
        Variational mode: per area, the KL term per latent unit (n_l,), mean over rows.
    variational : dict or None
        Variational mode: what the rule's ``gradients`` needs (the forward
        pass of ``inference/variational.py``, row weights, KL weight).
    """

    mode: str
    sweep: Sweep
    mu: list[Any]
    presynaptic: list[Any]
    errors: list[Any]
    eps: list[Any] | None = None
    energy: Any = None
    steps: int = 0
    converged: bool | None = None
    evaluations: int | None = None
    predictions: list[Any] | None = None
    target: Any = None
    producer: Any = None
    loss: Any = None
    reconstruction: Any = None
    kl: list[Any] | None = None
    kl_units: list[Any] | None = None
    variational: dict[str, Any] | None = None
