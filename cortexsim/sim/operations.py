"""The scheduler's own operations, each run in a named slot like any callback.

One batch::

    inference     order 0    rule.infer                 -> event.state
    learning      order 0    rule.gradients             -> event.gradients
    update        order -10  learning-rate schedule     (with a Schedule only)
    update        order 0    optimizer.step             (parameters change here)
    update        order 10   sum the batch's loss and energy (on the backend), and
                             with a relaxation tolerance whether it converged
                             and the steps it took
    update        order 20   finiteness check every ``check_every`` batches

and at the end of an epoch::

    evaluation    order 0    epoch metrics: means of the sums (train_loss,
                             energy, converged_fraction, mean_relaxation_steps),
                             held-out accuracy and loss, wall time -> event.metrics

A user's callback placed before or after one of these (``order`` below or
above it) sees the batch at that point, as Brian2's ``when``/``order`` do.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from ..errors import DivergenceError
from .data import accuracy
from .divergence import check_finite, check_parameters

# Each operation takes the scheduler's ``Event`` (slot, position, batch, state,
# gradients, metrics) and may fill it in; typed ``Any`` here because the
# scheduler imports this module.
Event = Any

__all__ = ["BUILT_IN"]


def infer(event: Event) -> None:
    """Inference on the batch; relaxation steps go to the scheduler's observers."""
    s = event.scheduler
    if s.observers:
        event.state = s.rule.infer(s.hierarchy, event.x, event.y, observe=s.observer(event.epoch, event.step))
    else:
        event.state = s.rule.infer(s.hierarchy, event.x, event.y)


def propose(event: Event) -> None:
    """The rule's update, as descent directions, before anything applies it."""
    s = event.scheduler
    event.gradients = s.rule.gradients(s.hierarchy, event.state)


def set_learning_rate(event: Event) -> None:
    """A learning-rate schedule sets the optimizer's rate factor for this batch."""
    s = event.scheduler
    s.optimizer.factor = s.lr_schedule.factor(event.epoch, event.step)


def apply(event: Event) -> None:
    """The optimizer turns the proposed update into new parameters."""
    s = event.scheduler
    s.optimizer.step(s.hierarchy, event.gradients)


def accumulate(event: Event) -> None:
    """Add the batch's loss and final energy to the epoch's sums, kept on the backend.

    A relaxation with a tolerance also adds whether it met the tolerance
    within its cap (``converged``) and the steps it took: host numbers
    already (its tolerance check brought each step's energy to the host), so
    summing them costs no sync. Their means are the epoch's
    ``converged_fraction`` and ``mean_relaxation_steps``.
    """
    state, totals = event.state, event.scheduler.totals
    if state.loss is not None:
        totals["train_loss"] = totals.get("train_loss", 0.0) + state.loss
    if state.energy is not None:
        totals["energy"] = totals.get("energy", 0.0) + state.energy[-1]
    if state.converged is not None:
        totals["converged_fraction"] = totals.get("converged_fraction", 0.0) + float(state.converged)
        totals["mean_relaxation_steps"] = totals.get("mean_relaxation_steps", 0.0) + float(state.steps)


def check(event: Event) -> None:
    """Every ``check_every`` batches, one number to the host: is anything NaN or Inf?"""
    s = event.scheduler
    if s.check_every and (event.step + 1) % s.check_every == 0:
        check_finite(s.hierarchy, event.state, event.epoch, event.batch, s.rule.name)


def epoch_metrics(event: Event) -> None:
    """The epoch's metrics: mean loss and energy, held-out accuracy and loss, seconds."""
    s = event.scheduler
    be, epoch = s.hierarchy.backend, event.epoch
    metrics: dict[str, float] = {"epoch": epoch + 1}
    batches = max(s.batch, 1)
    for name, total in s.totals.items():
        # a relaxation's counts are host numbers (accumulate) until a resume restores them as arrays
        metrics[name] = (float(total) if isinstance(total, (int, float)) else be.scalar(total)) / batches
        if not math.isfinite(metrics[name]):
            raise DivergenceError(
                f"training diverged in epoch {epoch + 1}: the mean {name} of rule "
                f"{s.rule.name!r} is {metrics[name]}; lower the learning "
                f"rate or the inference step size"
            )
    check_parameters(s.hierarchy, epoch, s.rule.name)
    data = s.data
    if data.x_val is not None and data.labels_val is not None:
        metrics["validation_accuracy"] = accuracy(s.hierarchy, data.x_val, data.labels_val)
    if data.x_test is not None and data.labels_test is not None:
        metrics["test_accuracy"] = accuracy(s.hierarchy, data.x_test, data.labels_test)
    if s.rule.capabilities.held_out_loss:  # an unsupervised rule's loss on held-out inputs
        for name, x in (("validation_loss", data.x_val), ("test_loss", data.x_test)):
            if x is not None:
                metrics[name] = s.rule.evaluate(s.hierarchy, x)
    # Wall time of this process's share of the epoch (training and evaluation,
    # not the epoch_end callbacks); after a resume, only the resumed part.
    if s.lr_schedule is not None:
        metrics["learning_rate"] = s.optimizer.lr * s.optimizer.factor
    metrics["seconds"] = time.perf_counter() - s.epoch_started
    event.metrics = metrics


# (slot, order, name, operation), attached by every Scheduler.
BUILT_IN: tuple[tuple[str, int, str, Callable[[Any], None]], ...] = (
    ("inference", 0, "rule.infer", infer),
    ("learning", 0, "rule.gradients", propose),
    ("update", 0, "optimizer.step", apply),
    ("update", 10, "sum loss and energy", accumulate),
    ("update", 20, "finiteness check", check),
    ("evaluation", 0, "epoch metrics", epoch_metrics),
)
