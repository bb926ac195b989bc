"""Checkpoints: everything needed to continue a run bit-identically, written
atomically (temporary file, fsync, rename) so a kill never leaves a torn one.

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

from ..errors import FormatError
from .scheduler import Event, Scheduler
from ..validation import check_int

__all__ = ["save_checkpoint", "load_checkpoint", "Checkpointer", "CHECKPOINT_VERSION"]

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
    with open(temporary, "wb") as handle:
        np.savez(handle, **arrays)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_directory(path.parent)


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a checkpoint; returns ``(state for Scheduler.load_state_dict, extra)``."""
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: no checkpoint here; a run without one cannot be resumed")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError) as exc:
        raise FormatError(f"{path}: not a readable cortexsim checkpoint ({exc})") from None
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
