"""The ``cortexsim`` command line."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import sys
from collections.abc import Sequence

from . import __version__
from .backend import available_backends
from .errors import CortexsimError

__all__ = ["main"]

_PACKAGES = ("numpy", "scipy", "array-api-compat", "array-api-strict", "h5py", "matplotlib", "scikit-learn", "cupy")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        if package == "cupy":
            for name in ("cupy-cuda12x", "cupy-cuda13x", "cupy-cuda11x"):
                try:
                    return importlib.metadata.version(name)
                except importlib.metadata.PackageNotFoundError:
                    continue
        return "not installed"


def _gpu() -> str:
    if available_backends()["cupy"] is not None:
        return "none usable"
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return f"{name} ({props['totalGlobalMem'] / 2**30:.0f} GiB), CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}"


def info() -> str:
    """Versions, backends and the GPU, as printed by ``cortexsim info``."""
    lines = [
        f"cortexsim {__version__}",
        f"python    {platform.python_version()} ({sys.executable})",
        f"platform  {platform.platform()}",
        "packages:",
    ]
    lines += [f"  {name:<18} {_version(name)}" for name in _PACKAGES]
    lines.append("backends:")
    for name, reason in available_backends().items():
        lines.append(f"  {name:<18} {'available' if reason is None else 'unavailable: ' + reason}")
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                lines.append(
                    f"blas      {pool.get('internal_api')} {pool.get('version')}, "
                    f"{pool.get('num_threads')} threads"
                )
    except ImportError:
        pass
    lines.append(f"gpu       {_gpu()}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(
        prog="cortexsim", description="Simulate hierarchical generative models of sensory cortex."
    )
    parser.add_argument("--version", action="version", version=f"cortexsim {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("info", help="print versions, available backends and the GPU")
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            print(info())
            return 0
        parser.print_help()
        return 2
    except CortexsimError as exc:
        print(f"cortexsim: error: {exc}", file=sys.stderr)
        return 2
