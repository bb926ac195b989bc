"""Checks of user-written settings. Each raises ``ConfigurationError`` whose
message starts with the key path the user wrote (``model.areas[1].size``,
``rules[1].inference.steps``) and says what is allowed.

Key paths and locations
-----------------------
A check is given ``where``: the key path of the value *relative to the
current location*. Outside any location the path is used as written, so a
rule's constructor checking ``check_number(beta, "rule.beta")`` reports
``rule.beta: ...`` and ``Relaxation`` reports ``inference.steps: ...``.

Code that knows where a table sits in a file validates it inside
``located(prefix, owner=NAME)``. There ``where`` resolves by one rule
(:func:`locate`):

- a path whose first component is ``owner`` (the generic name the validated
  thing uses for itself when it stands alone: ``"rule"``, ``"optimizer"``,
  ``"probe"``) has that component replaced by ``prefix``;
- any other path is appended to ``prefix``.

So inside ``located("rules[2]", owner="rule")``, ``"rule.beta"`` is
``rules[2].beta``, ``"inference.steps"`` is ``rules[2].inference.steps`` and
``"rule"`` alone is ``rules[2]``. Locations nest: ``prefix`` itself resolves
against the enclosing location, so ``located("optimizer", owner="optimizer")``
inside ``rules[0]`` makes ``"optimizer.lr"`` read ``rules[0].optimizer.lr``.

Errors raised by hand should come from :func:`invalid`, which resolves its
path the same way. A ``ConfigurationError`` raised otherwise (a plain
``ConfigurationError("rule.beta: ...")``) that leaves a ``located`` block is
located on the way out by the same rule, reading its path from the message
up to the first ``": "``; a message that does not start with a key path is
prefixed with the location.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np

from .errors import ConfigurationError, did_you_mean

__all__ = [
    "check_keys", "check_number", "check_int", "check_bool", "check_choice",
    "located", "locate", "invalid", "settings_keys",
]

# (prefix, owner) of the innermost ``located`` block; ("", None) outside any.
_LOCATION: ContextVar[tuple[str, str | None]] = ContextVar("cortexsim_location", default=("", None))
# A key path at the start of a message: names, optional [index]es, joined by dots.
_KEY_PATH = re.compile(r"[A-Za-z_]\w*(?:\[\d+\])*(?:\.[A-Za-z_]\w*(?:\[\d+\])*)*")


def locate(where: str) -> str:
    """The key path the user wrote for ``where`` under the current location
    (module docstring); ``where`` itself outside any ``located`` block."""
    prefix, owner = _LOCATION.get()
    if not prefix:
        return where
    head, dot, rest = where.partition(".")
    if owner is not None and head == owner:
        return f"{prefix}{dot}{rest}"
    return f"{prefix}.{where}" if where else prefix


@contextmanager
def located(prefix: str, *, owner: str | None = None) -> Iterator[str]:
    """Validate inside the key path ``prefix`` (resolved against any enclosing
    location); yields the resolved path.

    Parameters
    ----------
    prefix : str
        Where the validated table sits, e.g. ``"rules[1]"``.
    owner : str, optional
        The generic name the table's own checks use for it (``"rule"`` in
        ``"rule.beta"``); paths starting with it have it replaced by
        ``prefix``. Without it, every path is appended to ``prefix``.
    """
    path = locate(prefix)
    token = _LOCATION.set((path, owner))
    try:
        yield path
    except ConfigurationError as exc:
        if getattr(exc, "key_path", None) is None:  # raised by hand, not by a check here
            message = str(exc)
            head, sep, reason = message.partition(": ")
            if sep and _KEY_PATH.fullmatch(head):
                key_path, message = locate(head), reason
            else:
                key_path = path
            exc.args = (f"{key_path}: {message}",)  # the same error, so its traceback stays
            exc.key_path = key_path  # type: ignore[attr-defined]
        raise
    finally:
        _LOCATION.reset(token)


def invalid(where: str, reason: str) -> ConfigurationError:
    """A ``ConfigurationError`` reading ``"KEY.PATH: reason"``, the path being
    ``where`` resolved under the current location (raise it)."""
    key_path = locate(where)
    error = ConfigurationError(f"{key_path}: {reason}")
    error.key_path = key_path  # type: ignore[attr-defined]
    return error


def settings_keys(
    factory: Callable[..., Any], *, keyword_only: bool = False, exclude: Collection[str] = ()
) -> tuple[str, ...]:
    """The settings a study file may write for ``factory``: the names of its
    keyword parameters, in signature order.

    A rule's settings are its constructor's arguments, an experiment's the
    keyword-only arguments of its ``run``; this is the one place that reads
    them from a signature. ``*args`` and ``**kwargs`` are never settings.

    Parameters
    ----------
    factory : callable
        A rule class, an optimizer class, an experiment's ``run``.
    keyword_only : bool
        Take keyword-only parameters alone (the others are positional inputs).
    exclude : collection of str
        Parameters the caller fills in itself (``seed``, ``data``).
    """
    kinds = (inspect.Parameter.KEYWORD_ONLY,) if keyword_only else (
        inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(name for name, p in inspect.signature(factory).parameters.items()
                 if p.kind in kinds and name not in exclude)


def check_keys(data: Any, allowed: Collection[str], where: str) -> None:
    """``data`` must be a mapping whose keys are all in ``allowed``."""
    if not isinstance(data, Mapping):
        raise invalid(where, f"expected a table of settings, got {data!r}")
    for key in data:
        if key not in allowed:
            raise invalid(
                f"{where}.{key}",
                f"unknown key; allowed: {', '.join(allowed)}{did_you_mean(key, allowed)}",
            )


def check_number(
    value: Any, where: str, *, positive: bool = False, below: float | None = None
) -> float:
    """A finite real number, optionally > 0 and < ``below``; returns it as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise invalid(where, f"expected a number, got {value!r}")
    if not math.isfinite(value):
        raise invalid(where, f"must be finite, got {value!r}")
    if positive and value <= 0:
        raise invalid(where, f"must be > 0, got {value!r}")
    if below is not None and value >= below:
        raise invalid(where, f"must be < {below}, got {value!r}")
    return float(value)


def check_bool(value: Any, where: str) -> bool:
    """``true`` or ``false``; returns it."""
    if not isinstance(value, bool):
        raise invalid(where, f"expected true or false, got {value!r}")
    return value


def check_int(value: Any, where: str, *, minimum: int = 0) -> int:
    """A whole number >= ``minimum``; returns it as int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise invalid(where, f"expected a whole number >= {minimum}, got {value!r}")
    return int(value)


def check_choice(value: Any, allowed: Collection[str], where: str) -> None:
    """``value`` must be one of ``allowed``."""
    if value not in allowed:
        raise invalid(
            where,
            f"unknown value {value!r}; allowed: {', '.join(allowed)}{did_you_mean(value, allowed)}",
        )
