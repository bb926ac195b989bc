"""Learning rules. Each rule is a ``Rule`` (``base.py``): it declares its
``capabilities``, infers a ``State`` on a batch and returns the descent
direction it prescribes, before any optimizer applies it, so that two rules
can be compared on the same batch and state. One file per rule; each
registers its name for study files with ``@register``."""

from .base import RULES, Capabilities, Rule, make_rule, register
from .local import Gradients, hebbian_gradients

# Imported in the order study files list them in errors.
from .backprop import Backprop
from .predictive_coding import PredictiveCoding
from .feedback_alignment import DirectFeedbackAlignment, FeedbackAlignment
from .target_prop import DifferenceTargetProp, TargetProp
from .ddtp import DDTPLinear
from .wake_sleep import WakeSleep
from .elbo import ELBO
from .reweighted_wake_sleep import ReweightedWakeSleep
from .generative_target_prop import GenerativeTargetProp
from .generative_dtp import GenerativeDTP
from .generative_hybrid import GenerativeHybrid
from .draw import RecurrentELBO

__all__ = ["Rule", "Capabilities", "register", "Backprop", "PredictiveCoding", "FeedbackAlignment",
           "DirectFeedbackAlignment", "TargetProp", "DifferenceTargetProp", "DDTPLinear", "WakeSleep",
           "ELBO", "ReweightedWakeSleep", "GenerativeTargetProp",
           "GenerativeDTP", "GenerativeHybrid", "RecurrentELBO", "RULES", "make_rule", "Gradients", "hebbian_gradients"]
