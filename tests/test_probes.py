"""Probe declarations: alignment maths, row shapes and axis names per quantity,
default names, and the per-batch values a probe takes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import build64
from cortexsim import ConfigurationError, HierarchySpec, Probe
from cortexsim.rules import GenerativeTargetProp
from cortexsim.sim.probes import METRICS, QUANTITIES, alignment, dims, row_shape, row_value

SPEC = HierarchySpec.from_sizes([6, 5, 4, 3])
RECOGNITION = [(a, p) for a in ("area1", "area2", "area3") for p in ("W_ff", "b_ff")]


def random_gradients(h, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    params = h.parameters()
    return {key: rng.normal(size=params[key].shape) for key in RECOGNITION}


def on_backend(h, grads: dict) -> dict:
    return {key: h.backend.asarray(value) for key, value in grads.items()}


def host_alignment(h, mine: dict, ref: dict) -> dict:
    result = {k: h.backend.to_numpy(v) for k, v in alignment(h, on_backend(h, mine), on_backend(h, ref)).items()}
    for value in result.values():
        assert value.shape == (2,)
    return result


def numpy_cosine(mine: dict, ref: dict, keys) -> float:
    a = np.concatenate([np.ravel(mine[k]) for k in keys])
    b = np.concatenate([np.ravel(ref[k]) for k in keys])
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# -- alignment -----------------------------------------------------------------------


def test_identical_gradients_are_aligned(backend_name):
    h = build64(SPEC, backend_name)
    g = random_gradients(h)
    result = host_alignment(h, g, g)
    areas = {"area1", "area2", "area3"}
    assert set(result) == areas | {f"{a}.recognition" for a in areas} | {"recognition", "all"}
    for name, (cos, angle) in result.items():
        assert cos == pytest.approx(1.0, abs=1e-12), name
        assert angle == pytest.approx(0.0, abs=1e-5), name


def test_opposite_gradients(backend_name):
    h = build64(SPEC, backend_name)
    g = random_gradients(h)
    result = host_alignment(h, g, {k: -v for k, v in g.items()})
    for name, (cos, angle) in result.items():
        assert cos == pytest.approx(-1.0, abs=1e-12), name
        assert angle == pytest.approx(180.0, abs=1e-5), name


def test_orthogonal_gradients(backend_name):
    h = build64(SPEC, backend_name)
    g = random_gradients(h)
    # The rule moves only the weights, the reference only the biases.
    mine = {k: (v if k[1] == "W_ff" else 0 * v) for k, v in g.items()}
    ref = {k: (v if k[1] == "b_ff" else 0 * v) for k, v in g.items()}
    result = host_alignment(h, mine, ref)
    for name, (cos, angle) in result.items():
        assert cos == pytest.approx(0.0, abs=1e-12), name
        assert angle == pytest.approx(90.0, abs=1e-9), name


def test_alignment_matches_numpy_per_area_and_overall(backend_name):
    h = build64(SPEC, backend_name)
    mine, ref = random_gradients(h, 1), random_gradients(h, 2)
    mine[("area2", "W_ff")] = ref[("area2", "W_ff")] + 0.1 * mine[("area2", "W_ff")]  # a well aligned area
    result = host_alignment(h, mine, ref)
    for name in ("area1", "area2", "area3", "all"):
        keys = RECOGNITION if name == "all" else [(name, "W_ff"), (name, "b_ff")]
        cos = numpy_cosine(mine, ref, keys)
        np.testing.assert_allclose(result[name], [cos, math.degrees(math.acos(cos))], rtol=1e-10)
    assert result["area2"][0] > 0.5 > abs(result["area1"][0])


def test_alignment_skips_parameters_the_rule_does_not_move():
    h = build64(SPEC, "numpy")
    ref = random_gradients(h)
    mine = {k: v for k, v in ref.items() if k[0] != "area3"}
    mine[("area1", "b_ff")] = -mine[("area1", "b_ff")]
    result = host_alignment(h, mine, ref)
    assert set(result) == {"area1", "area2", "all", "area1.recognition", "area2.recognition", "recognition"}
    keys = [k for k in RECOGNITION if k[0] != "area3"]
    assert result["all"][0] == pytest.approx(numpy_cosine(mine, ref, keys), rel=1e-12)
    assert result["area2"][0] == pytest.approx(1.0)


def test_alignment_splits_the_recognition_and_generative_pathways():
    h = build64(SPEC, "numpy")
    params = h.parameters()
    rng = np.random.default_rng(4)
    keys = [(a, p) for a in ("area1", "area2", "area3") for p in ("W_ff", "b_ff", "W_fb", "b_fb")
            if (a, p) in params]
    mine = {k: rng.normal(size=params[k].shape) for k in keys}
    ref = {k: rng.normal(size=params[k].shape) for k in keys}
    for name in ("W_fb", "b_fb"):  # one well aligned generative pathway
        ref[("area2", name)] = mine[("area2", name)]
    result = host_alignment(h, mine, ref)
    generative = [k for k in keys if k[1] in ("W_fb", "b_fb")]
    expected = {
        "area2.generative": [("area2", "W_fb"), ("area2", "b_fb")],
        "area2.recognition": [("area2", "W_ff"), ("area2", "b_ff")],
        "area2": [k for k in keys if k[0] == "area2"],
        "generative": generative,
        "recognition": [k for k in keys if k not in generative],
        "all": keys,
    }
    for name, group in expected.items():
        cos = numpy_cosine(mine, ref, group)
        np.testing.assert_allclose(result[name], [cos, math.degrees(math.acos(min(cos, 1.0)))],
                                   rtol=1e-10, atol=1e-5)
    assert result["area2.generative"][0] > 0.9 > result["area2.recognition"][0]
    Probe("alignment", "area2.generative").validate(hierarchy=h)
    with pytest.raises(ConfigurationError, match="probe.target: unknown value 'area2.decoder'"):
        Probe("alignment", "area2.decoder").validate(hierarchy=h)


def test_alignment_of_a_zero_update_is_finite():
    h = build64(SPEC, "numpy")
    ref = random_gradients(h)
    result = host_alignment(h, {k: 0 * v for k, v in ref.items()}, ref)
    for cos, angle in result.values():
        assert cos == 0.0 and angle == pytest.approx(90.0)


# -- shapes, axes, names ---------------------------------------------------------------


@pytest.mark.parametrize(
    "probe, shape, axes",
    [
        (Probe("activity", "area1", samples=7), (7, 5), ["time", "sample", "unit"]),
        (Probe("error", "area2", samples=3), (3, 4), ["time", "sample", "unit"]),
        (Probe("prediction", "area0", samples=2), (2, 6), ["time", "sample", "unit"]),
        (Probe("weights", "area1.W_ff"), (6, 5), ["time", "row", "column"]),
        (Probe("weights", "area2.W_fb"), (4, 5), ["time", "row", "column"]),
        (Probe("weights", "area3.b_ff"), (3,), ["time", "unit"]),
        (Probe("update", "area1.b_fb"), (6,), ["time", "unit"]),
        (Probe("update", "area3.W_ff"), (4, 3), ["time", "row", "column"]),
        (Probe("alignment", "area2"), (2,), ["time", "cosine_angle"]),
        (Probe("alignment", "all"), (2,), ["time", "cosine_angle"]),
        (Probe("energy"), (13,), ["time", "relaxation_step"]),
        (Probe("metric", "loss"), (), ["time"]),
        (Probe("metric", "steps"), (), ["time"]),
    ],
)
def test_row_shape_and_dims(probe, shape, axes):
    h = build64(SPEC, "numpy")
    probe.validate("probe", h)
    assert row_shape(probe, h, 12) == shape
    assert dims(probe) == axes
    assert len(dims(probe)) == len(shape) + 1  # time first, one name per row axis


def test_every_quantity_has_a_shape_and_dims():
    h = build64(SPEC, "numpy")
    targets = {"activity": "area1", "error": "area1", "prediction": "area1", "weights": "area1.W_ff",
               "update": "area1.W_ff", "alignment": "all", "energy": "", "metric": "loss", "kl": "area1"}
    assert set(targets) == set(QUANTITIES)
    for quantity, target in targets.items():
        probe = Probe(quantity, target)
        assert len(dims(probe)) == len(row_shape(probe, h, 4)) + 1, quantity


def test_default_names():
    assert Probe("activity", "area1").name == "area1.activity"
    assert Probe("weights", "area2.W_ff").name == "area2.W_ff.weights"
    assert Probe("alignment", "all").name == "all.alignment"
    assert Probe("metric", "loss").name == "loss.metric"
    assert Probe("energy").name == "energy"
    assert Probe("activity", "area1", name="mine").name == "mine"
    assert Probe("activity", "area1") == Probe("activity", "area1", name="area1.activity")


def test_json_round_trip_and_metrics():
    probe = Probe("activity", "area1", every=3, every_unit="epoch", samples=4)
    assert Probe.from_dict(json.loads(probe.to_json())) == probe
    assert METRICS == ("loss", "energy", "steps", "reconstruction", "kl")
    for metric in METRICS:
        Probe.from_dict({"quantity": "metric", "target": metric})


def test_validate_names_the_field():
    with pytest.raises(ConfigurationError, match=r"p\.samples: .*>= 1, got 0"):
        Probe("activity", "area1", samples=0).validate("p")
    with pytest.raises(ConfigurationError, match=r"p\.inference_every: only activity and error"):
        Probe("weights", "area1.W_ff", inference_every=1).validate("p")
    h = build64(SPEC, "numpy")
    with pytest.raises(ConfigurationError, match=r"p\.target: unknown value 'area4'"):
        Probe("activity", "area4").validate("p", h)
    with pytest.raises(ConfigurationError, match=r"p\.target: .*did you mean 'area2\.b_ff'"):
        Probe("update", "area2.bff").validate("p", h)


# -- values of one batch -----------------------------------------------------------------


def test_per_sample_rows_of_a_short_batch(backend_name):
    """A batch with fewer rows than ``samples`` gives all its rows (no out-of-bounds slice)."""
    from cortexsim import PredictiveCoding, Relaxation

    h = build64(SPEC, backend_name)
    rng = np.random.default_rng(0)
    x, y = h.backend.asarray(rng.normal(size=(3, 6))), h.backend.asarray(rng.normal(size=(3, 3)))
    rule = PredictiveCoding(inference=Relaxation(steps=3))
    state = rule.infer(h, x, y)
    grads = rule.gradients(h, state)
    for quantity in ("activity", "error", "prediction"):
        value = row_value(Probe(quantity, "area2", samples=8), h, state, grads, None)
        assert tuple(value.shape) == (3, 4), quantity
    mu = h.backend.to_numpy(state.mu[2])
    eps = h.backend.to_numpy(state.eps[2])
    np.testing.assert_array_equal(h.backend.to_numpy(row_value(Probe("activity", "area2", samples=2), h, state, grads, None)), mu[:2])
    np.testing.assert_array_equal(h.backend.to_numpy(row_value(Probe("error", "area2", samples=2), h, state, grads, None)), eps[:2])
    pred = h.backend.to_numpy(row_value(Probe("prediction", "area2", samples=3), h, state, grads, None))
    np.testing.assert_allclose(pred, mu - eps / h["area2"].precision, rtol=1e-12)
    np.testing.assert_array_equal(pred, h.backend.to_numpy(state.predictions[2])[:3])


# -- alignment of variational rules with the ELBO's gradient ------------------------------


def test_variational_rules_are_aligned_with_the_elbo_gradient(tmp_path):
    """A variational rule's alignment probe compares its update with the
    negative ELBO's gradient (16 samples, seeded by the run and the batch): the
    elbo rule's own single-sample update is well aligned with it, the literal
    generative target rule's recognition update is not (it descends a KL to the
    prior alone)."""
    import cortexsim as cs
    from cortexsim.data import binarize, load

    spec = HierarchySpec(areas=(
        cs.AreaSpec("pixels", 64),
        cs.AreaSpec("hidden", 32, activation="tanh", feedback_activation="tanh"),
        cs.AreaSpec("latent", 8, activation="linear", stochastic=True),
    ))
    digits = load("digits")
    x = binarize(digits.x_train[:256] / digits.x_train.max(), "static", seed=0)
    probes = [Probe("alignment", target) for target in ("all", "recognition", "generative", "latent.recognition")]
    rows = {}
    for label, rule in (("elbo", cs.ELBO(seed=1)), ("literal", GenerativeTargetProp("literal", seed=1))):
        with cs.Simulator(spec, rule, cs.Adam(lr=3e-3), {"x_train": x}, dtype="float64", seed=2,
                          batch_size=32, epochs=2, probes=probes, recording=tmp_path / f"{label}.h5") as sim:
            sim.run()
            rows[label] = {p.target: sim.recorded(p.name)[:, 0] for p in probes}
    for label, values in rows.items():
        assert all(np.all(np.isfinite(v)) and len(v) == 16 for v in values.values()), label
    # measured: elbo 0.93 overall, 0.92 recognition; literal 0.26 overall, 0.07 recognition
    assert rows["elbo"]["all"].mean() > 0.8, rows["elbo"]["all"]
    assert rows["elbo"]["recognition"].mean() > rows["literal"]["recognition"].mean() + 0.5, rows
    assert abs(rows["literal"]["latent.recognition"].mean()) < 0.5, rows["literal"]
