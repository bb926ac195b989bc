"""The simulator a user holds for one run: model, rule, optimizer, data,
backend, probes and checkpoints in one object.

    with cs.Simulator(spec, cs.PredictiveCoding(), cs.Adam(1e-3), data,
                      epochs=10, probes=[cs.Probe("energy")], recording="runs/pc.h5") as sim:
        print(sim.schedule())         # every operation in its slot
        history = sim.run()           # resume=True continues a killed run
        energy = sim.recorded("energy")

A description (``HierarchySpec`` or a table) is built on the chosen backend
with the run's seed; a built ``Hierarchy`` is used as it is. The scheduler runs
the loop; with a ``recording`` path, a recorder and a checkpointer are attached
to its slots (``RecordedRun``). ``Simulator.trained`` rebuilds a finished
run's model from its checkpoint, for experiments and reports.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigurationError
from ..model.hierarchy import Hierarchy, build
from ..model.spec import HierarchySpec
from ..optim import Adam, Optimizer, Schedule
from ..recording import open_recording
from ..rules import Rule, make_rule
from .checkpoint import load_checkpoint
from .probes import Probe, unsupported
from .recorded import RecordedRun
from .scheduler import Event, Scheduler

__all__ = ["Simulator"]

DATA_KEYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def _arrays(data: Any) -> dict[str, Any]:
    """The named arrays of ``data``: a mapping, or an object with those attributes
    (``cortexsim.data.Dataset``); a pair ``(x, y)`` is training data alone."""
    if isinstance(data, tuple) and len(data) == 2:
        return {"x_train": data[0], "y_train": data[1]}
    if isinstance(data, Mapping):
        unknown = sorted(set(data) - set(DATA_KEYS))
        if unknown:
            raise ConfigurationError(f"data.{unknown[0]}: unknown key; allowed: {', '.join(DATA_KEYS)}")
        return dict(data)
    if not hasattr(data, "x_train"):  # a data object, not a rule: duck typing is its contract
        raise ConfigurationError(
            f"data: expected a Dataset, a mapping of {', '.join(DATA_KEYS)} or a pair (x, y), got {data!r}"
        )
    return {key: getattr(data, key, None) for key in DATA_KEYS}


class Simulator:
    """One run of a rule on a model.

    Parameters
    ----------
    model : HierarchySpec, mapping or Hierarchy
        The description (built here with ``seed`` on ``backend``) or a built model.
    rule : Rule or str
        A rule object, or a registered rule name built with its defaults.
    optimizer : Optimizer, optional
        Default ``Adam(lr=1e-3)``.
    data : Dataset, mapping or (x, y), optional
        Training and held-out arrays on the host (``x_train``, ``y_train``,
        ``x_val``, ``y_val``, ``x_test``, ``y_test``). Labels are dropped for
        rules that learn without them. None: a simulator that can be restored
        and inspected but not run.
    backend, dtype : str
        Where a description is built (default ``"numpy"``, ``"float32"``).
    seed : int
        Initial weights of a description, batch order and binarization.
    batch_size, epochs, check_every, binarize, lr_schedule :
        The schedule (``Scheduler``).
    probes : sequence of Probe
        What to record; a probe the rule cannot fill raises, or with
        ``unsupported_probes="skip"`` is left out (studies do so).
    recording : path, optional
        The HDF5 file the probes stream to, with a checkpoint beside it every
        ``checkpoint_every`` batches; required when probes are given.
    resume : bool
        Continue the killed run recorded at ``recording`` (or restore the
        finished one: ``complete`` is then True and ``run`` does nothing).
    config : mapping, optional
        Stored with the recording.
    compression : str
        Filter of the probes' data (``"none"``, ``"lzf"``, ``"gzip"``).
    """

    def __init__(
        self,
        model: HierarchySpec | Mapping[str, Any] | Hierarchy,
        rule: Rule | str,
        optimizer: Optimizer | None = None,
        data: Any = None,
        *,
        backend: str | None = None,
        dtype: str = "float32",
        seed: int = 0,
        batch_size: int = 128,
        epochs: int = 1,
        check_every: int = 1,
        binarize: str | None = None,
        lr_schedule: Schedule | None = None,
        probes: Sequence[Probe] = (),
        unsupported_probes: str = "raise",
        recording: str | os.PathLike[str] | None = None,
        checkpoint_every: int = 100,
        resume: bool = False,
        config: dict[str, Any] | None = None,
        compression: str = "none",
    ) -> None:
        if isinstance(model, Hierarchy):
            if backend is not None and backend != model.backend.name:
                raise ConfigurationError(
                    f"backend: the model is built on {model.backend.name!r}, not {backend!r}; "
                    f"pass its description to build it on {backend!r}"
                )
            self.hierarchy = model
        else:
            self.hierarchy = build(model, backend=backend or "numpy", dtype=dtype, seed=seed)
        self.rule = make_rule(rule) if isinstance(rule, str) else rule
        if not isinstance(self.rule, Rule):
            raise ConfigurationError(f"rule: expected a cortexsim.rules.Rule or a rule name, got {rule!r}")
        self.optimizer = optimizer if optimizer is not None else Adam(lr=1e-3)
        self.scheduler: Scheduler | None = None
        self._recorded: RecordedRun | None = None
        self.recording: Path | None = None if recording is None else Path(recording)
        if unsupported_probes not in ("raise", "skip"):
            raise ConfigurationError(f"unsupported_probes: 'raise' or 'skip', got {unsupported_probes!r}")
        if unsupported_probes == "skip":
            learned = self.rule.learned_parameters(self.hierarchy)
            probes = [p for p in probes if unsupported(
                p, self.rule.name, self.rule.capabilities, learned, self.hierarchy) is None]
        self.probes = tuple(probes)
        if self.probes and self.recording is None:
            raise ConfigurationError("probes: recording needs a file; pass recording='PATH.h5'")
        if data is None:
            return
        arrays = _arrays(data)
        if not self.rule.capabilities.supervised:  # a generative rule models the inputs alone
            arrays.update(y_train=None, y_val=None, y_test=None)
        self.scheduler = Scheduler(
            self.hierarchy, self.rule, self.optimizer, arrays["x_train"], arrays.get("y_train"),
            batch_size=batch_size, epochs=epochs, seed=seed, check_every=check_every,
            x_val=arrays.get("x_val"), y_val=arrays.get("y_val"),
            x_test=arrays.get("x_test"), y_test=arrays.get("y_test"), binarize=binarize,
            lr_schedule=lr_schedule,
        )
        if self.recording is not None:
            self._recorded = RecordedRun(
                self.scheduler, self.recording, self.probes, checkpoint_every=checkpoint_every,
                resume=resume, config=config, compression=compression,
            )

    @classmethod
    def trained(
        cls, model: HierarchySpec | Mapping[str, Any], rule: Rule | str,
        checkpoint: str | os.PathLike[str], *, backend: str = "numpy", dtype: str = "float32",
        seed: int = 0, rule_state: bool = True,
    ) -> Simulator:
        """The model of a finished run, built as the run built it and given the
        parameters from ``checkpoint``; with ``rule_state`` the rule continues
        its run-time state (generators, counters) too, otherwise it starts fresh."""
        sim = cls(model, rule, backend=backend, dtype=dtype, seed=seed)
        state, _ = load_checkpoint(checkpoint)
        sim.rule.prepare(sim.hierarchy)
        sim.hierarchy.load_parameters(state["parameters"])
        if rule_state and state.get("rule"):
            sim.rule.load_state_dict(state["rule"])
        return sim

    # -- the schedule ----------------------------------------------------------------
    def _loop(self) -> Scheduler:
        if self.scheduler is None:
            raise ConfigurationError("data: this simulator was made without data, so it cannot run")
        return self.scheduler

    def attach(self, slot: str, operation: Callable[[Event], Any], order: int = 0, name: str | None = None) -> None:
        """Run ``operation(event)`` in ``slot`` (``Scheduler.attach``)."""
        self._loop().attach(slot, operation, order=order, name=name)

    def detach(self, name: str) -> None:
        """Remove the operations called ``name``."""
        self._loop().detach(name)

    def observe_inference(self, callback: Callable[[int, int, int, Any], None]) -> None:
        """Call ``callback(step, epoch, t, snapshot)`` at every relaxation step."""
        self._loop().observe_inference(callback)

    def schedule(self) -> str:
        """The table of slots and the operations in each."""
        return self._loop().schedule()

    # -- running -----------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        """A resumed run that had finished: restored, nothing left to run."""
        return self._recorded is not None and self._recorded.complete

    @property
    def history(self) -> list[dict[str, float]]:
        """One dict of metrics per finished epoch."""
        return [] if self.scheduler is None else self.scheduler.history

    def run(self) -> list[dict[str, float]]:
        """Train to the last epoch (from where a resumed run stopped); returns ``history``."""
        loop = self._loop()
        if self._recorded is not None:
            self.recording = self._recorded.run()
        else:
            loop.run()
        return loop.history

    def recorded(self, probe: str) -> np.ndarray:
        """All rows recorded by the probe named ``probe``, as a host array."""
        if self.recording is None:
            raise ConfigurationError("probes: this simulator records nothing (no recording path)")
        with open_recording(self.recording) as recording:
            return recording[probe].to_numpy()

    def close(self) -> None:
        """Close a recording that was opened but never run (it stays resumable)."""
        if self._recorded is not None:
            self._recorded.close()

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        epochs = "no data" if self.scheduler is None else f"{self.scheduler.epochs} epochs"
        return f"Simulator({self.hierarchy!r}, rule={self.rule.name!r}, {epochs})"
