"""Checks of user-written settings. Each raises ``ConfigurationError`` whose
message starts with ``where`` (the key path the user wrote, e.g.
``model.areas[1].size``) and says what is allowed."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from .errors import ConfigurationError, did_you_mean

__all__ = ["check_keys", "check_number", "check_int", "check_choice"]


def check_keys(data: Any, allowed: Collection[str], where: str) -> None:
    """``data`` must be a mapping whose keys are all in ``allowed``."""
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{where}: expected a table of settings, got {data!r}")
    for key in data:
        if key not in allowed:
            raise ConfigurationError(
                f"{where}.{key}: unknown key; allowed: {', '.join(allowed)}"
                f"{did_you_mean(key, allowed)}"
            )


def check_number(
    value: Any, where: str, *, positive: bool = False, below: float | None = None
) -> float:
    """A finite real number, optionally > 0 and < ``below``; returns it as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ConfigurationError(f"{where}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigurationError(f"{where}: must be finite, got {value!r}")
    if positive and value <= 0:
        raise ConfigurationError(f"{where}: must be > 0, got {value!r}")
    if below is not None and value >= below:
        raise ConfigurationError(f"{where}: must be < {below}, got {value!r}")
    return float(value)


def check_int(value: Any, where: str, *, minimum: int = 0) -> int:
    """A whole number >= ``minimum``; returns it as int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigurationError(f"{where}: expected a whole number >= {minimum}, got {value!r}")
    return int(value)


def check_choice(value: Any, allowed: Collection[str], where: str) -> None:
    """``value`` must be one of ``allowed``."""
    if value not in allowed:
        raise ConfigurationError(
            f"{where}: unknown value {value!r}; allowed: {', '.join(allowed)}"
            f"{did_you_mean(value, allowed)}"
        )
