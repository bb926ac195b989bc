"""Report options of generative studies (docs/studies.md, "Generative studies"):
``[outputs] log_likelihood``, ``[outputs] disentanglement`` and ``[outputs]
refinement`` (the amortization gap closed by iterative inference), their defaults
and their validation.

The study file is checked by :func:`report_options` before anything runs (study
plans store the values written, not the defaults); the report
(``report_generative``) fills in the defaults and prints the values it used.
Imports nothing heavy, so validating a study does not load matplotlib.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigurationError
from ..validation import check_int, check_keys, check_number


__all__ = ["DISENTANGLEMENT_DEFAULTS", "LOG_LIKELIHOOD_DEFAULTS", "REFINEMENT_DEFAULTS", "REPORT_OPTIONS",
           "report_options"]

LOG_LIKELIHOOD_DEFAULTS = {"k": 5000, "images": 1000}  # images = 0: the whole test set
DISENTANGLEMENT_DEFAULTS = {"images": 5000, "train_votes": 1000, "test_votes": 500, "pairs": 64}
# the amortization gap closed by iterative inference (inference.refined_bounds)
REFINEMENT_DEFAULTS = {"steps": 100, "step_size": 0.05, "samples": 10, "k": 100, "images": 1000}

# The keys each option accepts and the least value of each (a float: a real number above it).
REPORT_OPTIONS = {
    "log_likelihood": {"k": 1, "images": 0},
    "disentanglement": {"images": 10, "train_votes": 10, "test_votes": 10, "pairs": 1},
    "refinement": {"steps": 0, "step_size": 0.0, "samples": 1, "k": 1, "images": 0},
}


def report_options(outputs: Mapping[str, Any], rules: Sequence[Any], dataset: Any) -> dict[str, Any]:
    """``outputs.log_likelihood`` and ``outputs.disentanglement``: true (defaults),
    false (off) or a table of the keys in ``REPORT_OPTIONS``. ``rules`` are the
    study's rules, each with a ``label``, a ``rule`` name and its declared
    ``capabilities`` (a study plan's ``RunSpec``)."""
    options: dict[str, Any] = {}
    for option, minimums in REPORT_OPTIONS.items():
        if option not in outputs:
            continue
        where = f"outputs.{option}"
        value = outputs[option]
        if isinstance(value, bool):
            if value:
                options[option] = {}
            elif option == "disentanglement":
                options[option] = False
            continue
        check_keys(value, tuple(minimums), where)
        options[option] = {
            key: check_number(value[key], f"{where}.{key}", positive=True)
            if isinstance(minimums[key], float) else check_int(value[key], f"{where}.{key}", minimum=minimums[key])
            for key in value}
    if options.get("disentanglement", False) is not False and dataset != "shapes":
        raise ConfigurationError(
            f"outputs.disentanglement: the scores need ground-truth factors rendered on demand, "
            f"which only data.name = 'shapes' has, not {dataset!r}"
        )
    for option in ("log_likelihood", "refinement"):
        if options.get(option) is None:
            continue
        for i, spec in enumerate(rules):
            if spec.capabilities.setting != "variational":
                raise ConfigurationError(
                    f"outputs.{option}: the {option.replace('_', '-')} of the report needs a "
                    f"variational model on every rule, but rules[{i}] ({spec.label!r}) is "
                    f"{spec.rule!r}; use rule = 'elbo' or 'reweighted_wake_sleep', or leave {option} out"
                )
    return options

