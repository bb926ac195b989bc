"""What an in-silico experiment returns, and how it is kept on disk.

An experiment presents stimuli to a trained model and reads its responses. It
is a function ``run(hierarchy, rule, *, seed, **settings) -> ExperimentResult``
that leaves the model as it found it; a study runs it on every complete run
(``[[experiments]]``) and saves the result next to the recording as
``LABEL/seedS.KIND.h5``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import FormatError

__all__ = ["ExperimentResult", "load_result", "save_result"]

_FORMAT = "cortexsim-experiment"


@dataclass
class ExperimentResult:
    """The outcome of one experiment on one trained model.

    Parameters
    ----------
    kind : str
        The experiment's name (``"end_stopping"``).
    arrays : dict of str to numpy.ndarray
        The measured responses and the stimulus parameters, on the host.
    summary : dict of str to float
        The few numbers a report prints (fractions, mean indices).
    settings : dict
        The settings the experiment ran with, as plain data.
    """

    kind: str
    arrays: dict[str, np.ndarray]
    summary: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)


def save_result(result: ExperimentResult, path: str | os.PathLike[str]) -> Path:
    """Write ``result`` to an HDF5 file (temporary name, then rename)."""
    path = Path(path)
    temporary = path.with_name(path.name + ".partial")
    with h5py.File(temporary, "w") as f:
        f.attrs["format"] = _FORMAT
        f.attrs["kind"] = result.kind
        f.attrs["summary"] = json.dumps(result.summary)
        f.attrs["settings"] = json.dumps(result.settings)
        for name, array in result.arrays.items():
            f.create_dataset(name, data=np.asarray(array))
    os.replace(temporary, path)
    return path


def load_result(path: str | os.PathLike[str]) -> ExperimentResult:
    """Read a file written by :func:`save_result`."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != _FORMAT:
                raise FormatError(f"{path}: not a cortexsim experiment file")
            return ExperimentResult(
                kind=str(f.attrs["kind"]),
                arrays={name: f[name][()] for name in f},
                summary=json.loads(f.attrs["summary"]),
                settings=json.loads(f.attrs["settings"]),
            )
    except OSError as exc:
        raise FormatError(f"{path}: cannot be read as an experiment file ({exc})") from None
