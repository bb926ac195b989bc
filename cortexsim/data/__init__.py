"""Datasets as flat float32 arrays: digits, MNIST, Fashion-MNIST, shapes and dSprites.

Natural-image patches (:func:`load_patches`) are unlabelled and not in [0, 1],
so they have their own loader rather than a :class:`Dataset`; the factors of
shapes and dSprites come from :func:`load_shapes` and :func:`load_dsprites`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from cortexsim.data.binarize import binarize
from cortexsim.data.dsprites import load_dsprites
from cortexsim.data.patches import load_patches
from cortexsim.data.shapes import load_shapes, shapes_factors
from cortexsim.errors import ConfigurationError, DataError, did_you_mean

__all__ = [
    "DATASET_NAMES",
    "Dataset",
    "binarize",
    "load",
    "load_dsprites",
    "load_patches",
    "load_shapes",
    "one_hot",
    "shapes_factors",
]

DATASET_NAMES: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "shapes", "dsprites", "patches")

# Images drawn from the 737,280-image grids when load() is not told how many.
_DEFAULT_SPRITES = 10_000


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled image dataset with a fixed train/test split.

    Parameters
    ----------
    name : str
        Dataset name, one of :data:`DATASET_NAMES`.
    x_train : numpy.ndarray, shape (N, D), float32 in [0, 1]
        Flattened training images, ``D == prod(image_shape)``.
    y_train : numpy.ndarray, shape (N,), int64
        Training labels in ``0 .. n_classes - 1``.
    x_test : numpy.ndarray, shape (M, D), float32 in [0, 1]
        Flattened test images.
    y_test : numpy.ndarray, shape (M,), int64
        Test labels.
    n_classes : int
        Number of classes.
    image_shape : tuple of int
        Shape of one image before flattening, e.g. (28, 28).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    image_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        d = int(np.prod(self.image_shape))
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if x.ndim != 2 or x.shape[1] != d or y.shape != (x.shape[0],):
                raise DataError(
                    f"dataset {self.name!r}: {split} images {x.shape} and labels {y.shape} "
                    f"do not fit image_shape {self.image_shape} (expected (N, {d}) and (N,))"
                )

    @property
    def n_features(self) -> int:
        """Number of pixels per flattened image, D."""
        return int(self.x_train.shape[1])

    def validation_split(
        self, fraction: float = 0.1, seed: int = 0
    ) -> tuple[Dataset, tuple[np.ndarray, np.ndarray]]:
        """Hold out a seed-fixed random subset of the training set for validation.

        Parameters
        ----------
        fraction : float, default 0.1
            Share of the training images to hold out, in (0, 1).
        seed : int, default 0
            Seed of the permutation; the same seed gives the same split.

        Returns
        -------
        train : Dataset
            This dataset with ``x_train``, ``y_train`` reduced to the
            remaining (N - K, D) and (N - K,) rows; the test set is unchanged.
        (x_val, y_val) : tuple of numpy.ndarray, shapes (K, D) and (K,)
            The held-out rows, ``K = round(fraction * N)``, disjoint from train.
        """
        n = self.x_train.shape[0]
        k = int(round(float(fraction) * n))
        if not 0.0 < float(fraction) < 1.0 or not 0 < k < n:
            raise ConfigurationError(
                f"validation_split: fraction={fraction!r} must lie strictly between 0 and 1 "
                f"and leave at least one image on each side (dataset {self.name!r} has {n})"
            )
        perm = np.random.default_rng(seed).permutation(n)
        # Sorting keeps the original order within each part, so two splits with
        # the same seed are equal element for element, not just as sets.
        val_idx, train_idx = np.sort(perm[:k]), np.sort(perm[k:])
        train = dataclasses.replace(
            self, x_train=self.x_train[train_idx], y_train=self.y_train[train_idx]
        )
        return train, (self.x_train[val_idx], self.y_train[val_idx])


def one_hot(labels: np.ndarray, n_classes: int, dtype=np.float32) -> np.ndarray:
    """Encode integer labels as one-hot rows.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
        Class indices in ``0 .. n_classes - 1``.
    n_classes : int
        Number of classes, C.
    dtype : numpy dtype, default numpy.float32
        Dtype of the result.

    Returns
    -------
    numpy.ndarray, shape (N, C)
        Row ``i`` is 1 at column ``labels[i]`` and 0 elsewhere.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ConfigurationError(
            f"one_hot: labels must be a 1-D integer array, got shape {labels.shape} "
            f"dtype {labels.dtype}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ConfigurationError(
            f"one_hot: labels span {labels.min()}..{labels.max()}, outside 0..{n_classes - 1}"
        )
    out = np.zeros((labels.shape[0], n_classes), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


def load(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    n: int | None = None,
    seed: int = 0,
    layout: Mapping[str, Any] | None = None,
) -> Dataset:
    """Load a dataset by name as flat float32 images in [0, 1].

    Parameters
    ----------
    name : {"digits", "mnist", "fashion-mnist", "shapes", "dsprites"}
        Which dataset.
    data_dir : str or os.PathLike, optional
        Folder holding the ``mnist/``, ``fashion-mnist/`` and ``dsprites/``
        subfolders; defaults to ``$CORTEXSIM_DATA`` or the user cache folder.
        Unused by "digits" (ships with scikit-learn) and "shapes" (generated).
    n : int, optional
        "shapes" and "dsprites" only: number of images drawn at random from
        the factor grid, default 10000; the last fifth is the test set.
    seed : int, default 0
        "shapes", "dsprites" and "patches" only: seed of that draw.
    layout : mapping, optional
        "patches" only: keyword arguments of
        ``cortexsim.data.module_patches.load_module_patches`` (``height``,
        ``width``, ``modules``, ``offset``, ``window``, ``filter``); the default
        is Rao & Ballard's three 16 x 16 patches offset by 5 pixels.

    Returns
    -------
    Dataset
        digits: (1437, 64) train / (360, 64) test, image_shape (8, 8);
        MNIST and Fashion-MNIST: (60000, 784) / (10000, 784), image_shape (28, 28);
        shapes and dSprites: (0.8 n, 4096) / (0.2 n, 4096), image_shape (64, 64),
        labels the shape class (0 square, 1 ellipse, 2 heart);
        patches: (0.8 n, modules * height * width) / (0.2 n, ...) windowed
        module patches of filtered photographs (default n 20000), not in
        [0, 1] but at the photographs' unit variance, labels the photograph
        each crop came from.
    """
    if name not in DATASET_NAMES:
        raise ConfigurationError(
            f"unknown dataset {name!r}; allowed: {', '.join(DATASET_NAMES)}"
            f"{did_you_mean(name, DATASET_NAMES)}"
        )
    if name in ("shapes", "dsprites"):
        count = _DEFAULT_SPRITES if n is None else n
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 2:
            raise ConfigurationError(f"load({name!r}): n must be a whole number >= 2, got {n!r}")
        if name == "shapes":
            sample = load_shapes(n=int(count), seed=seed)
        else:
            sample = load_dsprites(data_dir, n=int(count), seed=seed)
        # The draw is already random without replacement, so a plain cut gives
        # disjoint, identically distributed train and test sets.
        cut = int(count) - max(1, int(count) // 5)
        y = sample.classes[:, 0].astype(np.int64)
        x = sample.images
        return Dataset(name, x[:cut], y[:cut], x[cut:], y[cut:], 3, (64, 64))
    if name == "patches":
        from cortexsim.data.module_patches import load_module_patches

        count = 20000 if n is None else n
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 2:
            raise ConfigurationError(f"load('patches'): n must be a whole number >= 2, got {n!r}")
        options = dict(layout or {})
        x, source = load_module_patches(int(count), seed=seed, **options)
        cut = int(count) - max(1, int(count) // 5)
        shape = (options.get("modules", 3), options.get("height", 16), options.get("width", 16))
        return Dataset(name, x[:cut], source[:cut], x[cut:], source[cut:], int(source.max()) + 1, shape)
    if layout is not None:
        raise ConfigurationError(f"load({name!r}): layout applies only to 'patches'")
    if n is not None:
        raise ConfigurationError(f"load({name!r}): n applies only to 'shapes', 'dsprites' and 'patches'")
    if name == "digits":
        from cortexsim.data.digits import load_digits_arrays

        x_train, y_train, x_test, y_test = load_digits_arrays()
        return Dataset(name, x_train, y_train, x_test, y_test, 10, (8, 8))

    from cortexsim.data.mnist import load_idx_dataset

    raw = load_idx_dataset(name, data_dir)
    shape = tuple(int(s) for s in raw[0].shape[1:])

    def images(x: np.ndarray) -> np.ndarray:
        return (x.reshape(x.shape[0], -1).astype(np.float32) / np.float32(255.0))

    return Dataset(
        name,
        images(raw[0]),
        raw[1].astype(np.int64),
        images(raw[2]),
        raw[3].astype(np.int64),
        10,
        shape,
    )
