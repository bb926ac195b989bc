"""Building a hierarchy: initial weights, wiring, parameter loading."""

import math

import numpy as np
import pytest

from conftest import build64, to_np
from cortexsim import ConfigurationError, HierarchySpec, build

SPEC = HierarchySpec.from_sizes([6, 5, 4], activation="tanh")


def test_shapes_and_zero_biases(backend_name):
    h = build64(SPEC, backend_name, seed=3)
    assert len(h) == 3 and h.top is h[2] and h["area1"] is h[1]
    assert h[0].parameters() == {}
    params = h.parameters_to_numpy()
    assert set(params) == {(f"area{l}", p) for l in (1, 2) for p in ("W_ff", "b_ff", "W_fb", "b_fb")}
    for l, (below, size) in enumerate([(6, 5), (5, 4)], start=1):
        assert params[(f"area{l}", "W_ff")].shape == (below, size)
        assert params[(f"area{l}", "W_fb")].shape == (size, below)
        np.testing.assert_array_equal(params[(f"area{l}", "b_ff")], np.zeros(size))
        np.testing.assert_array_equal(params[(f"area{l}", "b_fb")], np.zeros(below))
        limit = math.sqrt(6.0 / (below + size))
        assert np.all(np.abs(params[(f"area{l}", "W_ff")]) <= limit)
        assert np.abs(params[(f"area{l}", "W_ff")]).max() > 0.3 * limit


def test_same_seed_same_weights_on_every_backend(backend_name):
    ref = build(SPEC, backend="numpy", dtype="float64", seed=11).parameters_to_numpy()
    got = build64(SPEC, backend_name, seed=11).parameters_to_numpy()
    for key in ref:
        np.testing.assert_array_equal(got[key], ref[key])
    other = build64(SPEC, backend_name, seed=12).parameters_to_numpy()
    assert not np.allclose(other[("area1", "W_ff")], ref[("area1", "W_ff")])


def test_feedback_inits(backend_name):
    h = build64(HierarchySpec.from_sizes([6, 5, 4], feedback_init="transpose"), backend_name)
    p = h.parameters_to_numpy()
    np.testing.assert_array_equal(p[("area1", "W_fb")], p[("area1", "W_ff")].T)
    h = build64(HierarchySpec.from_sizes([6, 5, 4], feedback_init="zeros"), backend_name)
    assert not np.any(h.parameters_to_numpy()[("area2", "W_fb")])


def test_glorot_uniform_limit():
    spec = HierarchySpec.from_sizes([400, 300], init_scale=0.5)
    w = build(spec, dtype="float64").parameters_to_numpy()[("area1", "W_ff")]
    limit = 0.5 * math.sqrt(6.0 / 700)
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.999 * limit
    assert abs(w.std() - limit / math.sqrt(3.0)) < 0.01 * limit


def test_normal_init_scale():
    spec = HierarchySpec.from_sizes([400, 300], weight_init="normal", init_scale=0.5)
    w = build(spec, dtype="float64").parameters_to_numpy()[("area1", "W_ff")]
    assert abs(w.std() - 0.5) < 0.01 and abs(w.mean()) < 0.01
    spec = HierarchySpec.from_sizes([400, 300], weight_init="glorot_normal")
    w = build(spec, dtype="float64").parameters_to_numpy()[("area1", "W_ff")]
    assert abs(w.std() - math.sqrt(2.0 / 700)) < 0.002


def test_orthogonal_init_is_the_nearest_orthogonal_matrix_to_the_uniform_draw():
    spec = HierarchySpec.from_sizes([30, 12, 40], weight_init="orthogonal", init_scale=2.0)
    params = build(spec, dtype="float64", seed=4).parameters_to_numpy()
    tall, wide = params[("area1", "W_ff")], params[("area2", "W_ff")]  # 30 x 12, 12 x 40
    np.testing.assert_allclose(tall.T @ tall, 4.0 * np.eye(12), atol=1e-12)
    np.testing.assert_allclose(wide @ wide.T, 4.0 * np.eye(12), atol=1e-12)
    # the same seed's Glorot-uniform draw, polar factor by hand: the closest orthogonal matrix to it
    uniform = build(HierarchySpec.from_sizes([30, 12, 40]), dtype="float64", seed=4).parameters_to_numpy()
    draw = uniform[("area1", "W_ff")]
    values, vectors = np.linalg.eigh(draw.T @ draw)
    np.testing.assert_allclose(tall, 2.0 * draw @ vectors @ np.diag(values ** -0.5) @ vectors.T, atol=1e-10)


def test_load_parameters_round_trip_and_copies(backend_name):
    h = build64(SPEC, backend_name, seed=0)
    rng = np.random.default_rng(0)
    new = {key: rng.normal(size=v.shape) for key, v in h.parameters_to_numpy().items()}
    h.load_parameters(new)
    got = h.parameters_to_numpy()
    for key in new:
        np.testing.assert_array_equal(got[key], new[key])
    # the hierarchy holds its own copy: changing it does not reach the caller
    before = new[("area1", "W_ff")].copy()
    h[1].W_ff[...] = 0.0
    np.testing.assert_array_equal(new[("area1", "W_ff")], before)
    # backend arrays are accepted too
    h2 = build64(SPEC, backend_name, seed=5)
    h2.load_parameters(h.parameters())
    np.testing.assert_array_equal(h2.parameters_to_numpy()[("area2", "W_fb")], new[("area2", "W_fb")])


def test_load_parameters_wrong_shape_names_area_and_expected_shape(backend_name):
    h = build64(SPEC, backend_name)
    with pytest.raises(
        ConfigurationError,
        match=r"parameter W_ff of area 'area2': shape \(4, 5\) does not match the wiring "
        r"'area1' \(5 units\) -> 'area2' \(4 units\), which needs \(5, 4\)",
    ):
        h.load_parameters({("area2", "W_ff"): np.zeros((4, 5))})
    with pytest.raises(ConfigurationError, match=r"b_fb of area 'area1'.*needs \(6,\)"):
        h.load_parameters({("area1", "b_fb"): np.zeros(5)})
    with pytest.raises(ConfigurationError, match=r"parameter \('area3', 'W_ff'\): no such parameter"):
        h.load_parameters({("area3", "W_ff"): np.zeros((4, 5))})
    # nothing was half-loaded
    assert to_np(h, h[2].W_ff).shape == (5, 4)


def test_area_lookup_suggests_names():
    h = build(SPEC)
    with pytest.raises(KeyError, match=r"no area named 'aera1'.*did you mean 'area1'"):
        h["aera1"]


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_bad_seed(seed):
    with pytest.raises(ConfigurationError, match="seed: expected a whole number >= 0"):
        build(SPEC, seed=seed)


def test_build_from_mapping_and_bad_model():
    h = build(SPEC.to_dict(), dtype="float64")
    assert h.spec == SPEC
    with pytest.raises(ConfigurationError, match="model: expected a HierarchySpec"):
        build([6, 5, 4])


@pytest.mark.parametrize("stochastic", [(), (1,), (1, 2), (2,)])
def test_parameter_keys_of_a_description_are_those_build_makes(stochastic):
    from cortexsim.model.hierarchy import parameter_keys

    areas = [{"name": f"a{i}", "size": 4 + i, **({"stochastic": True} if i in stochastic else {})}
             for i in range(4)]
    spec = HierarchySpec.from_dict({"areas": areas})
    assert parameter_keys(spec) == list(build(spec).parameters())
