"""Hierarchical inference: the feedforward (amortized) sweep, iterative
predictive-coding relaxation in discriminative or generative mode, and
stochastic (variational) areas with importance-weighted likelihood estimates
and iteratively refined posteriors."""

from .amortized import feedforward
from .predictive_coding import Relaxation, relax_discriminative, relax_generative
from .state import State, Sweep
from .workspace import Workspace
from .importance import log_likelihood_estimate
from .refine import Refinement, refine, refined_bounds

__all__ = ["feedforward", "Relaxation", "relax_discriminative", "relax_generative", "State", "Sweep",
           "Workspace", "log_likelihood_estimate", "Refinement", "refine", "refined_bounds"]
