"""Command-line overrides of a study file: ``--set key.path=value``.

A study file is parsed to plain data first; each override then replaces one
value in it, before the study is validated, so an overridden value is checked
(and reported) like one written in the file.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from ..errors import ConfigurationError

__all__ = ["apply_override"]

KEY_PART = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)(?:\[(\d+)\])?$")


def apply_override(document: dict[str, Any], assignment: str) -> None:
    """Apply one ``key.path=value`` to the parsed document, in place.

    The value is read as a TOML value (``5``, ``1e-3``, ``true``, ``[0, 1]``,
    ``"text"``); anything that is not one is taken as a bare string, so
    ``data.name=fashion-mnist`` works without quotes. ``rules[2].lr`` reaches
    into an array of tables.
    """
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigurationError(f"--set {assignment!r}: expected KEY=VALUE, e.g. schedule.epochs=100")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    parts = key.split(".")
    table: Any = document
    for depth, part in enumerate(parts):
        match = KEY_PART.match(part)
        if match is None:
            raise ConfigurationError(f"--set {assignment!r}: {part!r} is not a key name")
        name, index = match.group(1), match.group(2)
        last = depth == len(parts) - 1 and index is None
        if last:
            if not isinstance(table, dict):
                raise ConfigurationError(f"--set {assignment!r}: {'.'.join(parts[:depth])} is not a table")
            table[name] = value
            return
        if not isinstance(table, dict):
            raise ConfigurationError(f"--set {assignment!r}: {'.'.join(parts[:depth])} is not a table")
        table = table.setdefault(name, [] if index is not None else {})
        if index is not None:
            if not isinstance(table, list) or int(index) >= len(table):
                size = len(table) if isinstance(table, list) else 0
                raise ConfigurationError(
                    f"--set {assignment!r}: {name} has {size} entries, so [{index}] does not exist")
            if depth == len(parts) - 1:
                table[int(index)] = value
                return
            table = table[int(index)]
