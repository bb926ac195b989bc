"""A recorded, checkpointed, resumable run: the scheduler with a recorder and
a checkpointer attached, and the way back in after a crash."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .checkpoint import Checkpointer, load_checkpoint
from .probes import Probe
from ..recording import partial_path
from .recorder import Recorder
from .scheduler import Scheduler

__all__ = ["run_recorded", "checkpoint_path"]


def checkpoint_path(recording: str | os.PathLike[str]) -> Path:
    """Where the checkpoint of the run recorded at ``recording`` lives."""
    recording = Path(recording)
    return recording.with_name(recording.stem + ".ckpt.npz")


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
    checkpointing every ``checkpoint_every`` batches and at epoch ends.

    With ``resume``, continue a run that was killed: the scheduler is restored
    from the last checkpoint, rows recorded after it are dropped, and the run
    goes on; on NumPy the result is bit-identical to an uninterrupted run. A
    run killed before its first checkpoint starts again from the beginning.
    ``compression`` (``"none"``, ``"lzf"``, ``"gzip"``) filters the probes'
    data. Returns the path of the completed recording.
    """
    path = Path(path)
    recorder = Recorder(path, probes, config=config, compression=compression)
    checkpoints = checkpoint_path(path)
    if resume and path.exists() and not partial_path(path).exists():
        return path  # the run completed already
    if resume and partial_path(path).exists() and checkpoints.exists():
        state, extra = load_checkpoint(checkpoints)
        scheduler.load_state_dict(state)
        recorder.attach(scheduler, resume=extra)
    else:
        recorder.attach(scheduler)
    Checkpointer(checkpoints, every=checkpoint_every, before_save=recorder.flush).attach(scheduler)
    scheduler.run()
    assert recorder.final_path is not None
    return recorder.final_path
