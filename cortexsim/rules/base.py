"""What a learning rule is, and what it declares it can do.

A rule infers activities on a batch and proposes weight updates from what
inference left::

    state = rule.infer(hierarchy, x, y)          # -> State
    grads = rule.gradients(hierarchy, state)     # {(area, parameter): descent direction}

Everything else that runs a rule (the simulator, the recorder, studies,
reports, experiments) reads its ``capabilities``: whether it learns from
labels, how it infers, which quantities its states hold for probes, whether it
has a held-out loss. Nothing asks a rule with ``hasattr``; a rule that lacks
something says so in its declaration.

A rule's run-time state (random generators, counters, fixed feedback matrices)
is explicit: ``state_dict`` / ``load_state_dict`` carry it through checkpoints,
and ``prepare(hierarchy)`` creates the parameters it adds to the areas before
the first batch. Adding a rule is one file with a subclass of ``Rule``, one
``register`` call and its tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from ..errors import ConfigurationError, did_you_mean
from ..inference import Relaxation, State
from ..model.hierarchy import Hierarchy, ParameterKey

__all__ = ["Rule", "Capabilities", "INFERENCE_KINDS", "SETTINGS", "RULES", "register", "make_rule"]

INFERENCE_KINDS = ("sweep", "relaxation", "stochastic")
SETTINGS = ("discriminative", "generative", "variational")

Gradients = dict[ParameterKey, Any]


@dataclass(frozen=True)
class Capabilities:
    """A rule's declaration of what it does.

    Parameters
    ----------
    supervised : bool
        Learns from labels clamped at the top area (discriminative tasks);
        False: models the data alone (generative tasks).
    inference : str
        ``"sweep"`` (one feedforward pass), ``"relaxation"`` (iterative descent
        of the free energy; states carry an energy trace and inference can be
        observed step by step) or ``"stochastic"`` (sampled latents).
    setting : str
        Which path carries the model: ``"discriminative"`` (the recognition
        path maps data to labels; updates of recognition weights compare with
        backprop's), ``"generative"`` (the generative path predicts the data;
        the top area has a prior, no prediction) or ``"variational"`` (an
        encoder/decoder pair with KL and reconstruction terms).
    relaxation_steps : int or None
        The maximum number of relaxation steps (the length of the energy
        trace minus one); None unless ``inference == "relaxation"``.
    relaxation_tolerance : float or None
        The relaxation stops once the energy changes by less than this (states
        carry ``converged`` and the steps taken, and the epoch metrics
        ``converged_fraction`` and ``mean_relaxation_steps``); None when it
        always takes ``relaxation_steps``, and for rules that do not relax.
    held_out_loss : bool
        ``evaluate(hierarchy, x)`` gives the rule's loss on held-out inputs
        (an unsupervised rule's test metric).
    """

    supervised: bool
    inference: str
    setting: str
    relaxation_steps: int | None = None
    relaxation_tolerance: float | None = None
    held_out_loss: bool = False

    def __post_init__(self) -> None:
        if self.inference not in INFERENCE_KINDS:
            raise ValueError(f"inference must be one of {INFERENCE_KINDS}, got {self.inference!r}")
        if self.setting not in SETTINGS:
            raise ValueError(f"setting must be one of {SETTINGS}, got {self.setting!r}")
        if (self.relaxation_steps is None) == (self.inference == "relaxation"):
            raise ValueError("relaxation_steps is given exactly when inference is 'relaxation'")
        if self.relaxation_tolerance is not None and self.inference != "relaxation":
            raise ValueError("relaxation_tolerance is given only when inference is 'relaxation'")

    @property
    def relaxes(self) -> bool:
        """Iterative inference: an energy trace, and steps probes can record inside."""
        return self.inference == "relaxation"

    @property
    def energy_metric(self) -> bool:
        """States carry an energy: the relaxed free energy, or the variational objective."""
        return self.relaxes or self.setting == "variational"

    @property
    def predicts_data(self) -> bool:
        """The generative path predicts area 0 (and the top area has a prior instead)."""
        return self.setting in ("generative", "variational")


class Rule:
    """Base of every learning rule: inference, then the update it proposes.

    Subclasses set ``name`` and implement ``capabilities``, ``learned_parameters``,
    ``infer`` and ``gradients``; those with run-time state override
    ``state_dict``/``load_state_dict``, those that add parameters ``prepare``,
    those that declare ``held_out_loss`` ``evaluate``.
    """

    name: ClassVar[str] = ""

    @property
    def capabilities(self) -> Capabilities:
        """What this rule (with these settings) can do."""
        raise NotImplementedError

    @property
    def supervised(self) -> bool:
        """Whether the rule learns from labels (``capabilities.supervised``)."""
        return self.capabilities.supervised

    def prepare(self, hierarchy: Hierarchy) -> None:
        """Create what the rule adds to ``hierarchy`` before the first batch (default: nothing)."""

    def learned_parameters(self, hierarchy: Hierarchy) -> list[ParameterKey]:
        """The (area, parameter) keys ``gradients`` returns."""
        raise NotImplementedError

    def infer(self, hierarchy: Hierarchy, x: Any, y: Any = None, observe: Any = None) -> State:
        """Inference on one batch; ``observe(t, snapshot)`` sees every relaxation step."""
        raise NotImplementedError

    def gradients(self, hierarchy: Hierarchy, state: State) -> Gradients:
        """Descent directions of the learned parameters from ``state``."""
        raise NotImplementedError

    def evaluate(self, hierarchy: Hierarchy, x: Any) -> float:
        """The rule's loss on held-out inputs ``x`` (rules declaring ``held_out_loss``)."""
        raise ConfigurationError(f"rule {self.name!r} has no held-out loss of its own")

    def state_dict(self) -> dict[str, Any]:
        """Run-time state as JSON-able data (default: none)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()`` (default: nothing to restore)."""


RULES: dict[str, type[Rule]] = {}

R = TypeVar("R", bound=type[Rule])


def register(name: str) -> Callable[[R], R]:
    """Class decorator: make a rule available to study files as ``rule = name``."""

    def add(cls: R) -> R:
        if not (isinstance(cls, type) and issubclass(cls, Rule)):
            raise TypeError(f"{cls!r} is not a subclass of cortexsim.rules.Rule")
        if name in RULES and RULES[name] is not cls:
            raise ConfigurationError(f"rule: the name {name!r} is taken by {RULES[name].__name__}")
        RULES[name] = cls
        return cls

    return add


def make_rule(name: str, **settings: Any) -> Rule:
    """Construct a rule by its registered name with keyword settings; an
    ``inference`` table (as a study file writes it) becomes a ``Relaxation``."""
    if isinstance(settings.get("inference"), Mapping):
        settings["inference"] = Relaxation(**settings["inference"])
    if name not in RULES:
        raise ConfigurationError(
            f"rule: unknown rule {name!r}; allowed: {', '.join(RULES)}{did_you_mean(name, RULES)}"
        )
    return RULES[name](**settings)
