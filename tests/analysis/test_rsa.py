"""RDMs and their comparison against invariances that hold (and one that does not)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread
from scipy import stats

from cortexsim import plots
from cortexsim.analysis import compare_all, compare_rdms, rdm, rdms


def _rotation(d: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def test_rdm_entries_by_hand():
    x = np.random.default_rng(0).normal(size=(5, 6))
    assert np.allclose(rdm(x), 1 - np.corrcoef(x), atol=1e-12)
    d = rdm(x, metric="euclidean")
    assert d[1, 3] == pytest.approx(np.sqrt(np.sum((x[1] - x[3]) ** 2)))
    assert np.allclose(d, d.T) and np.all(np.diag(d) == 0)


def test_identical_representations_compare_as_one():
    x = np.random.default_rng(1).normal(size=(20, 10))
    assert compare_rdms(rdm(x), rdm(x)) == pytest.approx(1.0)
    assert compare_rdms(rdm(x), rdm(x), method="pearson") == pytest.approx(1.0)


def test_euclidean_rdm_is_rotation_invariant_and_correlation_rdm_is_not():
    x = np.random.default_rng(2).normal(size=(20, 10))
    rotated = x @ _rotation(10, 3)
    assert np.allclose(rdm(x, "euclidean"), rdm(rotated, "euclidean"), atol=1e-10)
    assert compare_rdms(rdm(x, "euclidean"), rdm(rotated, "euclidean")) == pytest.approx(1.0)
    # Correlation distance centres each pattern over units, which a rotation does not commute with.
    assert np.abs(rdm(x) - rdm(rotated)).max() > 1e-2
    # ... but it ignores each pattern's scale and offset, and the order of the units.
    assert np.allclose(rdm(x), rdm(3.0 * x + 5.0), atol=1e-10)
    assert np.allclose(rdm(x), rdm(x[:, ::-1]), atol=1e-10)
    assert not np.allclose(rdm(x, "euclidean"), rdm(3.0 * x + 5.0, "euclidean"))


def test_spearman_sees_ranks_and_pearson_sees_lines():
    d = rdm(np.random.default_rng(4).normal(size=(15, 8)), "euclidean")
    assert compare_rdms(d, d**3) == pytest.approx(1.0)  # same order
    pearson = compare_rdms(d, d**3, method="pearson")
    upper = np.triu_indices(15, k=1)
    assert pearson == pytest.approx(stats.pearsonr(d[upper], d[upper] ** 3)[0])
    assert pearson < 0.999


def test_unrelated_representations_are_near_zero():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(40, 30)), rng.normal(size=(40, 30))
    assert abs(compare_rdms(rdm(a), rdm(b))) < 0.15


def test_compare_all_is_the_matrix_of_pairwise_comparisons():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(12, 8))
    by_area = rdms({"V1": x, "V2": np.tanh(x @ rng.normal(size=(8, 5))), "IT": rng.normal(
        size=(12, 4))})
    names, m = compare_all(by_area)
    assert names == ["V1", "V2", "IT"]
    assert np.allclose(np.diag(m), 1.0) and np.allclose(m, m.T)
    assert m[0, 2] == pytest.approx(compare_rdms(by_area["V1"], by_area["IT"]))
    upper = np.triu_indices(12, k=1)
    want = stats.spearmanr(by_area["V1"][upper], by_area["V2"][upper])[0]
    assert m[0, 1] == pytest.approx(want)


def test_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"activity.*\(5,\)"):
        rdm(np.zeros(5))
    with pytest.raises(ValueError, match=r"b: shape \(4, 4\)"):
        compare_rdms(np.zeros((5, 5)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"a: expected a square.*\(5, 4\)"):
        compare_rdms(np.zeros((5, 4)), np.zeros((5, 5)))
    with pytest.raises(ValueError, match="metric"):
        rdm(np.zeros((3, 3)), metric="manhattan")


def test_rdm_grid_renders(tmp_path):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(10, 6))
    fig = plots.rdm_grid(rdms({"V1": x, "V2": x @ rng.normal(size=(6, 4))}))
    image = imread(plots.save(fig, tmp_path / "rdm.png"))
    assert image.shape[0] > 100 and image[..., :3].std() > 0.01
