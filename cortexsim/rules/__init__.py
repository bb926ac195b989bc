"""Learning rules. Each rule has ``infer(hierarchy, x, y) -> State`` and
``gradients(hierarchy, state) -> {(area, parameter): array}``: the descent
direction it prescribes, returned before any optimizer applies it, so that two
rules can be compared on the same batch and state."""

from __future__ import annotations

from typing import Any, Protocol

from ..errors import ConfigurationError, did_you_mean
from ..hierarchy import Hierarchy
from ..inference import State
from .backprop import Backprop
from .feedback_alignment import DirectFeedbackAlignment, FeedbackAlignment
from .local import Gradients, hebbian_gradients
from .predictive_coding import PredictiveCoding
from .ddtp import DDTPLinear
from .target_prop import DifferenceTargetProp, TargetProp
from .wake_sleep import WakeSleep
from .elbo import ELBO
from .reweighted_wake_sleep import ReweightedWakeSleep

__all__ = ["Rule", "Backprop", "PredictiveCoding", "FeedbackAlignment", "DirectFeedbackAlignment",
           "TargetProp", "DifferenceTargetProp", "DDTPLinear", "WakeSleep", "ELBO", "ReweightedWakeSleep", "RULES", "make_rule", "Gradients", "hebbian_gradients"]


class Rule(Protocol):
    """What the scheduler needs of a learning rule."""

    name: str

    def learned_parameters(self, hierarchy: Hierarchy) -> list[tuple[str, str]]: ...

    def infer(self, hierarchy: Hierarchy, x: Any, y: Any, observe: Any = None) -> State: ...

    def gradients(self, hierarchy: Hierarchy, state: State) -> Gradients: ...


RULES = {
    "backprop": Backprop,
    "predictive_coding": PredictiveCoding,
    "feedback_alignment": FeedbackAlignment,
    "direct_feedback_alignment": DirectFeedbackAlignment,
    "target_prop": TargetProp,
    "difference_target_prop": DifferenceTargetProp,
    "ddtp_linear": DDTPLinear,
    "wake_sleep": WakeSleep,
    "elbo": ELBO,
    "reweighted_wake_sleep": ReweightedWakeSleep,
}


def make_rule(name: str, **settings: Any) -> Rule:
    """Construct a rule by its name with keyword settings."""
    if name not in RULES:
        raise ConfigurationError(
            f"rule: unknown rule {name!r}; allowed: {', '.join(RULES)}{did_you_mean(name, RULES)}"
        )
    return RULES[name](**settings)
