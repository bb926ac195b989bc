"""Typed errors: every user mistake surfaces as a ``CortexsimError`` that names
what the user wrote (the field, the file, the area) and what is allowed."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "CortexsimError",
    "ConfigurationError",
    "BackendError",
    "DataError",
    "FormatError",
    "DivergenceError",
    "StorageError",
    "ClusterError",
    "RecoveryWarning",
    "did_you_mean",
]


class CortexsimError(Exception):
    """Base class of every error cortexsim raises on purpose."""


class ConfigurationError(CortexsimError, ValueError):
    """A model, rule or schedule description is invalid."""


class BackendError(CortexsimError, RuntimeError):
    """The requested array backend cannot be used here."""


class DataError(CortexsimError, OSError):
    """A dataset is missing, corrupt or malformed."""


class FormatError(CortexsimError, OSError):
    """A file is not in the format cortexsim expects."""


class DivergenceError(CortexsimError, FloatingPointError):
    """A simulation produced NaN or Inf."""


class StorageError(CortexsimError, OSError):
    """A file could not be written (a full disk, a lost mount); what was saved
    before is intact, and the message says where."""


class ClusterError(CortexsimError, ConnectionError):
    """A Dask scheduler cannot be reached at the address given, or its workers
    cannot do a study's runs (no workers, no shared output folder)."""


class RecoveryWarning(UserWarning):
    """cortexsim recovered from damage (a checkpoint, a recording) and says what it did."""


def did_you_mean(word: str, allowed: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest allowed word, or ``""``."""
    close = difflib.get_close_matches(str(word), [str(a) for a in allowed], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
