"""The phase loop: epochs x batches, each batch a sequence of named slots in
which operations run -- the scheduler's own (inference, the rule's update, the
optimizer step, sums and checks, epoch metrics; ``operations.py``) and any
callback a user, a recorder or a checkpointer attaches::

    run_start, epoch_start,
      per batch: before_inference, inference, after_inference, learning,
                 before_update, update, after_learning
    evaluation, epoch_end, run_end

Operations in a slot run by (order, attachment order); ``schedule()`` prints
the table. The scheduler owns the clock (epoch, batch, step), advanced after
``update``; the data order of epoch ``e`` is drawn from a generator seeded
with ``(seed, e)`` (``data.py``), so a run is a deterministic function of its
seeds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import ConfigurationError, did_you_mean
from ..inference import State
from ..model.hierarchy import Hierarchy
from ..optim import Optimizer, Schedule
from ..rules import Gradients, Rule
from ..validation import check_int
from .data import RunData, accuracy
from .operations import BUILT_IN, set_learning_rate

__all__ = ["Scheduler", "Event", "SLOTS", "BATCH_SLOTS"]

BATCH_SLOTS = (
    "before_inference",
    "inference",
    "after_inference",
    "learning",
    "before_update",
    "update",
    "after_learning",
)
SLOTS = ("run_start", "epoch_start") + BATCH_SLOTS + ("evaluation", "epoch_end", "run_end")


@dataclass
class Event:
    """What an operation sees: where the loop is and what the batch produced so far."""

    slot: str
    scheduler: Scheduler
    epoch: int
    batch: int = -1
    step: int = 0
    x: Any = None
    y: Any = None
    state: State | None = None
    gradients: Gradients | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: BaseException | None = None

    @property
    def hierarchy(self) -> Hierarchy:
        """The model being trained."""
        return self.scheduler.hierarchy


class Scheduler:
    """Trains a hierarchy with a rule and an optimizer on arrays of data.

    Parameters
    ----------
    hierarchy : Hierarchy
        The model; its parameters change in place.
    rule : Rule
        Inference plus learning (``Backprop``, ``PredictiveCoding``, ...).
    optimizer : Optimizer
        Applies the rule's gradients.
    x_train : numpy array (N, n_0)
        Training inputs on the host; copied to the backend once.
    y_train : numpy array (N,) of int labels, (N, n_L) targets, or None
        Integer labels become one-hot targets of the top area; None for
        generative (unsupervised) rules.
    batch_size, epochs : int
    seed : int
        Seeds the data order.
    x_test, y_test : numpy arrays, optional
        Held-out data; with integer labels, test accuracy of the feedforward
        sweep is measured at every epoch end.
    x_val, y_val : numpy arrays, optional
        Validation data held out from training; its accuracy is measured at
        every epoch end (for choosing the best epoch without the test set).
    check_every : int
        Look for NaN or Inf every this many batches (0: only at epoch ends);
        each check brings one number to the host.
    binarize : str or None
        ``"dynamic"``: a fresh Bernoulli sample of every batch (``RunData``).
    lr_schedule : cortexsim.optim.Schedule, optional
        Sets the optimizer's rate factor before every update from (epoch,
        step); each epoch's metrics then carry ``learning_rate``, the base
        rate times the factor of the epoch's last batch.

    The data live in ``data`` (a ``RunData``). A rule whose capabilities declare
    a ``held_out_loss`` (unsupervised rules such as ``elbo``) adds
    ``validation_loss`` and ``test_loss`` to each epoch's metrics.
    """

    def __init__(
        self,
        hierarchy: Hierarchy,
        rule: Rule,
        optimizer: Optimizer,
        x_train: np.ndarray,
        y_train: np.ndarray | None = None,
        *,
        batch_size: int = 128,
        epochs: int = 1,
        seed: int = 0,
        x_test: np.ndarray | None = None,
        y_test: np.ndarray | None = None,
        check_every: int = 1,
        x_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        binarize: str | None = None,
        lr_schedule: Schedule | None = None,
    ) -> None:
        self.hierarchy = hierarchy
        self.rule = rule
        self.optimizer = optimizer
        rule.prepare(hierarchy)  # parameters a rule adds to the areas exist from the start
        self.batch_size = check_int(batch_size, "schedule.batch_size", minimum=1)
        self.check_every = check_int(check_every, "schedule.check_every")
        self.epochs = check_int(epochs, "schedule.epochs", minimum=1)
        self.seed = int(seed)
        self.data = RunData(hierarchy, x_train, y_train, x_val=x_val, y_val=y_val, x_test=x_test,
                            y_test=y_test, binarize=binarize, seed=self.seed)
        self.callbacks: dict[str, list[tuple[int, int, str, Callable[[Event], Any]]]] = {
            slot: [] for slot in SLOTS
        }
        for slot, order, name, operation in BUILT_IN:
            self.attach(slot, operation, order=order, name=name)
        self.lr_schedule = lr_schedule
        if lr_schedule is not None:
            self.attach("update", set_learning_rate, order=-10, name="learning-rate schedule")
        self.history: list[dict[str, float]] = []
        self.step = 0  # batches completed over the whole run
        self.epoch = 0  # the epoch in progress
        self.batch = 0  # the next batch of that epoch
        self.totals: dict[str, Any] = {}  # the epoch's running sums, on the backend
        self.epoch_started = 0.0  # perf_counter at the start of this process's share of the epoch
        self.observers: list[Callable[[int, int, int, Any], None]] = []

    def batches(self, epoch: int, start_batch: int = 0) -> Any:
        """Yield (batch index, x, y) for one epoch in a seed-fixed order, from batch ``start_batch``."""
        return self.data.batches(epoch, self.batch_size, start_batch)

    # -- slots -------------------------------------------------------------
    def attach(self, slot: str, callback: Callable[[Event], Any], order: int = 0, name: str | None = None) -> None:
        """Run ``callback(event)`` at ``slot``; lower ``order`` runs first."""
        if slot not in self.callbacks:
            raise ConfigurationError(
                f"slot: unknown slot {slot!r}; allowed: {', '.join(SLOTS)}{did_you_mean(slot, SLOTS)}"
            )
        entries = self.callbacks[slot]
        label = name or getattr(callback, "__name__", repr(callback))
        entries.append((order, len(entries), label, callback))
        entries.sort(key=lambda entry: entry[:2])

    def detach(self, name: str) -> None:
        """Remove every operation called ``name`` (e.g. to replace a built-in one)."""
        found = False
        for slot, entries in self.callbacks.items():
            kept = [entry for entry in entries if entry[2] != name]
            found |= len(kept) != len(entries)
            self.callbacks[slot] = kept
        if not found:
            names = sorted({entry[2] for entries in self.callbacks.values() for entry in entries})
            raise ConfigurationError(
                f"operation: nothing named {name!r} is scheduled{did_you_mean(name, names)}"
            )

    def schedule(self) -> str:
        """A table of the slots in execution order and what runs in each."""
        lines = [f"{'slot':<18} {'order':>5}  operation"]
        for slot in SLOTS:
            for order, _, label, _ in self.callbacks[slot]:
                lines.append(f"{slot:<18} {order:>5}  {label}")
        return "\n".join(lines)

    def observe_inference(self, callback: Callable[[int, int, int, Any], None]) -> None:
        """Call ``callback(step, epoch, t, snapshot)`` at every relaxation step
        ``t`` of every batch (``snapshot.activity(l)``, ``snapshot.error(l)``)."""
        self.observers.append(callback)

    def observer(self, epoch: int, step: int) -> Callable[[int, Any], None]:
        """The ``observe`` callable inference gets for batch ``step`` of ``epoch``."""
        def observe(t: int, snapshot: Any) -> None:
            for callback in self.observers:
                callback(step, epoch, t, snapshot)

        return observe

    def _fire(self, event: Event) -> None:
        for _, _, _, callback in self.callbacks[event.slot]:
            callback(event)

    # -- the loop ------------------------------------------------------------
    def run(self) -> list[dict[str, float]]:
        """Train until the last epoch; returns the per-epoch metrics (also in ``history``):
        ``train_loss`` (feedforward loss, mean over batches), ``energy`` (free
        energy at the end of inference, mean over batches) and
        ``test_accuracy`` where they apply.

        A scheduler restored with ``load_state_dict`` continues from the batch
        after the one its state was taken at. ``run_end`` fires however the
        run ends, with ``event.error`` set when an exception stopped it.
        """
        self._fire(Event("run_start", self, epoch=self.epoch, step=self.step))
        try:
            while self.epoch < self.epochs:
                self._run_epoch(self.epoch)
        except BaseException as error:
            self._fire(Event("run_end", self, epoch=self.epoch, step=self.step, error=error))
            raise
        self._fire(Event("run_end", self, epoch=self.epochs, step=self.step))
        return self.history

    def _run_epoch(self, epoch: int) -> None:
        if self.batch == 0:
            self.totals = {}
            self._fire(Event("epoch_start", self, epoch=epoch, step=self.step))
        self.epoch_started = time.perf_counter()
        for batch, x, y in self.batches(epoch, self.batch):
            event = Event("before_inference", self, epoch, batch, self.step, x, y)
            for slot in BATCH_SLOTS:
                if slot == "after_learning":  # the clock moves once the parameters have
                    self.step, self.batch = event.step + 1, batch + 1
                event = replace(event, slot=slot)
                self._fire(event)
        event = Event("evaluation", self, epoch=epoch, step=self.step)
        self._fire(event)
        self.history.append(event.metrics)
        self.epoch, self.batch, self.totals = epoch + 1, 0, {}
        self._fire(Event("epoch_end", self, epoch=epoch, step=self.step, metrics=event.metrics))

    # -- state for checkpoints --------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run bit-identically, as host data:
        parameters, optimizer state, position and the epoch's running sums."""
        be = self.hierarchy.backend
        return {
            "position": {"epoch": self.epoch, "batch": self.batch, "step": self.step},
            "history": [dict(m) for m in self.history],
            "parameters": self.hierarchy.parameters_to_numpy(),
            "optimizer": self.optimizer.state_dict(),
            # a rule that draws random numbers carries its generator's position
            "rule": self.rule.state_dict(),
            "totals": {name: be.to_numpy(be.xp.asarray(total)) for name, total in self.totals.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict``; the next ``run`` continues where it was taken."""
        be = self.hierarchy.backend
        self.hierarchy.load_parameters(state["parameters"])
        self.optimizer.load_state_dict(self.hierarchy, state["optimizer"])
        if state.get("rule"):
            self.rule.load_state_dict(state["rule"])
        position = state["position"]
        self.epoch, self.batch, self.step = position["epoch"], position["batch"], position["step"]
        self.history = [dict(m) for m in state["history"]]
        self.totals = {
            name: be.asarray(value, dtype=be.dtype if value.dtype.kind == "f" else None)
            for name, value in state["totals"].items()
        }

    def accuracy(self, x: Any, labels: np.ndarray, batch_size: int = 1000) -> float:
        """Fraction of ``labels`` matched by the argmax of the feedforward sweep on ``x``."""
        return accuracy(self.hierarchy, x, labels, batch_size)
