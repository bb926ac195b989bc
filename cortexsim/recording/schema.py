"""Names and versions of the recording format (docs/format.md), and the
environment a recording stores so a run can be repeated."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["FORMAT", "FORMAT_VERSION", "PARTIAL_SUFFIX", "environment"]

FORMAT = "cortexsim-recording"
FORMAT_VERSION = 1
PARTIAL_SUFFIX = ".partial"
INDEX_FILL = -1  # index datasets' fill value: a row still at -1 was never written

_PACKAGES = ("numpy", "array-api-compat", "h5py", "scipy", "scikit-learn", "cupy-cuda12x", "cupy-cuda13x")


def _git_commit() -> str | None:
    """The commit of the git checkout holding the working directory, if any."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def environment(backend: Any) -> dict[str, Any]:
    """Python, packages, platform, host, git commit and GPU of this process."""
    from .. import __version__

    packages = {}
    for name in _PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    gpu = None
    if backend.name == "cupy":
        props = backend.library.cuda.runtime.getDeviceProperties(0)
        gpu = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return {
        "cortexsim": __version__,
        "python": sys.version,
        "executable": sys.executable,
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "working_directory": str(Path.cwd()),
        "git_commit": _git_commit(),
        "packages": packages,
        "gpu": gpu,
    }
