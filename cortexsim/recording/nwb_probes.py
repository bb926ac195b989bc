"""How each probe of a recording becomes an NWB container (the layout is in
docs/format.md, "NWB export"; the reasons in ``cortexsim.recording.nwb``).

Needs pynwb (``cortexsim[nwb]``); the caller has checked it is there.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .reader import ProbeData, Recording

__all__ = ["WHOLE_MODEL", "Series", "module_of", "container", "probe_table"]

WHOLE_MODEL = "hierarchy"  # the processing module of the probes not of one area
_PER_AREA = ("activity", "error", "prediction", "kl", "weights", "update")
_OVERALL_ALIGNMENT = ("all", "recognition", "generative")
_BUFFER_GB = 0.25  # rows copied at a time: a probe larger than memory is streamed


def module_of(probe: ProbeData) -> str:
    """The area a probe belongs to (its target, or the area of its parameter), or WHOLE_MODEL."""
    target, quantity = probe.target, probe.quantity
    if quantity in _PER_AREA or (quantity == "alignment" and target not in _OVERALL_ALIGNMENT):
        return target.split(".")[0]
    return WHOLE_MODEL


def _length(selection: slice, n: int) -> int:
    return len(range(*selection.indices(n)))


class Series:
    """A probe as the export lays it out: time first, then, for a probe
    recorded inside inference, an axis of the relaxation steps recorded (NaN
    where a relaxation stopped before a step). ``read`` takes slices over that
    layout and reads only the rows they cover."""

    def __init__(self, probe: ProbeData) -> None:
        self.probe = probe
        self.dtype = probe._group["data"].dtype
        self.dims = probe.dims
        self.relaxation: np.ndarray | None = None
        step, epoch, row = probe.step, probe.epoch, probe.shape[1:]
        if probe.inference_every > 0 and probe.n_rows:
            times, first, batch = np.unique(step, return_index=True, return_inverse=True)
            self.relaxation, position = np.unique(probe.inference_step, return_inverse=True)
            self.rows = np.full((len(times), len(self.relaxation)), -1, dtype=np.int64)
            self.rows[batch, position] = np.arange(probe.n_rows)
            self.times, self.epochs = times, epoch[first]
            self.shape: tuple[int, ...] = (len(times), len(self.relaxation), *row)
            self.dims = [self.dims[0], "relaxation_step", *self.dims[1:]]
        else:
            self.times, self.epochs, self.shape = step, epoch, probe.shape

    def read(self, selection: tuple[slice, ...]) -> np.ndarray:
        """The values at ``selection`` (one slice per axis of ``shape``)."""
        if self.relaxation is None:
            return self.probe[selection]
        rows, rest = self.rows[selection[0], selection[1]], selection[2:]
        shape = (*rows.shape, *(_length(s, n) for s, n in zip(rest, self.shape[2:])))
        out = np.full(shape, np.nan, dtype=self.dtype)
        flat = rows.reshape(-1)
        have = flat >= 0
        if have.any():
            out.reshape(-1, *shape[2:])[have] = self.probe[(flat[have], *rest)]
        return out

    @property
    def fits_time_series(self) -> bool:
        """Whether time is the longest axis, which nwbinspector requires of a TimeSeries."""
        return not any(n > self.shape[0] for n in self.shape[1:])

    def timing(self) -> dict[str, Any]:
        """``starting_time`` and ``rate`` when the steps are evenly spaced, else ``timestamps``
        (one second per batch)."""
        gaps = np.diff(self.times)
        if len(self.times) > 1 and gaps[0] > 0 and np.all(gaps == gaps[0]):
            return {"starting_time": float(self.times[0]), "rate": 1.0 / float(gaps[0])}
        return {"timestamps": self.times.astype(np.float64)}

    def describe(self) -> str:
        p = self.probe
        what = f"{p.quantity} of {p.target}" if p.target else p.quantity
        if p.samples:
            what += f", the first {p.samples} samples of each batch"
        sampled = f"every {p.every} {p.every_unit}{'s' if p.every > 1 else ''}"
        if self.relaxation is not None:
            sampled += f", at relaxation steps {', '.join(map(str, self.relaxation))}"
        return (f"cortexsim probe {p.name!r}: {what} ({p.unit}); {sampled}. Axes: {', '.join(self.dims)}. "
                f"Time counts one second per training batch (the recording's step).")


def _streamed(series: Series) -> Any:
    from hdmf.data_utils import GenericDataChunkIterator

    class Chunks(GenericDataChunkIterator):
        def _get_data(self, selection: tuple[slice, ...]) -> np.ndarray:
            return series.read(selection)

        def _get_maxshape(self) -> tuple[int, ...]:
            return series.shape

        def _get_dtype(self) -> np.dtype:
            return series.dtype

    return Chunks(buffer_gb=_BUFFER_GB)


def container(series: Series) -> Any:
    """A TimeSeries of the probe, or a DynamicTable (one row per time point)
    when a row has an axis longer than time."""
    p, description = series.probe, series.describe()
    if series.fits_time_series:
        from pynwb import TimeSeries

        return TimeSeries(name=p.name, data=_streamed(series), unit=p.unit or p.target or "n/a",
                          description=description, comments=f"quantity {p.quantity}; target {p.target or '-'}",
                          **series.timing())
    from hdmf.common import DynamicTable, VectorData

    # Few time points by construction, so the rows are read whole.
    data = series.read(tuple(slice(0, n) for n in series.shape))
    columns = [
        VectorData(name="step", description="the recording's step: global batch (0-based) of the row",
                   data=series.times),
        VectorData(name="epoch", description="epoch (0-based) of the row", data=series.epochs),
        VectorData(name="data", description=f"the recorded values ({p.unit}); axes {', '.join(series.dims)}",
                   data=data),
    ]
    return DynamicTable(name=p.name, columns=columns, description=description + " A table, not a "
                        "TimeSeries: a row has an axis longer than time.")


def probe_table(recording: Recording, placed: dict[str, str], series: dict[str, Series]) -> Any:
    """The table ``probes``: every probe's attributes, where it went, and the
    recording's exact indices of its rows (ragged columns)."""
    from hdmf.common import DynamicTable

    probes = list(recording.probes.values())
    table = DynamicTable(name="probes", id=list(range(len(probes))), description="every probe of the "
                         "recording: its attributes (docs/format.md), where the export put it, and the "
                         "recording's indices of its rows")
    plain = {
        "probe": ("the probe's name in the recording", [p.name for p in probes]),
        "quantity": ("what was recorded", [p.quantity for p in probes]),
        "target": ("area, parameter or metric recorded", [p.target for p in probes]),
        "unit": ("physical meaning of the values", [p.unit for p in probes]),
        "every": ("sampling interval, in every_unit", [p.every for p in probes]),
        "every_unit": ("batch or epoch", [p.every_unit for p in probes]),
        "inference_every": ("relaxation steps between rows (0: after inference)",
                            [p.inference_every for p in probes]),
        "samples": ("batch rows kept per record (0: not per-sample)", [p.samples for p in probes]),
        "nwb_path": ("where the export put the probe ('' when it has no rows)",
                     [placed.get(p.name, "") for p in probes]),
        "nwb_dims": ("axes of the exported data, as JSON text",
                     [json.dumps(series[p.name].dims if p.name in series else p.dims) for p in probes]),
    }
    for name, (description, values) in plain.items():
        table.add_column(name=name, description=description, data=values)
    ragged = {
        "step": ("the recording's step of each row: global batch (0-based)", [p.step for p in probes]),
        "epoch": ("the recording's epoch (0-based) of each row", [p.epoch for p in probes]),
        "inference_step": ("relaxation step of each row, -1 for rows after inference",
                           [p.inference_step for p in probes]),
    }
    for name, (description, values) in ragged.items():
        ends = np.cumsum([len(v) for v in values]).tolist()
        flat = np.concatenate(values).astype(np.int64) if values else np.empty(0, np.int64)
        table.add_column(name=name, description=description, data=flat, index=ends)
    return table
