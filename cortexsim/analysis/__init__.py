"""Analysis of recorded runs: plain functions on NumPy arrays, no plotting."""

from .convergence import (
    convergence_summary,
    final_energy,
    monotonic_fraction,
    relative_change,
    steps_to_tolerance,
)
from .decoding import DecodingScore, chance_level, decode, decode_areas
from .disentanglement import (
    DCIResult,
    active_units,
    beta_vae_score,
    dci,
    discretize,
    kl_per_unit,
    mig,
    mutual_information,
)
from .gabor import (
    GABOR_PARAMS,
    GaborParams,
    fit_gabor,
    fit_gabors,
    fraction_well_fit,
    frequency_spread,
    gabor2d,
    orientation_spread,
    stripe_orientation,
)
from .learning_curves import best_epoch, mean_and_interval, mean_and_sd, stack_curves, summary_table
from .receptive_fields import fields_from_weights, ridge_fields, spike_triggered_average
from .rsa import compare_all, compare_rdms, rdm, rdms
from .sparseness import lifetime_sparseness, population_sparseness, treves_rolls
from .tuning import (
    TuningCurves,
    orientation_selectivity,
    preferred_angle,
    preferred_value,
    tuning_curves,
)

__all__ = [
    "GABOR_PARAMS",
    "DCIResult",
    "DecodingScore",
    "GaborParams",
    "TuningCurves",
    "active_units",
    "best_epoch",
    "beta_vae_score",
    "chance_level",
    "compare_all",
    "compare_rdms",
    "convergence_summary",
    "dci",
    "decode",
    "decode_areas",
    "discretize",
    "fields_from_weights",
    "final_energy",
    "fit_gabor",
    "fit_gabors",
    "fraction_well_fit",
    "frequency_spread",
    "gabor2d",
    "kl_per_unit",
    "lifetime_sparseness",
    "mean_and_interval",
    "mean_and_sd",
    "mig",
    "monotonic_fraction",
    "mutual_information",
    "orientation_selectivity",
    "orientation_spread",
    "stripe_orientation",
    "population_sparseness",
    "preferred_angle",
    "preferred_value",
    "rdm",
    "rdms",
    "relative_change",
    "ridge_fields",
    "spike_triggered_average",
    "stack_curves",
    "steps_to_tolerance",
    "summary_table",
    "treves_rolls",
    "tuning_curves",
]
