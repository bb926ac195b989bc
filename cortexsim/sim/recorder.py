"""The recorder: takes the rows the probes declare at the scheduler's slots,
buffers them on the backend and writes them to the HDF5 file in chunks.

Batch probes record at ``before_update`` — the state, the gradients the rule
proposes and the weights that produced them, before the optimizer changes
anything. Each probe owns a backend buffer of whole HDF5 chunks: recording is
a device-side copy, and a flush is one device-to-host copy per probe, so
memory stays bounded however long the run. Compressing and writing happen on
one background thread (h5py releases the GIL while it compresses and writes), so they
overlap the simulation; at most a few chunks wait in its queue.
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigurationError, DivergenceError
from .probes import UNITS, Probe, alignment, dims, row_shape, row_value, unsupported
from ..rules import ELBO, Backprop
from .scheduler import Event, Scheduler
from ..recording.schema import environment
from ..recording.writer import ProbeLayout, RecordingWriter, chunk_rows

__all__ = ["Recorder"]

_BUFFER_BYTES = 512 << 10  # small enough that the writer thread works while the run goes on
_MAX_PENDING = 4  # chunks queued for the writer thread before recording waits



class _BackpropGradient:
    """The reference of a discriminative rule's alignment: backprop's gradient
    at the rule's own state."""

    def __init__(self, rule: Any) -> None:
        self.backprop = Backprop(rule.loss)

    def __call__(self, event: Event) -> Any:
        return self.backprop.gradients(event.hierarchy, event.state)


class ELBOGradient:
    """The reference of a variational rule's alignment: the gradient of the
    negative ELBO (``elbo`` with ``k = 1``, the rule's likelihood and
    posterior) of the batch, averaged over ``SAMPLES`` draws seeded by the run's
    seed and the batch counter, so a resumed run draws the same; the rule's
    own noise stream is not touched. The ``elbo`` rule's own single-sample
    update against it is the ceiling that sampling noise leaves."""

    SAMPLES = 16

    def __init__(self, rule: Any, seed: int) -> None:
        self.likelihood = getattr(rule, "likelihood", "bernoulli")
        self.posterior = getattr(rule, "posterior", "bottom_up")
        self.seed = seed

    def __call__(self, event: Event) -> Any:
        seed = int(np.random.SeedSequence([self.seed, event.step]).generate_state(1)[0])
        elbo = ELBO(likelihood=self.likelihood, samples=self.SAMPLES, posterior=self.posterior, seed=seed)
        return elbo.gradients(event.hierarchy, elbo.infer(event.hierarchy, event.x))


class _Channel:
    """One probe's backend buffer and host-side indices."""

    def __init__(self, probe: Probe, shape: tuple[int, ...], scheduler: Scheduler) -> None:
        be = scheduler.hierarchy.backend
        self.probe = probe
        self.shape = shape
        row_bytes = max(1, int(np.prod(shape, dtype=np.int64)) * np.dtype(be.dtype_name).itemsize)
        per_chunk = chunk_rows(shape, be.dtype_name)
        # Whole chunks per flush: a partly filled compressed chunk is rewritten later.
        self.capacity = per_chunk * int(max(1, min(1024, _BUFFER_BYTES // row_bytes) // per_chunk))
        self.buffer = be.empty((self.capacity, *shape))
        self.rows = 0
        self.index: list[tuple[int, int, int]] = []

    def record(self, value: Any, step: int, epoch: int, inference_step: int = -1) -> bool:
        """Copy one row into the buffer; True when the buffer is full."""
        row = self.buffer[self.rows, ...]
        if self.shape and value.shape != self.shape:  # a short batch or an early-stopped trace
            row[...] = float("nan")
            region = tuple(slice(0, n) for n in value.shape)
            row[region] = value
        else:
            row[...] = value
        self.rows += 1
        self.index.append((step, epoch, inference_step))
        return self.rows == self.capacity


class Recorder:
    """Records probes of one run into an HDF5 file (docs/format.md).

    Parameters
    ----------
    path : path
        Final name of the recording; it is ``path + ".partial"`` until the run completes.
    probes : sequence of Probe
    config : mapping, optional
        The run's full configuration, stored as JSON for reruns.
    compression : str
        ``"none"`` (default), ``"lzf"`` or ``"gzip"`` for the probes' data
        (see ``RecordingWriter``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        probes: Sequence[Probe],
        config: dict[str, Any] | None = None,
        compression: str = "none",
    ) -> None:
        self.path = Path(path)
        self.compression = compression
        self.probes = list(probes)
        self.config = dict(config or {})
        names = [probe.name for probe in self.probes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigurationError(
                f"probes: two probes are named {duplicates[0]!r}; give one a different 'name'"
            )
        self.writer: RecordingWriter | None = None
        self.channels: list[_Channel] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cortexsim-recorder")
        self._pending: deque[Future[Any]] = deque()
        self.final_path: Path | None = None

    # -- set-up ------------------------------------------------------------------
    def attach(self, scheduler: Scheduler, resume: dict[str, Any] | None = None) -> None:
        """Create (or, with ``resume`` cursors from a checkpoint, reopen) the file
        and hook into the scheduler's slots."""
        hierarchy, rule = scheduler.hierarchy, scheduler.rule
        capabilities = rule.capabilities
        steps = capabilities.relaxation_steps
        learned = rule.learned_parameters(hierarchy)
        for i, probe in enumerate(self.probes):
            probe.validate(f"probes[{i}]", hierarchy)
            refused = unsupported(probe, rule.name, capabilities, learned, hierarchy)
            if refused is not None:
                field, reason = refused
                raise ConfigurationError(f"probes[{i}]{field}: {reason}")
        self.channels = [_Channel(p, row_shape(p, hierarchy, steps or 0), scheduler) for p in self.probes]
        self._area_index = {area.name: area.index for area in hierarchy.areas}
        self._batches = scheduler.data.batches_per_epoch(scheduler.batch_size)
        self.reference = None
        if any(p.quantity == "alignment" for p in self.probes):
            self.reference = (ELBOGradient(rule, scheduler.seed) if capabilities.setting == "variational"
                              else _BackpropGradient(rule))
        be = self.backend = hierarchy.backend
        if resume is not None:
            self.writer = RecordingWriter.reopen(self.path, resume["cursors"], resume["metric_rows"])
        else:
            layouts = [
                ProbeLayout(
                    name=c.probe.name,
                    row_shape=c.shape,
                    dtype=be.dtype_name,
                    attrs={
                        "quantity": c.probe.quantity,
                        "target": c.probe.target,
                        "unit": UNITS[c.probe.quantity] or c.probe.target,
                        "every": c.probe.every,
                        "every_unit": c.probe.every_unit,
                        "inference_every": c.probe.inference_every,
                        "samples": c.probe.samples if c.probe.quantity in ("activity", "error", "prediction") else 0,
                        "dims": json.dumps(dims(c.probe)),
                    },
                )
                for c in self.channels
            ]
            unsupervised = not capabilities.supervised
            metrics = (["train_loss"] if scheduler.data.y_train is not None or unsupervised else [])
            # a variational rule's energy is the objective it descends (beta-weighted, warm-up)
            metrics += ["energy"] if capabilities.energy_metric else []
            if capabilities.relaxation_tolerance is not None:  # how many relaxations met it (operations.py)
                metrics += ["converged_fraction", "mean_relaxation_steps"]
            metrics += ["validation_accuracy"] if scheduler.data.labels_val is not None else []
            metrics += ["test_accuracy"] if scheduler.data.labels_test is not None else []
            if capabilities.held_out_loss:  # an unsupervised rule's held-out loss (Scheduler)
                metrics += ["validation_loss"] if scheduler.data.x_val is not None else []
                metrics += ["test_loss"] if scheduler.data.x_test is not None else []
            metrics += ["seconds"]
            config = {**self.config, "probes": [asdict(p) for p in self.probes]}
            self.writer = RecordingWriter(
                self.path,
                attrs={"backend": be.name, "dtype": be.dtype_name, "seed": scheduler.seed, "rule": rule.name},
                config=config,
                environment=environment(be),
                probes=layouts,
                metrics=metrics,
                compression=self.compression,
            )
        scheduler.attach("before_update", self._after_batch, order=100, name=f"record {len(self.probes)} probes")
        self._inside = [c for c in self.channels if c.probe.inference_every]
        if self._inside:
            scheduler.observe_inference(self._during_inference)
        scheduler.attach("epoch_end", self._after_epoch, order=100, name="record epoch metrics")
        scheduler.attach("run_end", self._run_end, order=100, name="close recording")

    # -- taking rows --------------------------------------------------------------
    def _take(self, channels: list[_Channel], event: Event) -> None:
        aligned = None
        if self.reference is not None and any(c.probe.quantity == "alignment" for c in channels):
            aligned = alignment(event.hierarchy, event.gradients, self.reference(event))
        for channel in channels:
            value = row_value(channel.probe, event.hierarchy, event.state, event.gradients, aligned)
            if channel.record(value, event.step, event.epoch):
                self._flush(channel)

    def _during_inference(self, step: int, epoch: int, t: int, snapshot: Any) -> None:
        for channel in self._inside:
            probe = channel.probe
            if step % probe.every or t % probe.inference_every:
                continue
            l = self._area_index[probe.target]
            value = snapshot.activity(l) if probe.quantity == "activity" else snapshot.error(l)
            if channel.record(value[: min(probe.samples, value.shape[0]), ...], step, epoch, t):
                self._flush(channel)

    def _after_batch(self, event: Event) -> None:
        # Epoch probes take the row of the epoch's last batch here, while its state,
        # gradients and weights belong together: by ``epoch_end`` the optimizer has
        # moved the weights (alignment would mix two weight states) and the test-set
        # sweep may have overwritten the state's buffers.
        last = event.batch == self._batches - 1
        due = [
            c for c in self.channels
            if not c.probe.inference_every and (
                (c.probe.every_unit == "batch" and event.step % c.probe.every == 0)
                or (c.probe.every_unit == "epoch" and last and (event.epoch + 1) % c.probe.every == 0)
            )
        ]
        if due:
            self._take(due, event)

    def _after_epoch(self, event: Event) -> None:
        self._submit(self.writer.append_metrics, event.metrics["epoch"], dict(event.metrics))

    # -- writing ---------------------------------------------------------------------
    def _submit(self, write: Callable[..., Any], *args: Any) -> None:
        """Queue a write for the writer thread; wait while too many are queued."""
        self._pending.append(self._pool.submit(write, *args))
        while len(self._pending) > _MAX_PENDING:
            self._pending.popleft().result()  # also re-raises the writer's errors here

    def _drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def _flush(self, channel: _Channel) -> None:
        if channel.rows == 0:
            return
        host = self.backend.to_numpy(channel.buffer[: channel.rows, ...])
        index = np.asarray(channel.index, dtype=np.int64)
        self._submit(self.writer.append, channel.probe.name, host, index[:, 0], index[:, 1], index[:, 2])
        channel.rows = 0
        channel.index.clear()

    def flush(self) -> dict[str, Any]:
        """Write every buffered row and wait until it is on disk; returns the
        cursors a checkpoint stores."""
        for channel in self.channels:
            self._flush(channel)
        self._drain()
        return {
            "cursors": {c.probe.name: self.writer.rows(c.probe.name) for c in self.channels},
            "metric_rows": int(self.writer.file["metrics"]["epoch"].shape[0]),
        }

    def _run_end(self, event: Event) -> None:
        self.close(event.error)

    def close(self, error: BaseException | None = None, *, ran: bool = True) -> None:
        """Flush and close the file: complete when the run ended without ``error``,
        diverged on a ``DivergenceError``, otherwise (or when it never ``ran``)
        left partial and resumable from the last checkpoint. Closing twice is harmless."""
        if self.writer is None or not self.writer.file.id.valid:
            return
        try:
            self.flush()
        finally:
            self._pool.shutdown(wait=True)
            if error is None and ran:
                status = "complete"
            elif isinstance(error, DivergenceError):
                status = "diverged"
            else:
                status = "running"  # interrupted: resumable from the last checkpoint
            self.final_path = self.writer.close(status)
