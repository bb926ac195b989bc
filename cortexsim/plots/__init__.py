"""Figures from recordings and analyses, one module per kind of study.

Every function takes plain arrays, returns a ``matplotlib.figure.Figure`` built
without pyplot, and leaves saving to :func:`save`. Colors come from
:func:`rule_colors`, so one rule label keeps one color in every figure.
"""

from .common import PALETTE, rule_colors, save
from .generative import (
    disentanglement_vs_beta,
    kl_per_unit,
    latent_traversals,
    reconstructions,
    samples_grid,
)
from .recurrent import canvas_over_steps, distortion_rate, kl_per_step
from .receptive_fields import gabor_summary, receptive_field_grid
from .representations import convergence, decoding_accuracy, rdm_grid, sparseness, tuning_curves
from .training import alignment, early_late_epochs, energy, learning_curves

__all__ = [
    "PALETTE",
    "alignment",
    "canvas_over_steps",
    "convergence",
    "decoding_accuracy",
    "disentanglement_vs_beta",
    "distortion_rate",
    "early_late_epochs",
    "energy",
    "gabor_summary",
    "kl_per_step",
    "kl_per_unit",
    "latent_traversals",
    "learning_curves",
    "rdm_grid",
    "receptive_field_grid",
    "reconstructions",
    "rule_colors",
    "samples_grid",
    "save",
    "sparseness",
    "tuning_curves",
]
