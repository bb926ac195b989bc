"""The HDF5 writer of recordings (format in docs/format.md).

Everything is created before the first row, then the file switches to SWMR
mode, in which HDF5 keeps the file consistent for readers at every flush: a
killed run leaves a file that opens and holds every flushed row. Rows of a
chunk go to ``data`` first and are flushed before their indices are written,
so an index row that reads as written always points at data on disk.

Appending to a partly filled compressed chunk rewrites it elsewhere in the
file; the recorder flushes whole chunks except at checkpoints, so the space
left behind stays a small fraction of the file.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .. import __version__
from ..errors import FormatError, StorageError
from ..validation import check_choice
from .schema import FORMAT, FORMAT_VERSION, INDEX_FILL, PARTIAL_SUFFIX

__all__ = ["ProbeLayout", "RecordingWriter", "partial_path", "chunk_rows", "check_recording", "clear_write_flags",
           "recorded_rows"]

_CHUNK_BYTES = 64 << 10
_COPY_BYTES = 64 << 20
_INDEXES = ("step", "epoch", "inference_step")
# Appending to a compressed chunk rewrites it elsewhere in the file; tracking
# the freed space lets later chunks reuse it instead of growing the file.
_SPACE = {"fs_strategy": "fsm", "fs_persist": True}


@dataclass(frozen=True)
class ProbeLayout:
    """Everything the writer needs to create one probe's datasets."""

    name: str
    row_shape: tuple[int, ...]
    dtype: str
    attrs: Mapping[str, Any]


def partial_path(path: str | os.PathLike[str]) -> Path:
    """The temporary name a recording has until its run completes."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


COMPRESSIONS = ("lzf", "gzip", "none")


def _compression(name: str) -> dict[str, Any]:
    if name == "none":
        return {}
    if name == "lzf" and h5py.h5z.filter_avail(h5py.h5z.FILTER_LZF):
        return {"compression": "lzf", "shuffle": True}
    return {"compression": "gzip", "compression_opts": 4, "shuffle": True}


def chunk_rows(row_shape: tuple[int, ...], dtype: Any) -> int:
    """Rows per HDF5 chunk of a time series with rows of ``row_shape``."""
    row_bytes = max(1, int(np.prod(row_shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
    return int(max(1, min(1024, _CHUNK_BYTES // row_bytes)))


def _time_series(
    group: h5py.Group,
    name: str,
    row_shape: tuple[int, ...],
    dtype: Any,
    fill: Any = None,
    compression: str = "none",
) -> None:
    rows = chunk_rows(row_shape, dtype)
    group.create_dataset(
        name,
        shape=(0, *row_shape),
        maxshape=(None, *row_shape),
        chunks=(rows, *row_shape),
        dtype=dtype,
        fillvalue=fill,
        fletcher32=True,  # a checksum per chunk: a flipped bit is an error on reading, not a number
        **_compression(compression),
    )


def _append(dataset: h5py.Dataset, rows: np.ndarray) -> None:
    start = dataset.shape[0]
    dataset.resize(start + len(rows), axis=0)
    dataset[start:] = rows


def clear_write_flags(path: str | os.PathLike[str]) -> bool:
    """Clear the "open for writing" flags a killed SWMR writer left in the
    recording at ``path`` (rows and attributes kept), so that any HDF5 tool
    opens it. Returns whether they were set."""
    path = Path(path)
    try:
        with h5py.File(path, "r"):
            return False  # opens as it is: nothing to clear
    except OSError:
        pass
    try:
        _rewrite(path)
    except Exception as exc:
        raise FormatError(f"{path}: the recording is damaged ({type(exc).__name__}: {exc})") from None
    return True


def recorded_rows(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Rows on disk of a (possibly killed) recording: ``{"probes": {name:
    rows}, "metrics": rows}``, a probe's rows being the fewest of its data and
    index series. Reads every stored value once, so a damaged chunk (its
    checksum) or header is found: ``FormatError`` naming the file and why."""
    path = Path(path)
    try:
        with _open_to_read(path) as f:
            probes = {}
            for name, group in f["probes"].items():
                counts = []
                for series in ("data",) + _INDEXES:
                    dataset = group[series]
                    _read_all(dataset)
                    counts.append(int(dataset.shape[0]))
                probes[name] = min(counts)
            metrics = f["metrics"]
            for dataset in metrics.values():
                _read_all(dataset)
            return {"probes": probes, "metrics": min(int(d.shape[0]) for d in metrics.values())}
    except Exception as exc:  # OSError, RuntimeError, KeyError from a damaged file
        raise FormatError(f"{path}: the recording is damaged ({type(exc).__name__}: {exc})") from None


_CHECK = (
    "import json, sys\n"
    "from cortexsim.errors import FormatError\n"
    "from cortexsim.recording.writer import recorded_rows\n"
    "try:\n"
    "    print(json.dumps({'rows': recorded_rows(sys.argv[1])}))\n"
    "except FormatError as exc:\n"
    "    print(json.dumps({'error': str(exc)}))\n"
)


def check_recording(path: str | os.PathLike[str], timeout: float = 600.0) -> dict[str, Any]:
    """:func:`recorded_rows` in a fresh interpreter, so that a file damaged in a
    way that crashes the HDF5 library (it can segfault on some) is reported as
    a ``FormatError`` instead of ending the caller. (A forked child is not
    safe: HDF5's state does not survive ``fork``.) About half a second per file."""
    path = Path(path)
    try:
        done = subprocess.run([sys.executable, "-c", _CHECK, str(path)], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FormatError(f"{path}: the recording is damaged (reading it did not end in {timeout:g} s)") from None
    try:
        message = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise FormatError(f"{path}: the recording is damaged (the HDF5 library crashed reading it, "
                          f"exit status {done.returncode})") from None
    if "error" in message:
        raise FormatError(message["error"])
    return message["rows"]


def _open_to_read(path: Path) -> h5py.File:
    """Open as any reader would; only a file a killed SWMR writer left flagged
    is opened as a SWMR reader (which retries reads that fail their checksum,
    slowly, so a damaged file is not opened that way first)."""
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        if "open for write" not in str(exc) and "consistency flags" not in str(exc):
            raise
    return h5py.File(path, "r", libver="latest", swmr=True)


def _read_all(dataset: h5py.Dataset) -> None:
    block = max(1, _COPY_BYTES // max(1, dataset.dtype.itemsize * int(np.prod(dataset.shape[1:]))))
    for start in range(0, dataset.shape[0], block):
        dataset[start: start + block]


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _rewrite(
    path: Path, cursors: Mapping[str, int] | None = None, metric_rows: int | None = None
) -> None:
    """Copy a recording into a fresh file and replace it, keeping only the
    first ``cursors[probe]`` / ``metric_rows`` rows where those are given.

    A killed SWMR writer leaves "file in use" flags that block opening for
    writing; a SWMR reader ignores them, so the copy also clears them.
    """
    fresh = path.with_name(path.name + ".rewrite")
    with h5py.File(path, "r", libver="latest", swmr=True) as old, h5py.File(
        fresh, "w", libver="latest", **_SPACE
    ) as new:
        new.attrs.update(dict(old.attrs))
        for name in ("config", "environment"):
            new.create_dataset(name, data=old[name][()])
        new.require_group("probes")
        for group_name in ["metrics"] + [f"probes/{p}" for p in old["probes"]]:
            if group_name == "metrics":
                keep = metric_rows
            else:
                keep = None if cursors is None else cursors.get(group_name[len("probes/"):], 0)
            source, target = old[group_name], new.require_group(group_name)
            target.attrs.update(dict(source.attrs))
            for name, dataset in source.items():
                compression = "none" if dataset.compression is None else dataset.compression
                _time_series(target, name, dataset.shape[1:], dataset.dtype, dataset.fillvalue, compression)
                rows = dataset.shape[0] if keep is None else min(keep, dataset.shape[0])
                block = max(1, _COPY_BYTES // max(1, dataset.dtype.itemsize * int(np.prod(dataset.shape[1:]))))
                for start in range(0, rows, block):  # bounded memory however long the run
                    _append(target[name], dataset[start : min(start + block, rows)])
    _fsync(fresh)
    os.replace(fresh, path)


class RecordingWriter:
    """Creates a recording under its temporary name and appends rows to it.

    Parameters
    ----------
    path : path
        Final name of the recording (``.h5``); the file is written as
        ``path + ".partial"`` until ``complete``.
    attrs : mapping
        Root attributes besides the format's own (backend, dtype, seed, rule).
    config, environment : mappings
        Stored as JSON text in ``/config`` and ``/environment``.
    probes : sequence of ProbeLayout
    metrics : sequence of str
        Names of the per-epoch metrics.
    compression : str
        Filter of the probes' data: ``"none"`` (default), ``"lzf"`` or
        ``"gzip"`` (both with shuffle). Recorded activities and errors are
        float noise to a compressor: on the benchmark of bench/recording.py
        lzf saved 6 % of the file and cost 13-15 % of the run time, where
        writing them plain cost under 5 %. Index datasets always use lzf.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        attrs: Mapping[str, Any],
        config: Mapping[str, Any],
        environment: Mapping[str, Any],
        probes: Sequence[ProbeLayout],
        metrics: Sequence[str],
        compression: str = "none",
    ) -> None:
        check_choice(compression, COMPRESSIONS, "recording.compression")
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._writing():
            with h5py.File(self.partial, "w", libver="latest", **_SPACE) as f:
                f.attrs.update(
                    {
                        "format": FORMAT,
                        "format_version": FORMAT_VERSION,
                        "cortexsim_version": __version__,
                        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                        "status": "running",
                        **attrs,
                    }
                )
                f.create_dataset("config", data=json.dumps(config, default=str))
                f.create_dataset("environment", data=json.dumps(environment, default=str))
                f.create_group("probes")  # present even when nothing is probed
                group = f.create_group("metrics")
                _time_series(group, "epoch", (), np.int64, INDEX_FILL)
                for name in metrics:
                    _time_series(group, name, (), np.float64, np.nan)
                for layout in probes:
                    probe = f.create_group(f"probes/{layout.name}")
                    probe.attrs.update(layout.attrs)
                    _time_series(probe, "data", layout.row_shape, layout.dtype, np.nan, compression)
                    for index in _INDEXES:
                        _time_series(probe, index, (), np.int64, INDEX_FILL)
            self._open()

    @classmethod
    def reopen(
        cls, path: str | os.PathLike[str], cursors: Mapping[str, int], metric_rows: int
    ) -> RecordingWriter:
        """Continue a recording after a crash: keep the first ``cursors[probe]``
        rows of every probe and ``metric_rows`` epoch rows (what the checkpoint
        being resumed had flushed), drop the rest, and open it for appending."""
        writer = cls.__new__(cls)
        writer.path = Path(path)
        writer.partial = partial_path(writer.path)
        _rewrite(writer.partial, cursors, metric_rows)
        writer._open()
        return writer

    def _open(self) -> None:
        self.file = h5py.File(self.partial, "r+", libver="latest")
        self.file.swmr_mode = True

    # -- appending ------------------------------------------------------------
    def append(self, probe: str, rows: np.ndarray, step: np.ndarray, epoch: np.ndarray, inference_step: np.ndarray) -> None:
        """Append rows of one probe with their indices, data first."""
        with self._writing():
            group = self.file["probes"][probe]
            _append(group["data"], rows)
            self.file.flush()
            for name, values in (("step", step), ("epoch", epoch), ("inference_step", inference_step)):
                _append(group[name], np.asarray(values, dtype=np.int64))
            self.file.flush()

    def append_metrics(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Append one epoch's metrics (names not given are stored as NaN)."""
        with self._writing():
            group = self.file["metrics"]
            for name, dataset in group.items():
                if name != "epoch":
                    _append(dataset, np.array([metrics.get(name, np.nan)], dtype=np.float64))
            self.file.flush()
            _append(group["epoch"], np.array([epoch], dtype=np.int64))
            self.file.flush()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A write that fails (a full disk) is a ``StorageError``: the rows up to
        the last checkpoint stay, those after it are dropped on resume."""
        try:
            yield
        except (OSError, RuntimeError) as exc:  # h5py reports some failed writes as RuntimeError
            if isinstance(exc, RuntimeError) and "write failed" not in str(exc):
                raise
            reason = "No space left on device" if "errno = 28" in str(exc) else (
                getattr(exc, "strerror", None) or str(exc).split("(")[0].strip())
            raise StorageError(
                f"{self.partial}: could not write ({reason}); the rows up to the last "
                f"checkpoint are kept; free space and continue with --resume"
            ) from None

    def rows(self, probe: str) -> int:
        """Rows of ``probe`` on disk."""
        return int(self.file["probes"][probe]["step"].shape[0])

    # -- ending ------------------------------------------------------------------
    def close(self, status: str = "running") -> Path:
        """Close the file and set its status; ``"complete"`` also renames it to
        its final name (the completion signal). Returns the file's path."""
        with self._writing():
            if self.file.id.valid:
                self.file.flush()
                self.file.close()
            # SWMR mode forbids changing attributes, so the status is set after closing.
            with h5py.File(self.partial, "r+", libver="latest") as f:
                f.attrs["status"] = status
            _fsync(self.partial)
        if status != "complete":
            return self.partial
        os.replace(self.partial, self.path)
        return self.path
