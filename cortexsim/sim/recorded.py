"""A recorded, checkpointed, resumable run: the scheduler with a recorder and
a checkpointer attached, and the way back in after a crash."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..recording import partial_path
from .checkpoint import Checkpointer, load_checkpoint
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
                scheduler.load_state_dict(load_checkpoint(self.checkpoint)[0])
            return
        self.recorder = Recorder(self.path, probes, config=config, compression=compression)
        if resume and partial_path(self.path).exists() and self.checkpoint.exists():
            state, extra = load_checkpoint(self.checkpoint)
            scheduler.load_state_dict(state)
            self.recorder.attach(scheduler, resume=extra)
        else:
            self.recorder.attach(scheduler)
        Checkpointer(self.checkpoint, every=checkpoint_every, before_save=self.recorder.flush).attach(scheduler)

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
