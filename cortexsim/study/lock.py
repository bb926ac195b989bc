"""One process per study folder: ``OUT/.cortexsim.lock`` holds the process id
and host of the ``cortexsim run`` writing there.

A second process on the same folder is refused at once, with the holder's
id and host. A lock whose holder is gone (same host, no such process) is
stale: it is taken over with a warning. The lock is created atomically
(``O_CREAT | O_EXCL``) and removed when the study ends, however it ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path

from ..errors import ConfigurationError, RecoveryWarning

__all__ = ["LOCK_NAME", "study_lock"]

LOCK_NAME = ".cortexsim.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder(path: Path) -> dict[str, object] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # unreadable or half-written: treated as stale


def _create(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": os.getpid(), "host": socket.gethostname()}, f)
    return True


@contextlib.contextmanager
def study_lock(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``OUT/.cortexsim.lock`` for the duration of the ``with`` block."""
    path = Path(out) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    if not _create(path):
        holder = _holder(path)
        host = socket.gethostname()
        pid = holder.get("pid") if holder else None
        if holder and holder.get("host") != host:
            raise ConfigurationError(
                f"{path.parent}: another cortexsim run (process {pid} on {holder.get('host')}) is "
                f"writing this study folder; wait for it, or if it is gone, delete {path}"
            )
        if isinstance(pid, int) and pid != os.getpid() and _alive(pid):
            raise ConfigurationError(
                f"{path.parent}: another cortexsim run (process {pid} on {host}) is writing this "
                f"study folder; wait for it to finish or stop it, or write elsewhere with --out"
            )
        warnings.warn(f"{path}: taking over a stale lock (process {pid} is gone)", RecoveryWarning, stacklevel=3)
        path.unlink(missing_ok=True)
        if not _create(path):
            raise ConfigurationError(f"{path.parent}: another cortexsim run took this study folder just now")
    try:
        yield path
    finally:
        holder = _holder(path)
        if holder and holder.get("pid") == os.getpid():
            path.unlink(missing_ok=True)
