"""Oddball experiment: the sequence, the no-mechanism control, repetition
suppression and mismatch with carry-over and fast plasticity, the untouched
trained model, the saved result and the figure."""

import functools
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

import cortexsim as cs
from cortexsim import ConfigurationError, Relaxation, plots
from cortexsim.experiments import EXPERIMENTS, load_result, oddball, save_result, settings_of
from cortexsim.experiments.oddball import oddball_sequence, repetitions
from cortexsim.inference import relax_generative
from cortexsim.optim import make_optimizer
from cortexsim.rules.predictive_coding import PredictiveCoding
from cortexsim.study.plan import load_study

ROOT = Path(__file__).resolve().parents[2]
FAST = {"presentations": 40, "p_deviant": 0.15, "lead_in": 5}


MODEL = {"areas": [{"name": "pixels", "size": 64},
                   {"name": "h1", "size": 16, "feedback_activation": "tanh"},
                   {"name": "top", "size": 8, "feedback_activation": "tanh"}]}


def rule(**inference) -> PredictiveCoding:
    settings = {"steps": 20, "step_size": 0.05, "init": "zeros", **inference}
    return PredictiveCoding(mode="generative", inference=Relaxation(**settings))


@functools.cache
def _trained_parameters() -> dict:
    """A 64-16-8 generative model trained for 3 epochs on the digits."""
    h = cs.build(MODEL, dtype="float64", seed=0)
    learner, optimizer = rule(), make_optimizer("adam", lr=3e-3)
    x = cs.data.load("digits").x_train
    order = np.random.default_rng(0).permutation(len(x))
    for _ in range(3):
        for start in range(0, len(x), 32):
            state = learner.infer(h, h.backend.asarray(x[order[start : start + 32]]))
            optimizer.step(h, learner.gradients(h, state))
    return h.parameters_to_numpy()


def tiny() -> cs.Hierarchy:
    """A fresh copy of the small trained model."""
    h = cs.build(MODEL, dtype="float64", seed=0)
    h.load_parameters(_trained_parameters())
    return h


@pytest.fixture(scope="module")
def adapted():
    """Both mechanisms on (with the control), on seeds 0 and 1."""
    return [oddball.run(tiny(), rule(), seed=s, **FAST) for s in (0, 1)]


# -- the sequence ---------------------------------------------------------------


def test_sequence_rate_gap_lead_in_and_seed():
    deviant = oddball_sequence(20000, 0.15, 5, 1, np.random.default_rng(3))
    assert not deviant[:5].any()
    assert abs(deviant[5:].mean() - 0.15) < 0.01  # the asked share, despite the gap
    assert not np.any(deviant[1:] & deviant[:-1])  # never two deviants in a row
    again = oddball_sequence(20000, 0.15, 5, 1, np.random.default_rng(3))
    other = oddball_sequence(20000, 0.15, 5, 1, np.random.default_rng(4))
    assert np.array_equal(deviant, again) and not np.array_equal(deviant, other)
    spaced = oddball_sequence(20000, 0.1, 8, 3, np.random.default_rng(0))
    gaps = np.diff(np.flatnonzero(spaced))
    assert gaps.min() >= 4 and abs(spaced[8:].mean() - 0.1) < 0.01 and not spaced[:8].any()


def test_repetition_numbers():
    deviant = np.array([0, 0, 0, 1, 0, 0, 1, 0], dtype=bool)
    assert repetitions(deviant).tolist() == [1, 2, 3, 0, 1, 2, 0, 1]


def test_run_records_the_sequence_and_every_step(adapted):
    r = adapted[0]
    deviant = r.arrays["deviant"].astype(bool)
    assert r.arrays["errors"].shape == (40, 21, 2)  # presentations, steps + 1, areas below the top
    assert r.arrays["control_errors"].shape == (40, 21, 2)
    assert r.settings["areas"] == ["pixels", "h1"] and r.summary["deviants"] == deviant.sum() > 0
    assert np.array_equal(r.arrays["repetition"], repetitions(deviant))
    np.testing.assert_allclose(r.arrays["response"], r.arrays["errors"].mean(axis=1))
    again = oddball.run(tiny(), rule(), seed=0, **FAST)
    assert np.array_equal(again.arrays["deviant"], r.arrays["deviant"])
    np.testing.assert_allclose(again.arrays["errors"], r.arrays["errors"], rtol=1e-12)
    assert not np.array_equal(adapted[1].arrays["deviant"], r.arrays["deviant"])
    digits = cs.data.load("digits")
    index = r.arrays["stimulus_index"]
    assert digits.y_test[index].tolist() == [0, 1]
    np.testing.assert_array_equal(r.arrays["stimuli"], digits.x_test[index])


# -- mechanisms -----------------------------------------------------------------


def test_without_mechanisms_repeated_standards_answer_identically(adapted):
    r = oddball.run(tiny(), rule(), seed=0, carry_over=0.0, plasticity_lr=0.0, control=False, **FAST)
    deviant = r.arrays["deviant"].astype(bool)
    standards, deviants = r.arrays["errors"][~deviant], r.arrays["errors"][deviant]
    np.testing.assert_allclose(standards, np.broadcast_to(standards[0], standards.shape), rtol=1e-12, atol=0)
    np.testing.assert_allclose(deviants, np.broadcast_to(deviants[0], deviants.shape), rtol=1e-12, atol=0)
    for area in ("pixels", "h1"):
        assert r.summary[f"suppression.{area}"] == pytest.approx(1.0, abs=1e-12)
    # the control of a run with the mechanisms on is this very run
    np.testing.assert_allclose(adapted[0].arrays["control_errors"], r.arrays["errors"], rtol=1e-12)


def test_mechanisms_give_repetition_suppression_and_mismatch(adapted):
    for r in adapted:
        deviant = r.arrays["deviant"].astype(bool)
        for i, area in enumerate(("pixels", "h1")):
            s = r.summary
            assert s[f"late_standard.{area}"] < 0.8 * s[f"first_standard.{area}"]
            assert s[f"suppression.{area}"] < 0.8
            assert s[f"mismatch.{area}"] > 0
            assert s[f"mismatch.{area}"] > s[f"control.mismatch.{area}"]
            after = np.flatnonzero(deviant)
            response = r.arrays["response"][:, i]
            assert np.mean(response[after] > response[after - 1]) >= 0.75  # most deviants, one by one


def test_each_mechanism_alone_suppresses_repeated_standards():
    carry = oddball.run(tiny(), rule(), seed=0, carry_over=1.0, plasticity_lr=0.0, control=False, **FAST)
    plastic = oddball.run(tiny(), rule(), seed=0, carry_over=0.0, plasticity_lr=0.05, control=False, **FAST)
    for r in (carry, plastic):
        response = r.arrays["response"]
        assert np.all(response[1] < response[0])  # the second standard, in every area
        for area in ("pixels", "h1"):
            assert r.summary[f"suppression.{area}"] < 1.0
    # carry-over: a repeated standard starts where the last one ended, with its equilibrium error
    errors = carry.arrays["errors"]
    np.testing.assert_allclose(errors[1, 0], errors[0, -1], rtol=1e-10)


def test_the_trained_model_is_left_as_found():
    h = tiny()
    before = h.parameters_to_numpy()
    oddball.run(h, rule(), seed=0, plasticity_lr=0.5, **FAST)
    after = h.parameters_to_numpy()
    assert before.keys() == after.keys()
    for key in before:
        assert np.array_equal(before[key], after[key]), key


def test_relaxation_can_start_from_given_activities():
    h = tiny()
    x = h.backend.asarray(cs.data.load("digits").x_test[:3])
    settings = Relaxation(steps=30, step_size=0.1, init="zeros")
    first = relax_generative(h, x, settings)
    final_error = np.array(first.eps[0])  # the buffers are reused by the next call
    zeros = [None] + [np.zeros_like(np.array(m)) for m in first.mu[1:]]
    errors = []
    again = relax_generative(h, x, settings, lambda t, s: errors.append(np.array(s.error(0))),
                             start=first.mu)  # the previous State's own buffers, as the experiment passes them
    np.testing.assert_allclose(errors[0], final_error, rtol=1e-12)
    assert again.energy[0] == pytest.approx(first.energy[-1], rel=1e-12)
    fresh = relax_generative(h, x, settings, start=zeros)
    np.testing.assert_allclose(fresh.energy, relax_generative(h, x, settings).energy, rtol=1e-12)


# -- checks, saving, figure, study --------------------------------------------


@pytest.mark.parametrize("settings, message", [
    ({"p_deviant": 0.6}, r"oddball\.p_deviant: .*at most 0\.5"),
    ({"deviant_class": 0}, r"oddball\.deviant_class: must differ"),
    ({"carry_over": 1.5}, r"oddball\.carry_over"),
    ({"measure": "rms"}, r"oddball\.measure: unknown value 'rms'"),
])
def test_bad_settings_are_named(settings, message):
    with pytest.raises(ConfigurationError, match=message):
        oddball.run(tiny(), rule(), seed=0, **{**FAST, **settings})


def test_needs_generative_predictive_coding():
    with pytest.raises(ConfigurationError, match="generative predictive coding"):
        oddball.run(tiny(), PredictiveCoding(mode="discriminative"), seed=0, **FAST)


def test_result_round_trip_summary_and_figure(adapted, tmp_path):
    path = save_result(adapted[0], tmp_path / "seed0.oddball.h5")
    loaded = load_result(path)
    assert loaded.kind == "oddball" and loaded.summary == adapted[0].summary
    assert loaded.settings == adapted[0].settings
    assert loaded.arrays.keys() == adapted[0].arrays.keys()
    for name, array in adapted[0].arrays.items():
        assert np.array_equal(loaded.arrays[name], array), name
    results = {"pc": [loaded, adapted[1]]}
    lines = oddball.summary(results)
    assert any(line.startswith("| pc | pixels | 2 |") for line in lines)
    assert any(line.startswith("| pc | h1 | 2 |") for line in lines)
    png = plots.save(oddball.figure(results), tmp_path / "oddball.png", dpi=60)
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 100 and image.shape[1] > 200
    assert image[..., :3].std() > 0.05 and image[..., :3].min() < 0.5  # drawn on, not blank


def test_registered_and_the_shipped_study_is_valid():
    assert EXPERIMENTS["oddball"] is oddball
    assert settings_of({"kind": "oddball", "p_deviant": 0.1}, "experiments[0]") == ("oddball", {"p_deviant": 0.1})
    with pytest.raises(ConfigurationError, match=r"experiments\[0\]\.p_deviance: unknown key"):
        settings_of({"kind": "oddball", "p_deviance": 0.1}, "experiments[0]")
    plan = load_study(ROOT / "studies" / "oddball.toml")
    assert [kind for kind, _ in plan.experiments] == ["oddball"]
