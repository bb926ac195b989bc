"""``cortexsim verify OUT``: check every file of a study folder and say the
state of each run, without running anything.

For each run of ``OUT/study.json``: its recording (complete, or the
``.partial`` of a run that was killed; every stored value read once, so a
damaged chunk or header is found by its checksum) and its two checkpoints
(``sim/checkpoint.py``), then what ``cortexsim run --resume`` would do with
it. A killed run's ``.partial`` file still carries the "open for writing"
flags of its SWMR writer, which make other HDF5 tools (HDFView, h5dump,
``h5py.File(path)``) refuse it; verify clears them by copying the file
through a SWMR reader (what h5clear does), rows and all, so the file opens
anywhere and still resumes. It takes the folder's lock, so it never touches
a folder a run is writing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FormatError
from ..files import read_json
from ..recording import check_recording, partial_path
from ..recording.writer import clear_write_flags
from ..sim.checkpoint import load_checkpoint, previous_checkpoint
from ..sim.recorded import checkpoint_path
from .lock import study_lock

__all__ = ["RunCheck", "verify_study"]


@dataclass
class RunCheck:
    """What verify found for one run."""

    label: str
    seed: int
    state: str          # complete | killed | not started | damaged
    detail: str
    damaged: bool = False


def _checkpoint(path: Path) -> tuple[int | None, str]:
    """(step, "") of a readable checkpoint, (None, why) otherwise, (None, "") if absent."""
    if not path.exists():
        return None, ""
    try:
        return int(load_checkpoint(path)[0]["position"]["step"]), ""
    except FormatError as exc:
        return None, str(exc)


def _check_run(out: Path, entry: dict[str, Any], repair: bool) -> RunCheck:
    label, seed = str(entry.get("label")), int(entry.get("seed", 0))
    recording = out / str(entry.get("recording", f"{label}/seed{seed}.h5"))
    partial = partial_path(recording)
    newest, newest_why = _checkpoint(checkpoint_path(recording))
    previous, previous_why = _checkpoint(previous_checkpoint(checkpoint_path(recording)))
    problems = [why for why in (newest_why, previous_why) if why]
    if recording.exists():
        try:
            rows = check_recording(recording)
        except FormatError as exc:
            return RunCheck(label, seed, "damaged", str(exc), True)
        detail = f"{rows['metrics']} epochs recorded"
        if newest_why:
            detail += f"; its final checkpoint is damaged, so the report cannot rebuild the model ({newest_why})"
        return RunCheck(label, seed, "complete", detail, bool(newest_why))
    if not partial.exists():
        return RunCheck(label, seed, "not started", "no recording yet", bool(problems))
    try:
        rows = check_recording(partial)
    except FormatError as exc:
        return RunCheck(label, seed, "damaged", f"{exc}; --resume keeps it aside and starts the run "
                                                f"again", True)
    detail = f"killed after {rows['metrics']} epochs"
    if repair:
        cleared = clear_write_flags(partial)
        detail += "; write flags cleared" if cleared else ""
    if newest is not None:
        detail += f"; --resume continues from the checkpoint of batch {newest}"
    elif previous is not None:
        detail += f"; --resume continues from the previous checkpoint (batch {previous})"
    else:
        detail += "; no usable checkpoint: --resume starts it again"
    if problems:
        detail += " (" + "; ".join(problems) + ")"
    return RunCheck(label, seed, "killed", detail, bool(problems))


def verify_study(out: str | os.PathLike[str], repair: bool = True) -> list[RunCheck]:
    """Check every run of the study folder ``out`` (module docstring)."""
    out = Path(out)
    index = out / "study.json"
    if not index.is_file():
        raise FormatError(f"{out}: not a study folder (no study.json)")
    with study_lock(out):
        study = read_json(index, "study index")
        entries = study.get("runs") if isinstance(study, dict) else None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise FormatError(f"{index}: not a study index (no list of runs); rerun the study with "
                              f"--resume to write it again")
        return [_check_run(out, entry, repair) for entry in entries]
