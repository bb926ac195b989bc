"""Read a recording back (``cortexsim.open``), following ``docs/format.md``.

Opening reads only the small parts (attributes, JSON texts, per-epoch metrics);
probe rows stay on disk until asked for, so a file larger than memory can be sliced.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import CortexsimError, FormatError, did_you_mean
from .schema import FORMAT, FORMAT_VERSION, PARTIAL_SUFFIX

__all__ = ["open_recording", "Recording", "ProbeData"]


def _plain(value: Any) -> Any:
    """Convert an HDF5 attribute value to plain Python (str, int, float, list)."""
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def _written(index: np.ndarray) -> int:
    """Count the leading rows of an index array that hold data, not the -1 fill."""
    bad = np.flatnonzero(np.asarray(index) < 0)
    return int(bad[0]) if bad.size else len(index)


def _unreadable(path: Path, exc: BaseException) -> FormatError:
    """Explain why HDF5 could not read ``path``, from its error ``exc``."""
    cut = "truncated" in str(exc).lower()
    reason = "truncated (an interrupted copy or a full disk?)" if cut else "corrupt or unreadable"
    return FormatError(f"{path}: the HDF5 file is {reason} [HDF5: {exc}]")


def _meta(key: str, kind: type, doc: str) -> property:
    return property(lambda self: kind(self._attr(key)), doc=doc)


def _index(name: str, doc: str) -> property:
    return property(lambda self: self._read(name, slice(0, self.n_rows)), doc=doc)


class ProbeData:
    """One probe's rows, read lazily from its open group ``/probes/<name>`` of file ``path``."""

    def __init__(self, name: str, group: h5py.Group, path: Path) -> None:
        self.name, self._group, self._path = name, group, path
        self._n_rows: int | None = None

    def _attr(self, key: str) -> Any:
        if key not in self._group.attrs:
            raise FormatError(f"{self._path}: probe {self.name!r} lacks the attribute {key!r}")
        return _plain(self._group.attrs[key])

    def _read(self, dataset: str, selection: Any) -> np.ndarray:
        """Read ``selection`` of one dataset; HDF5 failures become FormatError."""
        if dataset not in self._group:
            raise FormatError(f"{self._path}: probe {self.name!r} has no {dataset!r} dataset")
        try:
            return np.asarray(self._group[dataset][selection])
        except OSError as exc:
            raise _unreadable(self._path, exc) from exc

    quantity = _meta("quantity", str, "What was recorded: activity, weights, metric, ...")
    target = _meta("target", str, "Area, parameter or metric name recorded.")
    unit = _meta("unit", str, "Physical meaning of the values.")
    every = _meta("every", int, "Sampling interval, in ``every_unit``.")
    every_unit = _meta("every_unit", str, "``batch`` or ``epoch``.")
    inference_every = _meta("inference_every", int, "Relaxation steps per row (0: after).")
    samples = _meta("samples", int, "Batch rows kept per record (0: not per-sample).")
    step = _index("step", "(n_rows,) int64: global batch (0-based) of each row.")
    epoch = _index("epoch", "(n_rows,) int64: epoch (0-based) of each row.")
    inference_step = _index("inference_step", "(n_rows,) int64: relaxation step, -1 after.")

    @property
    def dims(self) -> list[str]:
        """Names of the axes of the data, time first."""
        dims = self._attr("dims")
        return [str(d) for d in (json.loads(dims) if isinstance(dims, str) else dims)]

    @property
    def n_rows(self) -> int:
        """Number of valid rows: unwritten rows of a killed run keep step == -1."""
        if self._n_rows is None:
            lengths = [len(self._group[d]) for d in ("data", "epoch", "inference_step")]
            # Cached: a Recording is a snapshot, even of a file still being written.
            self._n_rows = min(_written(self._read("step", slice(None))), *lengths)
        return self._n_rows

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the valid data, ``(n_rows, *row_shape)``."""
        return (self.n_rows, *self._group["data"].shape[1:])

    def to_numpy(self) -> np.ndarray:
        """Return every valid row, shape ``(n_rows, *row_shape)``."""
        return self._read("data", slice(0, self.n_rows))

    def __getitem__(self, key: Any) -> np.ndarray:
        """Read only the asked rows; the first index is time, the rest apply to each row."""
        key = key if isinstance(key, tuple) else (key,)
        time, n = (key[0] if key else Ellipsis), self.n_rows
        if time is Ellipsis:
            return self.to_numpy()[key]
        if isinstance(time, slice) and time.indices(n)[2] > 0:
            rows = self._read("data", slice(*time.indices(n)))
        else:
            index = np.arange(n)[time]  # numpy resolves negatives and masks, and checks bounds
            if index.ndim == 0:
                return self._read("data", int(index))[key[1:]]
            # h5py reads increasing unique rows only; order and repeats are restored in memory.
            unique = np.unique(index)
            rows = self._read("data", unique if unique.size else slice(0, 0))
            rows = rows[np.searchsorted(unique, index)]
        return rows[(slice(None), *key[1:])]

    def at(self, step: int | None = None, epoch: int | None = None) -> np.ndarray:
        """Return the ``(k, *row_shape)`` rows taken at a batch ``step`` and/or ``epoch``.

        Parameters
        ----------
        step, epoch : int, optional
            Global batch and epoch (0-based); k > 1 when ``inference_every > 0``, 0 if none.
        """
        if step is None and epoch is None:
            raise TypeError("at() needs step=, epoch= or both")
        mask = np.ones(self.n_rows, dtype=bool)
        if step is not None:
            mask &= self.step == step
        if epoch is not None:
            mask &= self.epoch == epoch
        return self[np.flatnonzero(mask)]

    def to_xarray(self) -> Any:
        """Return the valid rows as an ``xarray.DataArray``, step and epoch on time."""
        try:
            import xarray
        except ImportError as exc:
            raise CortexsimError("to_xarray() needs xarray: pip install xarray") from exc
        data, dims = self.to_numpy(), self.dims
        coords = {"step": (dims[0], self.step), "epoch": (dims[0], self.epoch)}
        # Energy rows have an axis named inference_step; a time coordinate may not reuse it.
        if "inference_step" not in dims:
            coords["inference_step"] = (dims[0], self.inference_step)
        attrs = {k: _plain(v) for k, v in self._group.attrs.items() if k != "dims"}
        return xarray.DataArray(data, dims=dims, coords=coords, name=self.name, attrs=attrs)

    def __repr__(self) -> str:
        if not self._group:  # the file is closed
            return f"<ProbeData {self.name} (closed)>"
        shape = "x".join(map(str, self.shape))
        return f"<ProbeData {self.name}: {self.quantity} of {self.target} [{self.unit}], {shape}>"


class _Probes(dict):
    """The name -> ProbeData dict, whose KeyError suggests a close name."""

    def __missing__(self, name: str) -> ProbeData:
        hint = did_you_mean(name, self)
        raise KeyError(f"{self.file} has no probe {name!r}{hint}; probes: {', '.join(self)}")


def _part(file: h5py.File, name: str, kind: type, path: Path) -> Any:
    """Return ``/name``, which the format says every recording has from its creation."""
    if not isinstance(file.get(name), kind):
        raise FormatError(f"{path}: not a complete cortexsim recording: /{name} is missing")
    return file[name]


def _json(file: h5py.File, name: str, path: Path) -> dict[str, Any]:
    try:
        return json.loads(_plain(_part(file, name, h5py.Dataset, path)[()]))
    except (json.JSONDecodeError, TypeError) as exc:
        raise FormatError(f"{path}: /{name} is not valid JSON ({exc})") from exc


class Recording:
    """An open recording (from :func:`open_recording`): metadata in memory, rows on disk."""

    def __init__(self, path: Path, file: h5py.File) -> None:
        self.path, self._file = path, file
        self.attrs: dict[str, Any] = {k: _plain(v) for k, v in file.attrs.items()}
        self.format_version = int(self.attrs["format_version"])
        self.status = str(self.attrs.get("status", "unknown"))
        self.config = _json(file, "config", path)
        self.environment = _json(file, "environment", path)
        group = _part(file, "metrics", h5py.Group, path)
        metrics = {k: v[()] for k, v in group.items() if isinstance(v, h5py.Dataset)}
        # As for probe steps, epochs that a killed run never wrote keep the -1 fill.
        n = _written(metrics["epoch"]) if "epoch" in metrics else None
        self.metrics: dict[str, np.ndarray] = {k: np.asarray(v)[:n] for k, v in metrics.items()}
        group = _part(file, "probes", h5py.Group, path)
        probes = ((k, ProbeData(k, g, path)) for k, g in group.items() if isinstance(g, h5py.Group))
        self.probes = _Probes(probes)
        self.probes.file = path.name

    def __getitem__(self, name: str) -> ProbeData:
        return self.probes[name]

    def select(self, quantity: str | None = None, target: str | None = None) -> list[ProbeData]:
        """Return the probes of ``quantity`` and/or ``target`` (every probe when both are None)."""
        probes = self.probes.values()
        return [p for p in probes if quantity in (None, p.quantity) and target in (None, p.target)]

    def close(self) -> None:
        """Close the file; arrays read earlier stay valid."""
        self._file.close()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        rule, backend = self.attrs.get("rule", "?"), self.attrs.get("backend", "?")
        head = f"<Recording {self.path.name}: {self.status}, rule {rule}, backend {backend}"
        if not self._file:
            return f"{head}, {len(self.probes)} probes, closed>"
        rows = sum(p.n_rows for p in self.probes.values())
        epochs = len(self.metrics.get("epoch", ()))
        return f"{head}, {len(self.probes)} probes, {rows} rows, {epochs} epochs>"


def _check_identity(path: Path, attrs: h5py.AttributeManager) -> None:
    """Refuse an HDF5 file that is not a recording this reader understands."""
    fmt = _plain(attrs.get("format"))
    if fmt != FORMAT:
        why = "no root attribute 'format'" if fmt is None else f"format is {fmt!r}, not {FORMAT!r}"
        raise FormatError(f"{path}: an HDF5 file but not a cortexsim recording ({why})")
    version = _plain(attrs.get("format_version"))
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise FormatError(f"{path}: invalid format_version {version!r} (not a positive integer)")
    if version > FORMAT_VERSION:
        raise FormatError(
            f"{path}: recording format version {version} is newer than this cortexsim reads "
            f"(version {FORMAT_VERSION}); upgrade cortexsim (pip install -U cortexsim)"
        )


def _open_h5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as first:
        try:
            # A writer killed in SWMR mode leaves "open for write" flags (HDF5 suggests
            # h5clear) and a live one holds a lock; SWMR read mode accepts both.
            return h5py.File(path, "r", libver="latest", swmr=True)
        except (OSError, RuntimeError):  # HDF5 reports some damaged headers as RuntimeError
            raise _unreadable(path, first) from first


def open_recording(path: str | os.PathLike[str]) -> Recording:
    """Open a recording (``cortexsim.open``); FormatError says why a file is refused.

    Parameters
    ----------
    path : str or os.PathLike
        ``NAME.h5``, or ``NAME.h5.partial`` (running, killed or diverged: opened with a
        RuntimeWarning, showing the rows flushed so far).
    """
    path = Path(os.fspath(path))
    if not path.is_file():
        raise FormatError(f"{path}: no such file" + (" (a directory)" if path.is_dir() else ""))
    if not h5py.is_hdf5(path):
        raise FormatError(f"{path}: not an HDF5 file, so not a cortexsim recording")
    file = _open_h5(path)
    try:
        _check_identity(path, file.attrs)
        recording = Recording(path, file)
    except BaseException as exc:
        file.close()
        if isinstance(exc, OSError) and not isinstance(exc, FormatError):
            raise _unreadable(path, exc) from exc  # a read past the part HDF5 could open
        raise
    # The rename from .partial is the writer's completion signal, whatever the status says.
    status, partial = recording.status, path.name.endswith(PARTIAL_SUFFIX)
    if status != "complete" or partial:
        why = f"status {status!r}" + (", .partial file" if partial else "")
        what = "diverged" if status == "diverged" else f"did not complete ({why})"
        message = f"{path}: the run {what}; only the rows flushed so far are shown"
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return recording
