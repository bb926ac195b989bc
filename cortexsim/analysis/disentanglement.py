"""Disentanglement of a latent code against ground-truth factors: MIG, the
β-VAE metric and DCI, plus per-unit KL and active units of a Gaussian posterior.

Codes are row-major ``(N, n_codes)`` arrays (e.g. the posterior means of a
VAE); factors are ``(N, n_factors)`` arrays of discrete values, such as the
``classes`` of :func:`cortexsim.data.shapes.load_shapes`. Every score is a pure
function of these arrays (and of a seed), so a study's numbers can be recomputed
from its recordings. Formulas, conventions and references: docs/disentanglement.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Lasso, LogisticRegression
from sklearn.metrics import mutual_info_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = [
    "DCIResult",
    "active_units",
    "beta_vae_score",
    "dci",
    "discretize",
    "kl_per_unit",
    "mig",
    "mutual_information",
]

# Rows of observations per call of ``generate``/``encode`` in the β-VAE metric:
# bounds memory (4096 shapes images are 64 MB as float32).
_ROWS_PER_CALL = 4096


def _matrix(name: str, x: Any, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2 or a.shape[1] < 1:
        raise ValueError(f"{name}: expected shape (N, {what}) with N >= 2, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or Inf")
    return a


def _codes_and_factors(codes: Any, factors: Any) -> tuple[np.ndarray, np.ndarray]:
    z = _matrix("codes", codes, "n_codes")
    f = _matrix("factors", factors, "n_factors")
    if z.shape[0] != f.shape[0]:
        raise ValueError(
            f"codes {z.shape} and factors {f.shape} must have the same number of rows (samples)"
        )
    for k in range(f.shape[1]):
        if np.all(f[:, k] == f[0, k]):
            raise ValueError(f"factors: column {k} is constant; a factor must vary")
    return z, f


def _labels(f: np.ndarray) -> np.ndarray:
    """Each column's values as integer labels 0..K-1 (class indices or discrete values)."""
    return np.stack([np.unique(c, return_inverse=True)[1] for c in f.T], axis=1)


def discretize(codes: Any, bins: int = 20) -> np.ndarray:
    """Bin each code into ``bins`` equal-width histogram bins over its own range.

    Parameters
    ----------
    codes : array (N, n_codes)
    bins : int
        Bins per code, spanning that code's min..max (disentanglement_lib's
        ``_histogram_discretize``); a constant code falls into one bin.

    Returns
    -------
    array (N, n_codes) of int
        Bin index of every value, 1..bins.
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins: expected a whole number >= 2, got {bins!r}")
    z = _matrix("codes", codes, "n_codes")
    return np.stack(
        [np.digitize(c, np.histogram_bin_edges(c, bins)[:-1]) for c in z.T], axis=1
    )


def mutual_information(codes: Any, factors: Any, bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Mutual information (nats) of every binned code with every discrete factor.

    Parameters
    ----------
    codes : array (N, n_codes)
        Continuous codes, binned by :func:`discretize`.
    factors : array (N, n_factors)
        Discrete factor values or class indices; each column must vary.
    bins : int
        Histogram bins per code.

    Returns
    -------
    mi : array (n_codes, n_factors)
        ``I(bin(z_j); v_k)`` from ``sklearn.metrics.mutual_info_score``.
    entropy : array (n_factors,)
        ``H(v_k)`` in nats.
    """
    z, f = _codes_and_factors(codes, factors)
    binned, labels = discretize(z, bins), _labels(f)
    mi = np.array(
        [[mutual_info_score(labels[:, k], b) for k in range(labels.shape[1])] for b in binned.T]
    )
    entropy = np.array([mutual_info_score(v, v) for v in labels.T])
    return mi, entropy


def mig(codes: Any, factors: Any, bins: int = 20) -> float:
    """Mutual information gap (Chen et al. 2018), in [0, 1]; 1 is disentangled.

    ``MIG = (1/K) sum_k [I(z_(1); v_k) - I(z_(2); v_k)] / H(v_k)`` where ``z_(1)``
    and ``z_(2)`` are the codes with the highest and second-highest mutual
    information with factor ``v_k`` (see :func:`mutual_information`).

    Parameters
    ----------
    codes : array (N, n_codes)
        At least two codes.
    factors : array (N, n_factors)
        Discrete factors, each varying.
    bins : int
        Histogram bins per code (20, as in disentanglement_lib). With fewer bins
        than a factor has values the gap cannot reach 1: at most
        ``log(bins) / H(v_k)``.
    """
    mi, entropy = mutual_information(codes, factors, bins)
    if mi.shape[0] < 2:
        raise ValueError(f"codes: MIG needs at least 2 codes, got shape {np.shape(codes)}")
    top = np.sort(mi, axis=0)[::-1]
    return float(np.mean((top[0] - top[1]) / entropy))


def beta_vae_score(
    encode: Callable[[np.ndarray], Any],
    generate: Callable[[np.ndarray], Any],
    factor_sizes: Sequence[int],
    *,
    pairs: int = 64,
    n_train: int = 10000,
    n_test: int = 5000,
    seed: int = 0,
) -> float:
    """β-VAE metric (Higgins et al. 2017): held-out accuracy of a linear classifier
    that names the factor two batches of paired samples share.

    One vote: draw factor ``k`` uniformly; draw ``pairs`` pairs of factor
    vectors uniformly from the grid with ``v1[k] = v2[k]``; the feature is
    ``mean_l |encode(generate(v1_l)) - encode(generate(v2_l))|`` (n_codes,) and
    the label ``k``. A logistic regression (after standardizing the features) is
    fitted on ``n_train`` votes and scored on ``n_test`` others.

    Parameters
    ----------
    encode : callable, (M, ...) observations -> (M, n_codes) codes
        E.g. a VAE's posterior mean.
    generate : callable, (M, n_factors) int class indices -> (M, ...) observations
        E.g. rendering shapes images from ``classes``.
    factor_sizes : sequence of int, (n_factors,)
        Number of values of each factor (each at least 2).
    pairs : int
        Pairs per vote (``L`` in the paper; 64 in disentanglement_lib).
    n_train, n_test : int
        Votes for training and for testing the classifier.
    seed : int
        Seeds the ``numpy.random.Generator`` drawing every vote.

    Returns
    -------
    float
        Test accuracy in [0, 1]; chance is ``1 / n_factors``.
    """
    sizes = np.asarray(factor_sizes)
    if sizes.ndim != 1 or sizes.size < 2 or not np.issubdtype(sizes.dtype, np.integer):
        raise ValueError(f"factor_sizes: expected >= 2 whole numbers, got {factor_sizes!r}")
    if np.any(sizes < 2):
        raise ValueError(f"factor_sizes: every factor needs >= 2 values, got {tuple(sizes)}")
    for name, value in (("pairs", pairs), ("n_train", n_train), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected a whole number >= 1, got {value!r}")
    rng = np.random.default_rng(seed)
    n_factors = sizes.size

    def codes(v: np.ndarray) -> np.ndarray:
        z = np.asarray(encode(generate(v)), dtype=np.float64)
        if z.ndim != 2 or z.shape[0] != v.shape[0]:
            raise ValueError(
                f"encode(generate(factors)): expected shape ({v.shape[0]}, n_codes), got {z.shape}"
            )
        return z

    def votes(n: int) -> tuple[np.ndarray, np.ndarray]:
        label = rng.integers(0, n_factors, size=n)
        features = []
        step = max(1, _ROWS_PER_CALL // pairs)
        for start in range(0, n, step):
            k = label[start:start + step]
            v1 = rng.integers(0, sizes, size=(k.size, pairs, n_factors))
            v2 = rng.integers(0, sizes, size=(k.size, pairs, n_factors))
            rows = np.arange(k.size)
            v2[rows, :, k] = v1[rows, :, k]
            diff = np.abs(codes(v1.reshape(-1, n_factors)) - codes(v2.reshape(-1, n_factors)))
            features.append(diff.reshape(k.size, pairs, -1).mean(axis=1))
        return np.concatenate(features), label

    x_train, y_train = votes(int(n_train))
    x_test, y_test = votes(int(n_test))
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    classifier.fit(x_train, y_train)
    return float(classifier.score(x_test, y_test))


class DCIResult(NamedTuple):
    """DCI scores (Eastwood & Williams 2018) and the importance matrix behind them.

    Parameters
    ----------
    disentanglement : float
        ``sum_j rho_j D_j``, in [0, 1].
    completeness : float
        Mean over factors of ``C_k``, in [0, 1].
    informativeness : float
        Mean over factors of the held-out R² (1 is perfect; can be negative).
    importance : array (n_codes, n_factors)
        ``R[j, k]``: importance of code ``j`` for predicting factor ``k``.
    code_disentanglement : array (n_codes,)
        ``D_j`` (0 for a code of no importance).
    factor_completeness, factor_informativeness : arrays (n_factors,)
        ``C_k`` and the held-out R² per factor.
    """

    disentanglement: float
    completeness: float
    informativeness: float
    importance: np.ndarray
    code_disentanglement: np.ndarray
    factor_completeness: np.ndarray
    factor_informativeness: np.ndarray


def _one_minus_entropy(p: np.ndarray, axis: int) -> np.ndarray:
    """1 - entropy of the normalized ``p`` along ``axis``, in base ``p.shape[axis]``."""
    total = p.sum(axis=axis, keepdims=True)
    q = np.divide(p, total, out=np.zeros_like(p), where=total > 0)
    logs = np.log(q, out=np.zeros_like(q), where=q > 0)
    h = -np.sum(q * logs, axis=axis) / np.log(p.shape[axis])
    return np.where(np.squeeze(total, axis) > 0, 1.0 - h, 0.0)


def dci(
    codes: Any,
    factors: Any,
    *,
    model: str = "lasso",
    test_fraction: float = 0.2,
    seed: int = 0,
    alpha: float = 0.02,
    n_estimators: int = 10,
) -> DCIResult:
    """Disentanglement, completeness and informativeness (Eastwood & Williams 2018).

    Codes and factors are standardized (with the training rows' mean and sd),
    one regressor per factor predicts the factor from all codes, and ``R[j, k]``
    is the importance of code ``j`` for factor ``k``. With ``P[j, k] = R[j, k] /
    sum_k R[j, k]``: ``D_j = 1 - H_K(P[j, :])`` (entropy in base ``n_factors``),
    ``rho_j = sum_k R[j, k] / sum R``, ``D = sum_j rho_j D_j``. With
    ``Pt[j, k] = R[j, k] / sum_j R[j, k]``: ``C_k = 1 - H_J(Pt[:, k])`` (base
    ``n_codes``), ``C = mean_k C_k``. ``I`` is the mean held-out R².

    Parameters
    ----------
    codes : array (N, n_codes)
        At least two codes.
    factors : array (N, n_factors)
        At least two factors, each varying; class indices are regressed as numbers.
    model : {"lasso", "forest"}
        ``"lasso"`` (default, the paper's main choice): ``sklearn.linear_model.Lasso``
        with ``alpha``, ``R = |coef|``; milliseconds, blind to non-monotone codes.
        ``"forest"``: ``RandomForestRegressor`` with ``n_estimators`` trees
        considering every code at each split, ``R`` = impurity importances;
        nonlinear, about 50 times slower, and it scores a rotated code higher
        than Lasso does. Lasso's D and C ignore how noisy a code is (that is I);
        the forest's fall with the signal. Read D and C together with I.
    test_fraction : float
        Share of rows, drawn at random with ``seed``, held out for informativeness.
    seed : int
        Seeds the split and the forest.
    alpha : float
        Lasso's L1 penalty on standardized variables (0.02, as Eastwood & Williams).
    n_estimators : int
        Trees of the forest.
    """
    z, f = _codes_and_factors(codes, factors)
    if z.shape[1] < 2 or f.shape[1] < 2:
        raise ValueError(
            f"dci: needs at least 2 codes and 2 factors, got codes {z.shape}, factors {f.shape}"
        )
    if model not in ("lasso", "forest"):
        raise ValueError(f"model: expected 'lasso' or 'forest', got {model!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    n = z.shape[0]
    n_test = round(n * test_fraction)
    if n_test < 1 or n - n_test < 2:
        raise ValueError(f"codes: {n} rows are too few to hold out test_fraction={test_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    train, test = order[n_test:], order[:n_test]

    def standardized(a: np.ndarray) -> np.ndarray:
        sd = a[train].std(axis=0)
        return (a - a[train].mean(axis=0)) / np.where(sd > 0, sd, 1.0)

    z, f = standardized(z), standardized(f)
    importance = np.zeros((z.shape[1], f.shape[1]))
    informativeness = np.zeros(f.shape[1])
    for k in range(f.shape[1]):
        if model == "lasso":
            regressor = Lasso(alpha=alpha).fit(z[train], f[train, k])
            importance[:, k] = np.abs(regressor.coef_)
        else:
            regressor = RandomForestRegressor(
                n_estimators=n_estimators, max_features=1.0, random_state=seed
            ).fit(z[train], f[train, k])
            importance[:, k] = regressor.feature_importances_
        informativeness[k] = regressor.score(z[test], f[test, k])
    per_code = _one_minus_entropy(importance, axis=1)
    total = importance.sum()
    rho = importance.sum(axis=1) / total if total > 0 else np.zeros(z.shape[1])
    per_factor = _one_minus_entropy(importance, axis=0)
    return DCIResult(
        float(np.sum(rho * per_code)),
        float(per_factor.mean()),
        float(informativeness.mean()),
        importance,
        per_code,
        per_factor,
        informativeness,
    )


def _posterior(mu: Any, logvar: Any) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(mu, dtype=np.float64)
    lv = np.asarray(logvar, dtype=np.float64)
    if m.ndim != 2 or m.shape != lv.shape:
        raise ValueError(
            f"mu and logvar: expected the same shape (N, units), got {m.shape} and {lv.shape}"
        )
    return m, lv


def kl_per_unit(mu: Any, logvar: Any) -> np.ndarray:
    """KL(N(mu, exp(logvar)) || N(0, 1)) of each latent unit, averaged over samples (nats).

    Parameters
    ----------
    mu, logvar : arrays (N, units)
        Posterior means and log-variances of a diagonal Gaussian posterior.

    Returns
    -------
    array (units,)
        ``mean_n 0.5 * (mu^2 + exp(logvar) - logvar - 1)``.
    """
    m, lv = _posterior(mu, logvar)
    return np.mean(0.5 * (m * m + np.exp(lv) - lv - 1.0), axis=0)


def active_units(mu: Any, threshold: float = 0.01) -> np.ndarray:
    """Which units are active (Burda et al. 2015): ``Cov_x(E_q[z_u]) > threshold``.

    Parameters
    ----------
    mu : array (N, units)
        Posterior means ``E_q(z|x)[z]`` over ``N`` data points.
    threshold : float
        Activity (variance over the data, ddof=0) a unit must exceed; 0.01 in the paper.

    Returns
    -------
    array (units,) of bool
        True for active units; ``.sum()`` counts them.
    """
    m = _matrix("mu", mu, "units")
    return m.var(axis=0) > threshold
