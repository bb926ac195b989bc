"""A recorded, checkpointed, resumable run: the scheduler with a recorder and
a checkpointer attached, and the way back in after a crash."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import FormatError, RecoveryWarning
from ..recording import partial_path, recorded_rows
from .checkpoint import Checkpointer, load_checkpoint, load_latest, previous_checkpoint, set_aside
from .probes import Probe
from .recorder import Recorder
from .scheduler import Scheduler

__all__ = ["RecordedRun", "run_recorded", "checkpoint_path"]


def checkpoint_path(recording: str | os.PathLike[str]) -> Path:
    """Where the checkpoint of the run recorded at ``recording`` lives."""
    recording = Path(recording)
    return recording.with_name(recording.stem + ".ckpt.npz")


class RecordedRun:
    """Attach a recorder and a checkpointer to ``scheduler``, resuming when asked.

    Parameters
    ----------
    scheduler : Scheduler
    path : path
        The recording (HDF5); ``path + ".partial"`` until the run completes.
    probes : sequence of Probe
    checkpoint_every : int
        Batches between checkpoints (and one at every epoch end).
    resume : bool
        Continue a run that was killed: the scheduler is restored from the
        last checkpoint, rows recorded after it are dropped, and the run goes
        on; on NumPy the result is bit-identical to an uninterrupted run. A
        run killed before its first checkpoint starts again from the
        beginning. A run that completed already is restored to its final
        state (``complete`` is True) and nothing is attached.
    config : mapping, optional
        The run's configuration, stored in the recording.
    compression : str
        ``"none"``, ``"lzf"`` or ``"gzip"`` for the probes' data.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        path: str | os.PathLike[str],
        probes: Sequence[Probe] = (),
        *,
        checkpoint_every: int = 100,
        resume: bool = False,
        config: dict[str, Any] | None = None,
        compression: str = "none",
    ) -> None:
        self.scheduler = scheduler
        self.path = Path(path)
        self.checkpoint = checkpoint_path(self.path)
        self.recorder: Recorder | None = None
        self.complete = resume and self.path.exists() and not partial_path(self.path).exists()
        if self.complete:
            if self.checkpoint.exists():
                try:
                    scheduler.load_state_dict(load_checkpoint(self.checkpoint)[0])
                except FormatError as exc:  # the result is the recording, which is complete
                    warnings.warn(f"{exc}; the recording {self.path.name} is complete, but the trained "
                                  f"model cannot be restored from it", RecoveryWarning, stacklevel=2)
            return
        self.recorder = Recorder(self.path, probes, config=config, compression=compression)
        loaded = self._resumable() if resume and partial_path(self.path).exists() else None
        if loaded is not None:
            state, extra = loaded
            scheduler.load_state_dict(state)
            self.recorder.attach(scheduler, resume=extra)
        else:
            self.recorder.attach(scheduler)
        Checkpointer(self.checkpoint, every=checkpoint_every, before_save=self.recorder.flush).attach(scheduler)

    def _resumable(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The checkpoint to resume from, with its recording checked; None (said
        with a ``RecoveryWarning``) when the run must start again: the
        recording is damaged (kept aside) or no checkpoint is usable."""
        partial = partial_path(self.path)
        try:
            rows = recorded_rows(partial)
        except FormatError as exc:
            aside = set_aside(partial)
            warnings.warn(f"{exc}; kept aside as {aside.name}; the run starts again from the beginning",
                          RecoveryWarning, stacklevel=3)
            return None

        def fits(extra: dict[str, Any]) -> str | None:
            short = [name for name, cursor in extra.get("cursors", {}).items() if rows["probes"].get(name, 0) < cursor]
            if extra.get("metric_rows", 0) > rows["metrics"]:
                short.append("metrics")
            if short:
                return (f"the recording {partial.name} holds fewer rows than this checkpoint "
                        f"flushed ({', '.join(short)})")
            return None

        had = [p for p in (self.checkpoint, previous_checkpoint(self.checkpoint)) if p.exists()]
        loaded = load_latest(self.checkpoint, accept=fits)
        if loaded is None and had:
            warnings.warn(f"{self.checkpoint}: no usable checkpoint; the run starts again from the beginning",
                          RecoveryWarning, stacklevel=3)
        return loaded

    def run(self) -> Path:
        """Run the scheduler to its last epoch; returns the completed recording's path."""
        if self.complete:
            return self.path
        self.scheduler.run()
        assert self.recorder is not None and self.recorder.final_path is not None
        return self.recorder.final_path

    def close(self) -> None:
        """Close the recording of a run that never ran (it stays resumable)."""
        if self.recorder is not None:
            self.recorder.close(ran=False)


def run_recorded(
    scheduler: Scheduler,
    path: str | os.PathLike[str],
    probes: Sequence[Probe] = (),
    *,
    checkpoint_every: int = 100,
    resume: bool = False,
    config: dict[str, Any] | None = None,
    compression: str = "none",
) -> Path:
    """Run ``scheduler`` to the end, recording ``probes`` to ``path`` (HDF5) and
    checkpointing every ``checkpoint_every`` batches and at epoch ends
    (``RecordedRun``; ``Simulator`` does the same from a model description).
    Returns the path of the completed recording."""
    return RecordedRun(scheduler, path, probes, checkpoint_every=checkpoint_every, resume=resume,
                       config=config, compression=compression).run()
