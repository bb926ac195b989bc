"""Disentanglement metrics on codes with known answers.

The disentangled code: one latent per shapes factor, each an invertible
monotone function of that factor alone, plus two collapsed units (a constant
and a unit of tiny independent noise), as a VAE with spare units would give.
The rotated code: the five informative latents, standardized, times a random
rotation (``special_ortho_group``, seed 0), so every latent mixes every factor;
the collapsed units stay. Rotation keeps all the information (DCI
informativeness stays high) and destroys the axis alignment the metrics score.

Measured on these codes (N = 5000 grid samples, seed 0):

====================  ================  ================
metric                disentangled      rotated
====================  ================  ================
MIG (20 bins)         0.882             0.046
β-VAE metric, L = 64  1.000             0.902
β-VAE metric, L = 8   1.000             0.520
DCI Lasso D / C / I   1.00 / 1.00 / 0.98  0.13 / 0.28 / 0.98
DCI forest D / C / I  1.00 / 1.00 / 1.00  0.28 / 0.40 / 0.97
====================  ================  ================

These measurements are for the reader; no assertion is a band drawn around
them. Each score is checked against a reference that does not use the code
under test: a closed form derived from how the code was built (the β-VAE
metric of an axis-aligned and of a 45°-rotated code, Lasso's importances of
any orthogonal mixture as soft-thresholded correlations, the MI of a
deterministic code), or a re-implementation written from the paper in this
file (MIG from contingency tables; the β-VAE metric and DCI's D and C from the
batches and importances the implementation was given or returned).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import special_ortho_group
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cortexsim.analysis import (
    active_units,
    beta_vae_score,
    dci,
    discretize,
    kl_per_unit,
    mig,
    mutual_information,
)
from cortexsim.data.shapes import FACTOR_SIZES

SIZES = np.asarray(FACTOR_SIZES)
N = 5000


def _informative(classes: np.ndarray) -> np.ndarray:
    """One strictly monotone, nonlinear function of each factor's class index."""
    v = classes / (SIZES - 1)
    return np.stack(
        [
            np.exp(v[:, 0]),
            v[:, 1] ** 3 + v[:, 1],
            np.tanh(2 * v[:, 2] - 1),
            np.arcsinh(5 * v[:, 3] - 2),
            2 * v[:, 4] - 1,
        ],
        axis=1,
    )


# Standardization from the grid's (uniform) distribution, fixed once, so that
# the rotated encoder is the same function for every batch the β-VAE metric draws.
_GRID = np.random.default_rng(99).integers(0, SIZES, size=(100_000, 5))
_MEAN, _SD = _informative(_GRID).mean(axis=0), _informative(_GRID).std(axis=0)
_ROTATION = special_ortho_group.rvs(5, random_state=0)


def _collapsed(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.stack([np.zeros(n), 1e-3 * rng.standard_normal(n)], axis=1)


def disentangled(classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.hstack([_informative(classes), _collapsed(len(classes), rng)])


def rotated(classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    mixed = ((_informative(classes) - _MEAN) / _SD) @ _ROTATION
    return np.hstack([mixed, _collapsed(len(classes), rng)])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    classes = rng.integers(0, SIZES, size=(N, 5))
    return classes, disentangled(classes, rng), rotated(classes, rng)


def _plug_in_mi(a: np.ndarray, b: np.ndarray) -> float:
    """Plug-in mutual information (nats) of two discrete arrays, from their contingency table."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    joint = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(joint, (ai, bi), 1.0)
    joint /= joint.sum()
    independent = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    seen = joint > 0
    return float(np.sum(joint[seen] * np.log(joint[seen] / independent[seen])))


def _entropy(a: np.ndarray) -> float:
    p = np.unique(a, return_counts=True)[1] / a.size
    return float(-np.sum(p * np.log(p)))


def _reference_mig(codes: np.ndarray, factors: np.ndarray, bins: int = 20):
    """MIG written from Chen et al. (2018): equal-width bins over each code's
    range, plug-in MI, mean over factors of (top MI - second MI) / H(v_k)."""
    binned = []
    for c in codes.T:
        edges = np.linspace(c.min(), c.max(), bins + 1)
        binned.append(np.clip(np.searchsorted(edges, c, side="right") - 1, 0, bins - 1))
    mi = np.array([[_plug_in_mi(b, v) for v in factors.T] for b in binned])
    entropy = np.array([_entropy(v) for v in factors.T])
    top = -np.sort(-mi, axis=0)
    return float(np.mean((top[0] - top[1]) / entropy)), binned, mi


def test_mig_matches_reference_and_closed_forms(data):
    classes, good, mixed = data
    for code in (good, mixed):
        expected, _, _ = _reference_mig(code, classes)
        assert mig(code, classes) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # Closed forms for the disentangled code: latent k is a function of v_k
    # alone, so its binned value is too and I(bin(z_k); v_k) = H(bin(z_k)); with
    # 20 bins that is at most log(20) < H(v_k) for the factors with more than 20
    # values, capping MIG at mean_k min(1, log(20) / H(v_k)) = 0.91.
    good_score = mig(good, classes)
    _, binned, mi = _reference_mig(good, classes)
    np.testing.assert_allclose(np.diag(mi), [_entropy(b) for b in binned[:5]], rtol=1e-12)
    ceiling = np.mean(np.minimum(1.0, np.log(20) / np.array([_entropy(v) for v in classes.T])))
    assert good_score <= ceiling + 1e-12  # measured 0.882 under 0.910
    assert mig(mixed, classes) < good_score  # measured 0.046


def test_mig_reaches_one_when_bins_resolve_every_value():
    # A linear code of the class index with as many bins as values: every bin
    # holds one value, so I(z; v) = H(v) and the other code's MI is ~0.
    rng = np.random.default_rng(1)
    classes = rng.integers(0, [4, 5], size=(4000, 2))
    assert mig(classes.astype(float), classes, bins=5) > 0.99


def test_mutual_information_shapes_and_entropy(data):
    classes, good, _ = data
    mi, entropy = mutual_information(good, classes)
    assert mi.shape == (7, 5) and entropy.shape == (5,)
    np.testing.assert_allclose(entropy, np.log(SIZES), rtol=0.02)  # uniform factors
    assert np.all(mi[5] == 0.0)  # the constant unit falls into one bin
    # The noise unit's MI is the plug-in estimator's bias, about (bins - 1)(K - 1) / 2N:
    # 0.074 nats for orientation (K = 40); measured 0.067.
    assert np.all(mi[6] < 1.5 * 19 * (SIZES - 1) / (2 * N))
    assert discretize(good).max() <= 20 and discretize(good).min() >= 1


def _standardized_class(classes: np.ndarray) -> np.ndarray:
    """Each factor's class index, linearly mapped to mean 0 and variance 1 over its grid."""
    v = classes / (SIZES - 1)
    return (v - 0.5) / np.sqrt((SIZES + 1) / (12 * (SIZES - 1)))


def test_beta_vae_metric_axis_aligned_code_scores_one():
    # Closed form: in |z1 - z2| the fixed factor's latent is exactly 0 and every
    # other informative latent is > 0 (unless all L pairs happen to agree on it
    # too), so the votes are linearly separable and the accuracy is 1 at any L.
    for pairs in (64, 8):
        rng = np.random.default_rng(5)
        score = beta_vae_score(lambda v: disentangled(v, rng), lambda v: v, SIZES,
                               pairs=pairs, n_train=500, n_test=500, seed=0)
        assert score == 1.0


def test_beta_vae_metric_of_45_degree_rotation_confuses_exactly_one_pair():
    # posX and posY (both 32 values, same standardization) rotated by 45°:
    # z3 = (s3 + s4)/sqrt(2), z4 = (s3 - s4)/sqrt(2); shape, scale and
    # orientation stay axis-aligned. Fixing k in {0, 1, 2} zeroes latent k:
    # always identified. Fixing posX gives |dz3| = |dz4| = |d s4|/sqrt(2),
    # fixing posY gives |d s3|/sqrt(2): identically distributed, and the
    # aligned latents behave alike in both cases, so no classifier beats a
    # coin between them. Expected accuracy 3/5 + (2/5)(1/2) = 0.8; each test
    # vote is right with probability 0.8, so the accuracy has sd
    # sqrt(0.8 * 0.2 / n_test) = 0.0089 and 4 sd bound it.
    def encode(classes):
        s = _standardized_class(classes)
        z = s.copy()
        z[:, 3], z[:, 4] = (s[:, 3] + s[:, 4]) / np.sqrt(2), (s[:, 3] - s[:, 4]) / np.sqrt(2)
        return z

    n_test = 2000
    score = beta_vae_score(encode, lambda v: v, SIZES, pairs=64, n_train=1000, n_test=n_test,
                           seed=0)
    assert abs(score - 0.8) < 4 * np.sqrt(0.8 * 0.2 / n_test)  # measured 0.804


def _reference_beta_vae(calls, pairs: int, n_train: int) -> float:
    """The β-VAE metric written from Higgins et al. (2017), on the batches the
    implementation passed to ``encode`` (recorded as (factors, codes), first
    members of a set of pairs, then their second members).

    Checks that every vote's L pairs share exactly one factor (its label) and
    lie on the grid, then: feature = mean over the L pairs of |z1 - z2|, a
    standardized logistic regression fitted on the first ``n_train`` votes,
    accuracy on the rest."""
    n_factors = SIZES.size

    def stack(part, i):
        return np.concatenate([c[i] for c in calls[part::2]])

    v1 = stack(0, 0).reshape(-1, pairs, n_factors)
    v2 = stack(1, 0).reshape(-1, pairs, n_factors)
    z1, z2 = stack(0, 1).reshape(len(v1), pairs, -1), stack(1, 1).reshape(len(v2), pairs, -1)
    assert np.all((v1 >= 0) & (v1 < SIZES)) and np.all((v2 >= 0) & (v2 < SIZES))
    shared = np.all(v1 == v2, axis=1)  # (votes, n_factors)
    assert np.all(shared.sum(axis=1) == 1), "a vote's pairs must share exactly one factor"
    label = np.argmax(shared, axis=1)
    feature = np.abs(z1 - z2).mean(axis=1)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    classifier.fit(feature[:n_train], label[:n_train])
    return float(classifier.score(feature[n_train:], label[n_train:]))


def test_beta_vae_metric_matches_reference_on_random_rotation():
    # A random rotation has no closed form; the score must equal the paper's
    # metric recomputed on the same batches. Averaging |z1 - z2| over more
    # pairs can only sharpen the rotated code's signature (E|(R d)_i| grows with
    # sum_{j != k} R_ij^2 Var d_j, and the feature's sd falls as 1/sqrt(L)):
    # measured 0.902 at L = 64 and 0.520 at L = 8 (chance 0.2).
    scores = {}
    for pairs in (64, 8):
        rng, calls = np.random.default_rng(5), []

        def encode(v, rng=rng, calls=calls):
            z = rotated(v, rng)
            calls.append((v.copy(), z))
            return z

        n_train, n_test = 500, 500
        scores[pairs] = beta_vae_score(encode, lambda v: v, SIZES, pairs=pairs,
                                       n_train=n_train, n_test=n_test, seed=0)
        expected = _reference_beta_vae(calls, pairs, n_train)
        assert abs(scores[pairs] - expected) <= 1 / n_test  # at most one vote apart
    assert scores[8] < scores[64]


def test_beta_vae_metric_is_seeded(data):
    def run():
        rng = np.random.default_rng(3)
        return beta_vae_score(lambda v: rotated(v, rng), lambda v: v, SIZES,
                              pairs=8, n_train=100, n_test=100, seed=4)

    assert run() == run()


def _reference_d_and_c(importance: np.ndarray) -> tuple[float, float]:
    """D and C of Eastwood & Williams (2018) from an importance matrix R (codes x factors)."""
    n_codes, n_factors = importance.shape

    def one_minus_entropy(p: np.ndarray, base: int) -> float:
        if p.sum() == 0:
            return 0.0
        q = p[p > 0] / p.sum()
        return 1.0 + float(np.sum(q * np.log(q))) / np.log(base)

    d_code = [one_minus_entropy(row, n_factors) for row in importance]
    weight = importance.sum(axis=1) / importance.sum()
    c_factor = [one_minus_entropy(col, n_codes) for col in importance.T]
    return float(np.dot(weight, d_code)), float(np.mean(c_factor))


def _lasso_prediction(mixing: np.ndarray, corr: np.ndarray, alpha: float = 0.02):
    """Closed-form Lasso importances and R² for codes that are an orthogonal mixture.

    Codes z = u M (u: one standardized latent per factor, independent, with
    corr(v_k, u_k) = corr[k]; M orthogonal) are orthonormal, and the standardized
    factor is v_k = corr[k] u_k + e_k with e_k uncorrelated with every u. With an
    orthonormal design, Lasso (1/2n |y - Xw|^2 + alpha |w|_1) soft-thresholds the
    least-squares coefficients: w_kj = S(corr[k] M[k, j], alpha). The fit then
    explains R²_k = 2 sum_j w_kj corr[k] M[k, j] - sum_j w_kj^2 of v_k.
    Returns the importances |w| as (codes, factors) and R² per factor."""
    ls = corr[:, None] * mixing
    w = np.sign(ls) * np.maximum(np.abs(ls) - alpha, 0.0)
    r2 = 2 * np.sum(w * ls, axis=1) - np.sum(w * w, axis=1)
    return np.abs(w).T, r2


def test_dci_lasso_matches_soft_threshold_closed_form(data):
    classes, good, mixed = data
    u = (_informative(classes) - _MEAN) / _SD
    corr = np.array([np.corrcoef(classes[:, k], u[:, k])[0, 1] for k in range(5)])
    # The collapsed units carry nothing: importance 0, which leaves D alone and
    # puts C in base 7. Sample correlations between independent columns are
    # about 1/sqrt(4000) = 0.016, which moves each coefficient by about that
    # much: hence 0.04 on importances; D, C and I average many of them.
    for code, mixing in ((good, np.eye(5)), (mixed, _ROTATION)):
        importance, r2 = _lasso_prediction(mixing, corr)
        importance = np.vstack([importance, np.zeros((2, 5))])
        d, c = _reference_d_and_c(importance)
        result = dci(code, classes, model="lasso")
        np.testing.assert_allclose(result.importance, importance, atol=0.04)
        # Rotated code: D closed form 0.127, measured 0.128; C 0.280 and 0.281.
        assert result.disentanglement == pytest.approx(d, abs=0.02)
        assert result.completeness == pytest.approx(c, abs=0.02)
        # A rotation loses no information: R² falls only by the extra shrinkage
        # of spreading each factor over several codes (measured I 0.981 and 0.979).
        np.testing.assert_allclose(result.factor_informativeness, r2, atol=0.01)


@pytest.mark.parametrize("model", ["lasso", "forest"])
def test_dci_scores_follow_from_importance(data, model):
    classes, good, mixed = data
    g = dci(good, classes, model=model)
    r = dci(mixed, classes, model=model)
    for result in (g, r):
        d, c = _reference_d_and_c(result.importance)
        assert result.disentanglement == pytest.approx(d, rel=1e-9)
        assert result.completeness == pytest.approx(c, rel=1e-9)
        assert result.informativeness == pytest.approx(result.factor_informativeness.mean())
    assert g.importance.shape == (7, 5)
    assert np.all(g.importance[5:] < 1e-3)  # collapsed units are not used
    np.testing.assert_array_equal(np.argmax(g.importance, axis=0), np.arange(5))
    assert r.disentanglement < g.disentanglement and r.completeness < g.completeness
    if model == "forest":
        # Each factor is a step function of one latent whose values all occur in
        # the training rows: fully grown trees split on it and predict exactly.
        # (The rotated code's forest scores, 0.28 / 0.40 / 0.97, have no closed form.)
        np.testing.assert_allclose(g.factor_informativeness, 1.0, atol=1e-9)


def test_dci_lasso_separates_structure_from_noise(data):
    # Noise (sd 1 per standardized latent) lowers informativeness, not the
    # importance structure. Closed form as in _lasso_prediction: the noisy code
    # z_k = u_k + e_k standardizes to (u_k + e_k)/sqrt(2), correlated corr[k]/sqrt(2)
    # with v_k, so R²_k = corr[k]^2 / 2 - alpha^2 (0.49 on average; measured 0.51).
    # A held-out R² near 0.5 on 1000 rows has sd about 0.025 per factor, about
    # 0.012 for the mean of 5: 0.05 is 4 sd. D and C stay near their closed form 1.
    classes, _, _ = data
    rng = np.random.default_rng(7)
    u = (_informative(classes) - _MEAN) / _SD
    noisy = u + rng.standard_normal((N, 5))
    corr = np.array([np.corrcoef(classes[:, k], u[:, k])[0, 1] for k in range(5)])
    result = dci(noisy, classes)
    assert result.disentanglement > 0.9 and result.completeness > 0.9  # measured 0.987, 0.987
    assert result.informativeness == pytest.approx(np.mean(corr**2 / 2) - 0.02**2, abs=0.05)


def test_dci_entropies_by_hand():
    # Two codes, two factors, each code a noiseless copy of one factor: D = C = 1.
    rng = np.random.default_rng(2)
    f = rng.integers(0, 10, size=(500, 2)).astype(float)
    result = dci(f[:, ::-1], f)
    assert result.disentanglement == pytest.approx(1.0)
    assert result.completeness == pytest.approx(1.0)
    np.testing.assert_array_equal(result.importance[:, 0] > 0, [False, True])


def test_kl_per_unit_matches_monte_carlo():
    rng = np.random.default_rng(0)
    mu = rng.normal(0.0, 1.0, size=(2000, 4)) * [0.3, 1.0, 1.5, 0.8]
    logvar = rng.uniform(-2.0, 0.5, size=(2000, 4))
    exact = kl_per_unit(mu, logvar)
    # KL = E_q[log q(z) - log p(z)], 500 draws per row and unit (10^6 per unit).
    sd = np.exp(0.5 * logvar)
    eps = rng.standard_normal((500, 2000, 4))
    z = mu + sd * eps
    log_ratio = -0.5 * logvar - 0.5 * eps**2 + 0.5 * z**2
    np.testing.assert_allclose(exact, log_ratio.mean(axis=(0, 1)), rtol=0.02)
    assert kl_per_unit(np.zeros((3, 2)), np.zeros((3, 2))) == pytest.approx([0.0, 0.0])


def test_active_units_finds_constant_units():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(1000, 5))
    mu[:, 1] = 0.7  # collapsed: the posterior mean ignores the data
    mu[:, 3] = 0.05 * rng.normal(size=1000)  # variance 0.0025 < 0.01
    np.testing.assert_array_equal(active_units(mu), [True, False, True, False, True])
    assert active_units(mu, threshold=0.001)[3]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: mig(np.zeros((10, 3)), np.zeros((9, 2))), r"same number of rows"),
        (lambda: mig(np.zeros(10), np.zeros((10, 2))), r"codes: expected shape \(N, n_codes\)"),
        (lambda: mig(np.random.rand(10, 1), np.arange(20).reshape(10, 2)), r"at least 2 codes"),
        (lambda: mig(np.random.rand(10, 3), np.ones((10, 2))), r"factors: column 0 is constant"),
        (lambda: discretize(np.zeros((5, 2)), bins=1), r"bins"),
        (lambda: dci(np.random.rand(10, 3), np.arange(20).reshape(10, 2), model="gbt"), "model"),
        (lambda: kl_per_unit(np.zeros((4, 3)), np.zeros((4, 2))), r"\(4, 3\) and \(4, 2\)"),
        (lambda: beta_vae_score(None, None, [3, 1]), r"factor_sizes"),
        (lambda: beta_vae_score(lambda v: v[:, 0], lambda v: v, [3, 4], n_train=2, n_test=2),
         r"encode\(generate\(factors\)\): expected shape"),
    ],
)
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
