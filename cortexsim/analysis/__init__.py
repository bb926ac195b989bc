"""Analysis of recorded runs: plain functions on NumPy arrays, no plotting."""

from .learning_curves import best_epoch, mean_and_interval, mean_and_sd, stack_curves, summary_table

__all__ = ["mean_and_interval", "mean_and_sd", "best_epoch", "stack_curves", "summary_table"]
