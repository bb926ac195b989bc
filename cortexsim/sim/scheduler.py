"""The phase loop: epochs x batches x (inference -> learning), with named slots
that callbacks (probes, checkpoints, progress) attach to.

One batch::

    before_inference -> rule.infer -> after_inference
    -> rule.gradients -> before_update -> optimizer.step -> after_learning

framed by ``run_start`` / ``epoch_start`` / ``epoch_end`` / ``run_end``.
Callbacks in a slot run by (order, attachment order); ``schedule()`` prints
the table. The data order of epoch ``e`` is drawn from a generator seeded with
``(seed, e)``, so a run is a deterministic function of its seed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigurationError, DivergenceError, did_you_mean
from ..model.hierarchy import Hierarchy
from .divergence import check_finite, check_parameters
from ..inference import State, feedforward
from ..optim import Optimizer
from ..rules import Gradients, Rule
from ..validation import check_choice, check_int

__all__ = ["Scheduler", "Event", "SLOTS"]

SLOTS = (
    "run_start",
    "epoch_start",
    "before_inference",
    "after_inference",
    "before_update",
    "after_learning",
    "epoch_end",
    "run_end",
)


@dataclass
class Event:
    """What a callback sees: where the loop is and what the batch produced."""

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
        ``"dynamic"``: every batch's inputs (intensities in [0, 1]) are replaced
        by a fresh Bernoulli sample, drawn on the host from a generator seeded
        with ``(seed, epoch, batch)``, so a resumed run draws the same images
        (dynamic binarization of MNIST for Bernoulli models, Burda et al. 2016).
        Static binarization is done once on the data (``cortexsim.data.binarize``).

    A rule with an ``evaluate(hierarchy, x)`` method (unsupervised rules such
    as ``elbo``) adds ``validation_loss`` and ``test_loss`` to each epoch's
    metrics, on the held-out inputs.
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
    ) -> None:
        self.hierarchy = hierarchy
        self.rule = rule
        self.optimizer = optimizer
        rule.prepare(hierarchy)  # parameters a rule adds to the areas exist from the start
        self.batch_size = check_int(batch_size, "schedule.batch_size", minimum=1)
        self.check_every = check_int(check_every, "schedule.check_every")
        if binarize is not None:
            check_choice(binarize, ("dynamic",), "schedule.binarize")
        self.binarize = binarize
        self.epochs = check_int(epochs, "schedule.epochs", minimum=1)
        self.seed = int(seed)
        self.x_train = self._inputs(x_train, "x_train")
        self.y_train = self._targets(y_train, len(x_train), "y_train")
        self.x_test = None if x_test is None else self._inputs(x_test, "x_test")
        self.labels_test = None if y_test is None else np.asarray(y_test)
        self.x_val = None if x_val is None else self._inputs(x_val, "x_val")
        self.labels_val = None if y_val is None else np.asarray(y_val)
        self.callbacks: dict[str, list[tuple[int, int, str, Callable[[Event], Any]]]] = {
            slot: [] for slot in SLOTS
        }
        self.history: list[dict[str, float]] = []
        self.step = 0  # batches completed over the whole run
        self.epoch = 0  # the epoch in progress
        self.batch = 0  # the next batch of that epoch
        self.totals: dict[str, Any] = {}  # the epoch's running sums, on the backend
        self.observers: list[Callable[[int, int, int, Any], None]] = []

    # -- data ------------------------------------------------------------
    def _inputs(self, x: np.ndarray, where: str) -> Any:
        x = np.asarray(x)
        n_0 = self.hierarchy[0].size
        if x.ndim != 2 or x.shape[1] != n_0:
            raise ConfigurationError(
                f"{where}: expected shape (samples, {n_0}) to match area "
                f"{self.hierarchy[0].name!r}, got {x.shape}"
            )
        return self.hierarchy.backend.asarray(x)

    def _targets(self, y: np.ndarray | None, n: int, where: str) -> Any:
        if y is None:
            return None
        y = np.asarray(y)
        top = self.hierarchy.top
        if len(y) != n:
            raise ConfigurationError(f"{where}: {len(y)} targets for {n} inputs")
        if y.ndim == 1:
            if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= top.size:
                raise ConfigurationError(
                    f"{where}: labels must be integers in [0, {top.size}) for the top "
                    f"area {top.name!r} ({top.size} units)"
                )
            y = np.eye(top.size)[y]
        elif y.ndim != 2 or y.shape[1] != top.size:
            raise ConfigurationError(
                f"{where}: expected labels (samples,) or targets (samples, {top.size}), got {y.shape}"
            )
        return self.hierarchy.backend.asarray(y)

    def batches(self, epoch: int, start_batch: int = 0) -> Any:
        """Yield (batch index, x, y) for one epoch in a seed-fixed order, from batch ``start``."""
        be = self.hierarchy.backend
        n = self.x_train.shape[0]
        order = np.random.default_rng([self.seed, epoch]).permutation(n)
        order_device = be.asarray(order, dtype=be.xp.int64)
        for batch, start in enumerate(range(0, n, self.batch_size)):
            if batch < start_batch:
                continue
            # Clip the stop: the array API leaves out-of-bounds slice stops unspecified.
            index = order_device[start : min(start + self.batch_size, n)]
            x = be.xp.take(self.x_train, index, axis=0)
            if self.binarize == "dynamic":
                uniform = np.random.default_rng([self.seed, epoch, batch]).random(tuple(x.shape))
                x = be.xp.astype(be.asarray(uniform) < x, be.dtype)
            y = None if self.y_train is None else be.xp.take(self.y_train, index, axis=0)
            yield batch, x, y

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

    def schedule(self) -> str:
        """A table of the slots in execution order and what runs in each."""
        lines = [f"{'slot':<18} {'order':>5}  callback"]
        for slot in SLOTS:
            built_in = {
                "after_inference": "rule.infer (before)",
                "before_update": "rule.gradients (before)",
                "after_learning": "optimizer.step (before)",
            }
            if slot in built_in:
                lines.append(f"{slot:<18} {'':>5}  [{built_in[slot]}]")
            for order, _, label, _ in self.callbacks[slot]:
                lines.append(f"{slot:<18} {order:>5}  {label}")
        return "\n".join(lines)

    def observe_inference(self, callback: Callable[[int, int, int, Any], None]) -> None:
        """Call ``callback(step, epoch, t, snapshot)`` at every relaxation step
        ``t`` of every batch (``snapshot.activity(l)``, ``snapshot.error(l)``)."""
        self.observers.append(callback)

    def _observer(self, epoch: int, step: int) -> Callable[[int, Any], None]:
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
        be = self.hierarchy.backend
        if self.batch == 0:
            self.totals = {}
            self._fire(Event("epoch_start", self, epoch=epoch, step=self.step))
        started = time.perf_counter()
        for batch, x, y in self.batches(epoch, self.batch):
            step = self.step
            self._fire(Event("before_inference", self, epoch, batch, step, x, y))
            if self.observers:
                state = self.rule.infer(self.hierarchy, x, y, observe=self._observer(epoch, step))
            else:
                state = self.rule.infer(self.hierarchy, x, y)
            self._fire(Event("after_inference", self, epoch, batch, step, x, y, state))
            gradients = self.rule.gradients(self.hierarchy, state)
            self._fire(Event("before_update", self, epoch, batch, step, x, y, state, gradients))
            self.optimizer.step(self.hierarchy, gradients)
            # Summed on the backend; brought to the host once per epoch.
            if state.loss is not None:
                self.totals["train_loss"] = self.totals.get("train_loss", 0.0) + state.loss
            if state.energy is not None:
                self.totals["energy"] = self.totals.get("energy", 0.0) + state.energy[-1]
            if self.check_every and (step + 1) % self.check_every == 0:
                check_finite(self.hierarchy, state, epoch, batch, self.rule.name)
            self.step, self.batch = step + 1, batch + 1
            self._fire(Event("after_learning", self, epoch, batch, step, x, y, state, gradients))
        metrics: dict[str, float] = {"epoch": epoch + 1}
        batches = max(self.batch, 1)
        for name, total in self.totals.items():
            metrics[name] = be.scalar(total) / batches
            if not math.isfinite(metrics[name]):
                raise DivergenceError(
                    f"training diverged in epoch {epoch + 1}: the mean {name} of rule "
                    f"{self.rule.name!r} is {metrics[name]}; lower the learning "
                    f"rate or the inference step size"
                )
        check_parameters(self.hierarchy, epoch, self.rule.name)
        if self.x_val is not None and self.labels_val is not None:
            metrics["validation_accuracy"] = self.accuracy(self.x_val, self.labels_val)
        if self.x_test is not None and self.labels_test is not None:
            metrics["test_accuracy"] = self.accuracy(self.x_test, self.labels_test)
        if self.rule.capabilities.held_out_loss:  # an unsupervised rule's loss on held-out inputs
            for name, x in (("validation_loss", self.x_val), ("test_loss", self.x_test)):
                if x is not None:
                    metrics[name] = self.rule.evaluate(self.hierarchy, x)
        # Wall time of this process's share of the epoch (training and evaluation,
        # not the epoch_end callbacks); after a resume, only the resumed part.
        metrics["seconds"] = time.perf_counter() - started
        self.history.append(metrics)
        self.epoch, self.batch, self.totals = epoch + 1, 0, {}
        self._fire(Event("epoch_end", self, epoch=epoch, step=self.step, metrics=metrics))

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
        """Fraction of ``labels`` matched by the argmax of the feedforward sweep."""
        be = self.hierarchy.backend
        correct = 0
        for start in range(0, x.shape[0], batch_size):
            # Both axes and an in-bounds stop: the array API requires them.
            stop = min(start + batch_size, x.shape[0])
            out = feedforward(self.hierarchy, x[start:stop, :]).output
            guess = be.to_numpy(be.xp.argmax(out, axis=1))
            correct += int(np.sum(guess == labels[start : start + batch_size]))
        return correct / x.shape[0]
