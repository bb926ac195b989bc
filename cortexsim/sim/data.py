"""The data of one run on the model's backend: checked against the model's
areas, labels made one-hot targets of the top area, batches in a seed-fixed
order (optionally dynamically binarized), and the accuracy of the feedforward
sweep on held-out data."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigurationError
from ..inference import feedforward
from ..model.hierarchy import Hierarchy
from ..validation import check_choice

__all__ = ["RunData", "accuracy"]


class RunData:
    """Training, validation and test arrays of one run, copied to the backend once.

    Parameters
    ----------
    hierarchy : Hierarchy
        The model the data feeds: area 0's size fixes the inputs' width, the
        top area's the targets'.
    x_train : numpy array (N, n_0)
        Training inputs on the host.
    y_train : numpy array (N,) of int labels, (N, n_L) targets, or None
        Integer labels become one-hot targets of the top area; None for
        generative (unsupervised) rules.
    x_val, y_val, x_test, y_test : numpy arrays, optional
        Held-out data; labels stay on the host (integer labels: accuracy).
    binarize : str or None
        ``"dynamic"``: every batch's inputs (intensities in [0, 1]) are replaced
        by a fresh Bernoulli sample drawn on the host from a generator seeded
        with ``(seed, epoch, batch)``, so a resumed run draws the same images
        (dynamic binarization of MNIST, Burda et al. 2016). Static binarization
        is done once on the data (``cortexsim.data.binarize``).
    seed : int
        Seeds the batch order and the dynamic binarization.
    """

    def __init__(
        self,
        hierarchy: Hierarchy,
        x_train: np.ndarray,
        y_train: np.ndarray | None = None,
        *,
        x_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
        x_test: np.ndarray | None = None,
        y_test: np.ndarray | None = None,
        binarize: str | None = None,
        seed: int = 0,
    ) -> None:
        self.hierarchy = hierarchy
        if binarize is not None:
            check_choice(binarize, ("dynamic",), "schedule.binarize")
        self.binarize = binarize
        self.seed = int(seed)
        self.x_train = self._inputs(x_train, "x_train")
        self.y_train = self._targets(y_train, len(x_train), "y_train")
        self.x_val = None if x_val is None else self._inputs(x_val, "x_val")
        self.labels_val = None if y_val is None else np.asarray(y_val)
        self.x_test = None if x_test is None else self._inputs(x_test, "x_test")
        self.labels_test = None if y_test is None else np.asarray(y_test)

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

    def batches_per_epoch(self, batch_size: int) -> int:
        """Batches in one pass over the training data (the last may be short)."""
        return -(-int(self.x_train.shape[0]) // batch_size)

    def batches(self, epoch: int, batch_size: int, start_batch: int = 0) -> Any:
        """Yield (batch index, x, y) for one epoch in a seed-fixed order, from batch ``start_batch``.

        Epoch ``e`` visits the data in ``np.random.default_rng([seed, e]).permutation(n)``
        order, so a run is a deterministic function of its seeds.
        """
        be = self.hierarchy.backend
        n = self.x_train.shape[0]
        order = np.random.default_rng([self.seed, epoch]).permutation(n)
        order_device = be.asarray(order, dtype=be.xp.int64)
        for batch, start in enumerate(range(0, n, batch_size)):
            if batch < start_batch:
                continue
            # Clip the stop: the array API leaves out-of-bounds slice stops unspecified.
            index = order_device[start : min(start + batch_size, n)]
            x = be.xp.take(self.x_train, index, axis=0)
            if self.binarize == "dynamic":
                uniform = np.random.default_rng([self.seed, epoch, batch]).random(tuple(x.shape))
                x = be.xp.astype(be.asarray(uniform) < x, be.dtype)
            y = None if self.y_train is None else be.xp.take(self.y_train, index, axis=0)
            yield batch, x, y


def accuracy(hierarchy: Hierarchy, x: Any, labels: np.ndarray, batch_size: int = 1000) -> float:
    """Fraction of ``labels`` matched by the argmax of the feedforward sweep on ``x`` (backend)."""
    be = hierarchy.backend
    correct = 0
    for start in range(0, x.shape[0], batch_size):
        # Both axes and an in-bounds stop: the array API requires them.
        stop = min(start + batch_size, x.shape[0])
        out = feedforward(hierarchy, x[start:stop, :]).output
        guess = be.to_numpy(be.xp.argmax(out, axis=1))
        correct += int(np.sum(guess == labels[start : start + batch_size]))
    return correct / x.shape[0]
