"""scikit-learn's bundled 8x8 handwritten digits, with a fixed held-out test split."""

from __future__ import annotations

import numpy as np

from cortexsim.errors import ConfigurationError

__all__ = ["load_digits_arrays"]

# load_digits stores pixel intensities as integers 0..16.
_MAX_PIXEL = 16.0


def load_digits_arrays(
    test_fraction: float = 0.2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load the 1797 digits, scaled to [0, 1], split stratified with a fixed seed.

    Parameters
    ----------
    test_fraction : float, default 0.2
        Share of the images held out as the test set, in (0, 1).

    Returns
    -------
    x_train : numpy.ndarray, shape (N_train, 64), float32 in [0, 1]
    y_train : numpy.ndarray, shape (N_train,), int64
    x_test : numpy.ndarray, shape (N_test, 64), float32 in [0, 1]
    y_test : numpy.ndarray, shape (N_test,), int64
        ``N_train + N_test == 1797``; the split is the same on every call.
    """
    if not 0.0 < float(test_fraction) < 1.0:
        raise ConfigurationError(
            f"digits: test_fraction={test_fraction!r} must lie strictly between 0 and 1"
        )
    # Imported lazily so that importing cortexsim.data stays cheap.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data / _MAX_PIXEL).astype(np.float32)
    y = bunch.target.astype(np.int64)
    # Fixed seed and stratification: every run and every model sees the same
    # test images, with the class balance of the whole set.
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=float(test_fraction), random_state=0, stratify=y
    )
    return x_train, y_train, x_test, y_test
