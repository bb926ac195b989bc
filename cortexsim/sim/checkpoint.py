"""Checkpoints: everything needed to continue a run bit-identically, written
atomically (temporary file, fsync, rename) so a kill never leaves a torn one.
The one it replaces is kept as the previous checkpoint
(``previous_checkpoint``): :func:`load_latest` falls back to it when the
newest is damaged, keeping the damaged file aside.

A checkpoint is a NumPy ``.npz`` archive read without pickle: parameters and
optimizer slots as arrays, the rest (position, history, probe cursors) as JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import warnings

from ..errors import FormatError, RecoveryWarning, StorageError
from .scheduler import Event, Scheduler
from ..validation import check_int

__all__ = ["save_checkpoint", "load_checkpoint", "load_latest", "previous_checkpoint", "set_aside",
           "Checkpointer", "CHECKPOINT_VERSION"]

CHECKPOINT_VERSION = 1


def _fsync_directory(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open directories
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    """Write ``Scheduler.state_dict()`` (plus JSON-able ``extra``) atomically to ``path``."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    for (area, name), value in state["parameters"].items():
        arrays[f"parameter/{area}/{name}"] = value
    for (kind, (area, name)), value in state["optimizer"]["slots"].items():
        arrays[f"optimizer/{kind}/{area}/{name}"] = value
    for name, value in state["totals"].items():
        arrays[f"total/{name}"] = np.asarray(value)
    meta = {
        "checkpoint_version": CHECKPOINT_VERSION,
        "position": state["position"],
        "history": state["history"],
        "optimizer_steps": state["optimizer"]["steps"],
        "rule": state.get("rule", {}),
        "extra": extra or {},
    }
    arrays["meta"] = np.array(json.dumps(meta))
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        kept = [str(p) for p in (path, previous_checkpoint(path)) if p.exists()]
        raise StorageError(
            f"{path}: could not write the checkpoint ({exc.strerror or exc}); "
            + (f"the last good one is intact ({', '.join(kept)}); " if kept else "no earlier one exists; ")
            + "free space and continue with --resume"
        ) from None
    if path.exists():
        os.replace(path, previous_checkpoint(path))
    os.replace(temporary, path)
    _fsync_directory(path.parent)


def previous_checkpoint(path: str | os.PathLike[str]) -> Path:
    """Where the checkpoint before ``path`` is kept (``seed0.ckpt.npz`` -> ``seed0.ckpt.prev.npz``)."""
    path = Path(path)
    stem = path.name[: -len(".npz")] if path.name.endswith(".npz") else path.name
    return path.with_name(stem + ".prev.npz")


def set_aside(path: Path) -> Path:
    """Rename a damaged file to ``NAME.damaged`` (``.damaged.1``, ... if taken); returns the new name."""
    target, n = path.with_name(path.name + ".damaged"), 0
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged.{n}")
    os.replace(path, target)
    return target


def load_latest(
    path: str | os.PathLike[str], accept: Callable[[dict[str, Any]], str | None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The newest usable of ``path`` and its previous checkpoint: ``(state,
    extra)``, or None when neither is there and usable. A damaged file is
    renamed aside (:func:`set_aside`), never deleted; ``accept(extra)`` may
    return why a readable checkpoint does not fit (the recording it belongs
    to holds fewer rows), and the previous one is tried. Every fallback is
    said with a ``RecoveryWarning``."""
    path = Path(path)
    for candidate in (path, previous_checkpoint(path)):
        if not candidate.exists():
            continue
        try:
            loaded = load_checkpoint(candidate)
        except FormatError as exc:
            aside = set_aside(candidate)
            warnings.warn(f"{exc}; kept aside as {aside.name}", RecoveryWarning, stacklevel=2)
            continue
        why = None if accept is None else accept(loaded[1])
        if why is not None:
            warnings.warn(f"{candidate}: {why}", RecoveryWarning, stacklevel=2)
            continue
        if candidate != path:
            warnings.warn(f"{path.parent / path.name}: resuming from the previous checkpoint "
                          f"{candidate.name}", RecoveryWarning, stacklevel=2)
        return loaded
    return None


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a checkpoint; returns ``(state for Scheduler.load_state_dict, extra)``."""
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: no checkpoint here; a run without one cannot be resumed")
    try:
        return _parse(path)
    except FormatError:
        raise
    except Exception as exc:  # zipfile.BadZipFile (CRC), zlib.error, EOFError, ValueError, KeyError, ...
        raise FormatError(f"{path}: not a readable cortexsim checkpoint ({type(exc).__name__}: {exc})") from None


def _parse(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}  # every member's CRC is checked
    meta = json.loads(str(arrays.pop("meta")))
    if meta.get("checkpoint_version", 0) > CHECKPOINT_VERSION:
        raise FormatError(
            f"{path}: checkpoint version {meta['checkpoint_version']} is newer than this "
            f"cortexsim reads ({CHECKPOINT_VERSION}); upgrade cortexsim"
        )
    parameters, slots, totals = {}, {}, {}
    for name, value in arrays.items():
        parts = name.split("/")
        if parts[0] == "parameter":
            parameters[(parts[1], parts[2])] = value
        elif parts[0] == "optimizer":
            slots[(parts[1], (parts[2], parts[3]))] = value
        elif parts[0] == "total":
            totals[parts[1]] = value
    state = {
        "position": meta["position"],
        "history": meta["history"],
        "parameters": parameters,
        "optimizer": {"steps": meta["optimizer_steps"], "slots": slots},
        "totals": totals,
        "rule": meta.get("rule", {}),
    }
    return state, meta["extra"]


class Checkpointer:
    """Saves the scheduler's state every ``every`` batches and at every epoch end.

    Parameters
    ----------
    path : path
        The checkpoint file (replaced atomically each time).
    every : int
        Batches between checkpoints (0: epoch ends only).
    before_save : callable, optional
        Called before each save; returns a JSON-able dict stored with the
        checkpoint (the recorder flushes here and returns its cursors).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        every: int = 100,
        before_save: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.path = Path(path)
        self.every = check_int(every, "checkpoint.every")
        self.before_save = before_save
        self.saved_at: int | None = None

    def attach(self, scheduler: Scheduler) -> None:
        """Hook into the scheduler's ``after_learning`` and ``epoch_end`` slots, last."""
        scheduler.attach("after_learning", self._after_batch, order=1000, name=f"checkpoint every {self.every} batches")
        scheduler.attach("epoch_end", self._save, order=1000, name="checkpoint")

    def _after_batch(self, event: Event) -> None:
        if self.every and event.scheduler.step % self.every == 0:
            self._save(event)

    def _save(self, event: Event) -> None:
        extra = self.before_save() if self.before_save is not None else {}
        save_checkpoint(self.path, event.scheduler.state_dict(), extra)
        self.saved_at = event.scheduler.step
