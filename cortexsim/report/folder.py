"""A study folder read back: ``OUT/study.json`` (docs/studies.md) and the
recording of every run it names, as one ``RunData`` per rule x seed.

``read_study_folder(OUT)`` reads the metrics of every run, and the alignment and
energy probes of complete ones; a run that cannot enter a report's aggregates
(no recording, unreadable, incomplete, not complete, no test metric) keeps the
reason in ``RunData.problem``. The report (``report``, ``report_generative``,
``experiments.report``) writes from these.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CortexsimError, FormatError
from ..files import read_json
from ..recording import check_recording, open_recording, partial_path

__all__ = ["RunData", "read_study_folder"]


@dataclass
class RunData:
    """One rule x seed of a study, with what the report needs read into memory."""

    label: str
    rule: str
    seed: int
    status: str
    recording: str
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    alignment: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    energy: tuple[np.ndarray, np.ndarray] | None = None
    problem: str = ""  # why the run is left out of the aggregates ("" = included)
    supervised: bool = True  # learns from labels (study.json; unsupervised runs have no accuracy)

    @property
    def included(self) -> bool:
        return not self.problem


def _read_run(out: Path, entry: dict[str, Any]) -> RunData:
    run = RunData(
        label=str(entry.get("label") or entry.get("rule")),
        rule=str(entry.get("rule", "")),
        seed=int(entry.get("seed", 0)),
        status=str(entry.get("status", "unknown")),
        recording=str(entry.get("recording", "")),
        supervised=bool(entry.get("supervised", True)),
    )
    path = out / run.recording
    if not run.recording or not (path.is_file() or partial_path(path).is_file()):
        run.problem = "no recording"
        return run
    path = path if path.is_file() else partial_path(path)
    try:
        check_recording(path)  # in a child process first: HDF5 can crash on a damaged file
    except FormatError as exc:
        run.problem = f"recording unreadable ({exc})"
        return run
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # partial files warn on open
            with open_recording(path) as rec:
                run.metrics = {k: np.array(v) for k, v in rec.metrics.items()}
                complete = rec.status == "complete" and path.name == Path(run.recording).name
                if run.status == "complete" and complete:
                    for probe in rec.select(quantity="alignment"):
                        run.alignment[probe.target] = (probe.step, probe.to_numpy()[:, 0])
                    energy = rec.select(quantity="energy")
                    if energy:
                        run.energy = (energy[0].epoch, energy[0].to_numpy())
    except Exception as exc:  # any damage: this run is listed as unreadable, the others reported
        run.problem = f"recording unreadable ({exc if isinstance(exc, CortexsimError) else repr(exc)})"
        return run
    if run.status != "complete":
        run.problem = f"status {run.status}"
    elif not complete:
        run.problem = "recording incomplete"
    elif run.supervised and len(run.metrics.get("test_accuracy", ())) == 0 \
            and len(run.metrics.get("test_loss", ())) == 0:
        run.problem = "no test accuracy recorded"  # unsupervised rules record test_loss instead
    return run


def read_study_folder(out_dir: str | os.PathLike[str]) -> tuple[dict[str, Any], list[RunData]]:
    """Read ``OUT/study.json`` and every run's recording (metrics, alignment, energy)."""
    out = Path(out_dir)
    study_file = out / "study.json"
    if not study_file.is_file():
        raise FormatError(f"{out}: not a study folder (no study.json)")
    study = read_json(study_file, "study index")
    entries = study.get("runs", []) if isinstance(study, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries) \
            or not isinstance(study.get("plan", {}), dict):
        raise FormatError(f"{study_file}: not a study index (expected a table with a plan and a list of "
                          f"runs); rerun the study with --resume to write it again")
    runs = [_read_run(out, entry) for entry in entries]
    return study, runs
