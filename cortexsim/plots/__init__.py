"""Figures from recordings and analyses, one module per kind of study.

Every function takes plain arrays, returns a ``matplotlib.figure.Figure`` built
without pyplot, and leaves saving to :func:`save`. Colors come from
:func:`rule_colors`, so one rule label keeps one color in every figure.
"""

from .common import PALETTE, rule_colors, save
from .training import alignment, early_late_epochs, energy, learning_curves

__all__ = ["alignment", "early_late_epochs", "energy", "learning_curves", "rule_colors", "save"]
