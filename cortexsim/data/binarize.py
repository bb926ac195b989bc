"""Binary versions of [0, 1] images for models with Bernoulli visible units."""

from __future__ import annotations

import numpy as np

from cortexsim.errors import ConfigurationError, did_you_mean

__all__ = ["BINARIZE_MODES", "binarize"]

BINARIZE_MODES: tuple[str, ...] = ("static", "dynamic", "threshold")


def binarize(
    x: np.ndarray,
    mode: str = "static",
    *,
    seed: int = 0,
    rng: np.random.Generator | None = None,
    threshold: float = 0.5,
) -> np.ndarray:
    """Turn intensities in [0, 1] into {0, 1} values.

    Parameters
    ----------
    x : numpy.ndarray, shape (N, D), values in [0, 1]
        Images, read as per-pixel probabilities of being on.
    mode : {"static", "dynamic", "threshold"}, default "static"
        "static": one Bernoulli sample drawn from ``seed``, the same on every
        call, as in the fixed binarized MNIST of Larochelle & Murray (2011)
        and Burda et al. (2016); the sample depends on the row order of ``x``.
        "dynamic": a fresh Bernoulli sample per call from ``rng``, which the
        caller keeps between calls (e.g. once per epoch), so successive calls
        differ. "threshold": ``x > threshold``, deterministic, no sampling.
    seed : int, default 0
        Seed of the "static" sample; ignored otherwise.
    rng : numpy.random.Generator, optional
        Source of the "dynamic" sample; required in that mode, so that the
        randomness stays reproducible from the caller's seed.
    threshold : float, default 0.5
        Cut-off of the "threshold" mode.

    Returns
    -------
    numpy.ndarray, shape (N, D)
        Values in {0, 1}, with the dtype of ``x`` (float32 for integer input);
        for the sampling modes the expected value of each entry is ``x``.
    """
    if mode not in BINARIZE_MODES:
        raise ConfigurationError(
            f"binarize: unknown mode {mode!r}; allowed: {', '.join(BINARIZE_MODES)}"
            f"{did_you_mean(mode, BINARIZE_MODES)}"
        )
    x = np.asarray(x)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float32)
    if x.size and (np.nanmin(x) < 0 or np.nanmax(x) > 1 or np.isnan(x).any()):
        raise ConfigurationError("binarize: values must lie in [0, 1] (scale images first)")
    if mode == "threshold":
        return (x > threshold).astype(dtype)
    if mode == "dynamic":
        if not isinstance(rng, np.random.Generator):
            raise ConfigurationError(
                "binarize: mode 'dynamic' needs rng=numpy.random.default_rng(seed), "
                "kept by the caller so that each call draws a new sample"
            )
        gen = rng
    else:
        gen = np.random.default_rng(seed)
    # Uniforms lie in [0, 1), so x == 1 is always on and x == 0 always off;
    # float32 halves the temporary for a full training set.
    return (gen.random(x.shape, dtype=np.float32) < x).astype(dtype)
