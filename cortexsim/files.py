"""Reading the text files cortexsim is given: study files and model files
(TOML), and the JSON it writes beside its results (``study.json``, the
report's caches). Every failure is a typed error naming the file and what is
wrong with it, never a traceback: a missing file, a folder where a file was
expected, no permission, bytes that are not UTF-8 (a damaged copy), a syntax
error with its line. Binary formats have their own readers, which do the same:
recordings (``recording/reader.py``, ``recording/writer.recorded_rows``),
checkpoints (``sim/checkpoint.load_checkpoint``) and datasets (``data/``)."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

from .errors import ConfigurationError, CortexsimError, FormatError

__all__ = ["read_json", "read_text", "read_toml"]


def read_text(path: str | os.PathLike[str], what: str = "file",
              error: type[CortexsimError] = FormatError) -> str:
    """The UTF-8 text of ``path``; ``error`` ("PATH: no such WHAT", ...) otherwise."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise error(f"{path}: a folder, not a {what}") from None
    except PermissionError:
        raise error(f"{path}: no permission to read this {what}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not a text file (byte {exc.start} is not UTF-8); the {what} is "
                    f"damaged or not a {what}") from None
    except ValueError:  # a NUL character in the name
        raise error(f"{str(path)!r}: not a valid file name") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc})") from None


def read_toml(path: str | os.PathLike[str], what: str = "file") -> tuple[dict[str, Any], str]:
    """``(document, source)`` of a TOML file; ``ConfigurationError`` naming the
    file (and the line of a syntax error) otherwise."""
    source = read_text(path, what, ConfigurationError)
    try:
        return tomllib.loads(source), source
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: not valid TOML: {exc}") from None


def read_json(path: str | os.PathLike[str], what: str = "file") -> Any:
    """The JSON value in ``path``; ``FormatError`` naming the file otherwise."""
    source = read_text(path, what)
    try:
        return json.loads(source)
    except ValueError as exc:
        raise FormatError(f"{path}: the {what} is not valid JSON ({exc}); it is damaged or "
                          f"was cut short") from None
