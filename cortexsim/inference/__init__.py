"""Hierarchical inference: the feedforward (amortized) sweep and iterative
predictive-coding relaxation in discriminative or generative mode."""

from .amortized import feedforward
from .predictive_coding import Relaxation, relax_discriminative, relax_generative
from .state import State, Sweep

__all__ = ["feedforward", "Relaxation", "relax_discriminative", "relax_generative", "State", "Sweep"]
