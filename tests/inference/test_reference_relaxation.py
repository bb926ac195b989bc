"""The fast relaxation (predictive_coding.py) equals the plain reference
(reference.py) on every mode, start, precision, activation, loss and prior."""

import numpy as np
import pytest

from conftest import build64, put, random_data, to_np
from cortexsim import HierarchySpec, Relaxation
from cortexsim.inference import relax_discriminative, relax_generative
from cortexsim.inference.reference import reference_discriminative, reference_generative
from cortexsim.model.losses import get_loss

RTOL = 1e-10


@pytest.fixture(autouse=True, params=["numba", "numpy"])
def kernels(request):
    """Every comparison runs with the compiled passes and with their NumPy fallback."""
    from cortexsim.inference import kernels

    if request.param == "numba":
        pytest.importorskip("numba")
    kernels.use(request.param)
    yield request.param
    kernels.use("auto")

# Five areas: tanh, relu and sigmoid hidden areas of precision 2.0, 0.5 and 1.0,
# a linear top of precision 0.5 (which multiplies the loss).
DISC = HierarchySpec.from_dict({
    "name": "disc",
    "areas": [
        {"name": "x", "size": 7},
        {"name": "a", "size": 6, "activation": "tanh", "precision": 2.0},
        {"name": "b", "size": 5, "activation": "relu", "precision": 0.5},
        {"name": "c", "size": 5, "activation": "sigmoid"},
        {"name": "out", "size": 3, "activation": "linear", "precision": 0.5},
    ],
})
# Four areas, tanh throughout, a linear top of precision 1 (the plain stack).
DISC_TANH = HierarchySpec.from_dict({
    "areas": [
        {"name": "x", "size": 6},
        {"name": "h1", "size": 5, "activation": "tanh", "precision": 0.5},
        {"name": "h2", "size": 4, "activation": "tanh", "precision": 2.0},
        {"name": "y", "size": 3, "activation": "linear"},
    ],
})
# Widening above area 1: relaxing area 1 through the Gram matrix of W_2 costs
# more than the two products per step it saves, so the plain path runs (the
# stacks above take the Gram path).
DISC_WIDE = HierarchySpec.from_dict({
    "areas": [
        {"name": "x", "size": 5},
        {"name": "h1", "size": 2, "activation": "tanh", "precision": 2.0},
        {"name": "h2", "size": 9, "activation": "sigmoid"},
        {"name": "y", "size": 3, "activation": "linear"},
    ],
})
# Two areas: the only latent area is the top, the errors have nowhere to relax.
DISC_TWO = HierarchySpec.from_dict({
    "areas": [{"name": "x", "size": 4}, {"name": "y", "size": 3, "activation": "sigmoid", "precision": 2.0}],
})
# Generative: precisions on the data and a middle area, a Laplace prior on a
# middle area, tanh / sigmoid / relu / linear generative nonlinearities, the
# top area's standard Gaussian prior by default.
GEN = HierarchySpec.from_dict({
    "areas": [
        {"name": "x", "size": 7, "precision": 2.0},
        {"name": "h1", "size": 6, "activation": "tanh", "feedback_activation": "tanh", "precision": 0.5,
         "prior": {"kind": "laplace", "mean": 0.1, "scale": 0.7}},
        {"name": "h2", "size": 5, "activation": "relu", "feedback_activation": "sigmoid", "precision": 2.0},
        {"name": "h3", "size": 4, "activation": "sigmoid", "feedback_activation": "relu"},
        {"name": "z", "size": 3, "activation": "linear", "feedback_activation": "linear"},
    ],
})
# Generative with a Cauchy prior on a middle area and a Gaussian top prior of its own.
GEN_CAUCHY = HierarchySpec.from_dict({
    "areas": [
        {"name": "x", "size": 6},
        {"name": "h", "size": 4, "feedback_activation": "tanh", "precision": 0.5,
         "prior": {"kind": "cauchy", "mean": 0.0, "scale": 1.5, "weight": 0.3}},
        {"name": "z", "size": 3, "prior": {"kind": "gaussian", "mean": 0.2, "scale": 0.8}},
    ],
})


def model(spec, backend_name, seed):
    """``spec`` built in float64 with every weight and bias moved off its initial value."""
    h = build64(spec, backend_name, seed=seed)
    rng = np.random.default_rng(seed + 100)
    h.load_parameters({k: v + 0.3 * rng.normal(size=v.shape) for k, v in h.parameters_to_numpy().items()})
    return h


def host_lists(h, state):
    """The State's arrays on the host, taken at once (the fast State's arrays are
    scratch buffers that the next call on the hierarchy overwrites)."""
    def listed(values):
        return None if values is None else [to_np(h, v) for v in values]

    return {
        "mode": state.mode,
        "mu": listed(state.mu),
        "eps": listed(state.eps),
        "errors": listed(state.errors),
        "presynaptic": listed(state.presynaptic),
        "predictions": listed(state.predictions),
        "sweep.a": listed(state.sweep.a),
        "sweep.h": listed(state.sweep.h),
        "energy": to_np(h, state.energy),
        "steps": state.steps,
        "converged": state.converged,
        "target": to_np(h, state.target),
        "loss": None if state.loss is None else float(to_np(h, state.loss)),
    }


def assert_same(fast, reference, rtol=RTOL):
    """Every field of two host States agrees: exact for counts, to ``rtol`` for arrays."""
    assert fast.keys() == reference.keys()
    for key in fast:
        a, b = fast[key], reference[key]
        if key in ("mode", "steps", "converged"):
            assert a == b, (key, a, b)
        elif key == "loss":
            assert (a is None) == (b is None), key
            if a is not None:
                assert a == pytest.approx(b, rel=rtol), (key, a, b)
        elif isinstance(a, list):
            assert len(a) == len(b), (key, len(a), len(b))
            for l, (u, v) in enumerate(zip(a, b)):
                assert (u is None) == (v is None), (key, l)
                if u is not None:
                    assert u.shape == v.shape, (key, l)
                    scale = max(float(np.max(np.abs(v))), 1.0)
                    np.testing.assert_allclose(u, v, rtol=rtol, atol=rtol * scale, err_msg=f"{key}[{l}]")
        elif a is None or b is None:
            assert a is None and b is None, key
        else:
            assert a.shape == b.shape, (key, a.shape, b.shape)
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(float(np.max(np.abs(b))), 1.0),
                                       err_msg=key)


def recorder(h, top, discriminative):
    """An observer that keeps host copies of every step's activities and errors."""
    seen = []

    def observe(t, snapshot):
        if discriminative:
            areas = range(1, top + 1)
        else:
            areas = range(0, top + 1)
        seen.append((t, [to_np(h, snapshot.activity(l)) for l in areas],
                     [to_np(h, snapshot.error(l)) for l in areas if discriminative or l < top]))

    return seen, observe


def assert_same_observations(fast, reference):
    assert [t for t, _, _ in fast] == [t for t, _, _ in reference]
    for (t, mu_f, err_f), (_, mu_r, err_r) in zip(fast, reference):
        for u, v in zip(mu_f + err_f, mu_r + err_r):
            np.testing.assert_allclose(u, v, rtol=RTOL, atol=RTOL * max(float(np.max(np.abs(v))), 1.0),
                                       err_msg=f"step {t}")


def discriminative_pair(backend_name, spec, settings, loss="mse", seed=0, batch=6, observe=False):
    h = model(spec, backend_name, seed)
    x, y = random_data(np.random.default_rng(seed), batch, spec.areas[0].size, spec.areas[-1].size, loss)
    top = len(spec.areas) - 1
    seen_f, obs_f = recorder(h, top, True) if observe else (None, None)
    seen_r, obs_r = recorder(h, top, True) if observe else (None, None)
    fast = host_lists(h, relax_discriminative(h, put(h, x), put(h, y), get_loss(loss), settings, obs_f))
    reference = host_lists(h, reference_discriminative(h, put(h, x), put(h, y), get_loss(loss), settings, obs_r))
    return fast, reference, (seen_f, seen_r)


def generative_pair(backend_name, spec, settings, seed=0, batch=6, observe=False, start=None):
    h = model(spec, backend_name, seed)
    x = np.random.default_rng(seed).normal(size=(batch, spec.areas[0].size))
    top = len(spec.areas) - 1
    seen_f, obs_f = recorder(h, top, False) if observe else (None, None)
    seen_r, obs_r = recorder(h, top, False) if observe else (None, None)
    begin = None if start is None else [None] + [put(h, m) for m in start[1:]]
    fast = host_lists(h, relax_generative(h, put(h, x), settings, obs_f, start=begin))
    begin = None if start is None else [None] + [put(h, m) for m in start[1:]]
    reference = host_lists(h, reference_generative(h, put(h, x), settings, obs_r, start=begin))
    return fast, reference, (seen_f, seen_r)


def test_the_stacks_take_both_paths_of_area_one():
    from cortexsim.inference.predictive_coding import _gram_pays

    for spec, pays in ((DISC, True), (DISC_TANH, True), (DISC_WIDE, False)):
        sizes = [area.size for area in spec.areas]
        assert _gram_pays(6, sizes[1], sizes[2], 12 - (len(sizes) - 2)) is pays, spec.name


@pytest.mark.parametrize("fixed", [False, True], ids=["strict", "fixed_prediction"])
@pytest.mark.parametrize("init", ["feedforward", "zeros"])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("spec", [DISC, DISC_TANH, DISC_WIDE, DISC_TWO], ids=["relu_sigmoid", "tanh", "wide", "two_areas"])
def test_discriminative_equals_reference(backend_name, spec, loss, init, fixed):
    if loss == "cross_entropy" and spec is DISC_TWO:
        pytest.skip("cross-entropy needs a linear top area")
    settings = Relaxation(steps=12, step_size=0.15, init=init, fixed_prediction=fixed)
    fast, reference, (seen_f, seen_r) = discriminative_pair(backend_name, spec, settings, loss, observe=True)
    assert fast["steps"] == 12 and fast["energy"].shape == (13,)
    assert_same(fast, reference)
    assert_same_observations(seen_f, seen_r)
    assert len(seen_f) == 13


@pytest.mark.parametrize("fixed", [False, True], ids=["strict", "fixed_prediction"])
def test_discriminative_unit_step_and_zero_steps(backend_name, fixed):
    for steps, step_size in ((0, 0.1), (5, 1.0)):
        settings = Relaxation(steps=steps, step_size=step_size, fixed_prediction=fixed)
        fast, reference, _ = discriminative_pair(backend_name, DISC, settings, seed=3)
        assert_same(fast, reference)


@pytest.mark.parametrize("fixed", [False, True], ids=["strict", "fixed_prediction"])
@pytest.mark.parametrize("init", ["feedforward", "zeros"])
def test_discriminative_tolerance_stops_at_the_same_step(backend_name, init, fixed):
    settings = Relaxation(steps=400, step_size=0.2, tolerance=1e-6, init=init, fixed_prediction=fixed)
    fast, reference, _ = discriminative_pair(backend_name, DISC_TANH, settings, seed=4)
    assert fast["converged"] is True and 2 < fast["steps"] < 400
    assert fast["energy"].shape == (fast["steps"] + 1,)
    assert_same(fast, reference)


@pytest.mark.parametrize("init", ["feedforward", "zeros"])
@pytest.mark.parametrize("spec", [GEN, GEN_CAUCHY], ids=["laplace_middle", "cauchy_middle"])
def test_generative_equals_reference(backend_name, spec, init):
    settings = Relaxation(steps=15, step_size=0.05, init=init)
    fast, reference, (seen_f, seen_r) = generative_pair(backend_name, spec, settings, seed=1, observe=True)
    assert fast["steps"] == 15 and fast["energy"].shape == (16,)
    assert_same(fast, reference)
    assert_same_observations(seen_f, seen_r)


def test_generative_from_given_start(backend_name):
    rng = np.random.default_rng(5)
    start = [None] + [rng.normal(size=(6, a.size)) for a in GEN.areas[1:]]
    fast, reference, _ = generative_pair(backend_name, GEN, Relaxation(steps=9, step_size=0.05), seed=5,
                                         start=start)
    assert_same(fast, reference)
    # the start is where the trace begins: not the sweep
    other, _, _ = generative_pair(backend_name, GEN, Relaxation(steps=9, step_size=0.05), seed=5)
    assert abs(other["energy"][0] - fast["energy"][0]) > 1e-3


@pytest.mark.parametrize("init", ["feedforward", "zeros"])
def test_generative_tolerance_stops_at_the_same_step(backend_name, init):
    settings = Relaxation(steps=2000, step_size=0.05, tolerance=1e-5, init=init)
    fast, reference, _ = generative_pair(backend_name, GEN_CAUCHY, settings, seed=6)
    assert fast["converged"] is True and 2 < fast["steps"] < 2000
    assert_same(fast, reference)


def test_the_comparison_fails_when_the_math_differs():
    """A reference run with another step size, precision or start is caught."""
    settings = Relaxation(steps=6, step_size=0.1)
    h = model(DISC, "numpy", 0)
    x, y = random_data(np.random.default_rng(0), 6, 7, 3, "mse")
    x, y = put(h, x), put(h, y)
    loss = get_loss("mse")
    fast = host_lists(h, relax_discriminative(h, x, y, loss, settings))
    assert_same(fast, host_lists(h, reference_discriminative(h, x, y, loss, settings)))
    for other in (Relaxation(steps=6, step_size=0.1001), Relaxation(steps=6, step_size=0.1, init="zeros"),
                  Relaxation(steps=6, step_size=0.1, fixed_prediction=True)):
        with pytest.raises(AssertionError):
            assert_same(fast, host_lists(h, reference_discriminative(h, x, y, loss, other)))
    # a hierarchy whose precisions differ from the fast run's
    flat = HierarchySpec.from_dict({"areas": [dict(a.__dict__, precision=1.0, prior=None) for a in DISC.areas]})
    g = model(flat, "numpy", 0)
    with pytest.raises(AssertionError):
        assert_same(fast, host_lists(g, reference_discriminative(g, x, y, loss, settings)))

    gen_settings = Relaxation(steps=6, step_size=0.05)
    h = model(GEN, "numpy", 1)
    data = put(h, np.random.default_rng(1).normal(size=(6, 7)))
    fast = host_lists(h, relax_generative(h, data, gen_settings))
    assert_same(fast, host_lists(h, reference_generative(h, data, gen_settings)))
    with pytest.raises(AssertionError):
        assert_same(fast, host_lists(h, reference_generative(h, data, Relaxation(steps=6, step_size=0.0501))))
