"""Epoch metrics of a relaxation with a tolerance: the fraction of batches
whose relaxation met it before the cap, and the mean steps taken, held to a
per-batch count made with the plain reference relaxation."""

import numpy as np
import pytest

import cortexsim as cs
from cortexsim import Adam, Backprop, PredictiveCoding, Relaxation, Scheduler
from cortexsim.inference.reference import reference_discriminative
from cortexsim.rules import Capabilities

SPEC = cs.HierarchySpec.from_sizes([6, 5, 4, 3], activation="tanh")


def data(n=56, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6)), rng.integers(0, 3, size=n)


def scheduler(settings, epochs=2, seed=1):
    h = cs.build(SPEC, dtype="float64", seed=seed)
    x, y = data()
    rule = PredictiveCoding(inference=settings)
    return Scheduler(h, rule, Adam(lr=1e-2), x, y, batch_size=8, epochs=epochs, seed=seed)


def counted_by_reference(s, settings):
    """Per epoch: (batches that met the tolerance, steps taken), from the
    reference relaxation on the batch and weights the rule saw."""
    counts = {}

    def count(event):
        state = reference_discriminative(event.hierarchy, event.x, event.y, event.scheduler.rule.loss, settings)
        done, steps, n = counts.get(event.epoch, (0, 0, 0))
        counts[event.epoch] = (done + bool(state.converged), steps + state.steps, n + 1)

    s.attach("after_inference", count, name="reference count")
    return counts


def test_loose_tolerance_converges_at_the_first_step():
    s = scheduler(Relaxation(steps=50, step_size=0.1, tolerance=1e30))
    for metrics in s.run():
        assert metrics["converged_fraction"] == 1.0
        assert metrics["mean_relaxation_steps"] == 1.0


def test_unreachable_tolerance_never_converges_and_takes_the_cap():
    s = scheduler(Relaxation(steps=6, step_size=0.1, tolerance=1e-30))
    for metrics in s.run():
        assert metrics["converged_fraction"] == 0.0
        assert metrics["mean_relaxation_steps"] == 6.0


def test_a_mixed_epoch_matches_the_reference_count():
    settings = Relaxation(steps=40, step_size=0.2, tolerance=3e-6)
    s = scheduler(settings, epochs=3)
    counts = counted_by_reference(s, settings)
    history = s.run()
    fractions = [m["converged_fraction"] for m in history]
    assert any(0.0 < f < 1.0 for f in fractions), fractions  # the tolerance splits the batches
    for epoch, metrics in enumerate(history):
        done, steps, n = counts[epoch]
        assert n == 7
        assert metrics["converged_fraction"] == pytest.approx(done / n, abs=1e-12)
        assert metrics["mean_relaxation_steps"] == pytest.approx(steps / n, abs=1e-12)


def test_resumed_mid_epoch_the_counts_carry_over():
    settings = Relaxation(steps=40, step_size=0.2, tolerance=3e-6)
    whole = scheduler(settings).run()
    crashing = scheduler(settings)

    def crash(event):
        if event.step == 10:  # inside the second epoch
            raise KeyboardInterrupt

    crashing.attach("after_learning", crash)
    with pytest.raises(KeyboardInterrupt):
        crashing.run()
    resumed = scheduler(settings)
    resumed.load_state_dict(crashing.state_dict())
    history = resumed.run()
    for key in ("converged_fraction", "mean_relaxation_steps"):
        assert [m[key] for m in history] == [m[key] for m in whole]


def test_without_a_tolerance_there_is_no_such_metric(tmp_path):
    x, y = data()
    for rule in (PredictiveCoding(inference=Relaxation(steps=5)), Backprop()):
        sim = cs.Simulator(SPEC, rule, Adam(lr=1e-2), (x, y), dtype="float64", batch_size=8, epochs=1,
                           recording=tmp_path / f"{rule.name}.h5")
        (metrics,) = sim.run()
        assert "converged_fraction" not in metrics and "mean_relaxation_steps" not in metrics
        with cs.open(tmp_path / f"{rule.name}.h5") as rec:
            assert "converged_fraction" not in rec.metrics


def test_the_recording_holds_both_metrics(tmp_path):
    x, y = data()
    rule = PredictiveCoding(inference=Relaxation(steps=6, step_size=0.1, tolerance=1e-30))
    assert rule.capabilities.relaxation_tolerance == 1e-30
    sim = cs.Simulator(SPEC, rule, Adam(lr=1e-2), (x, y), dtype="float64", batch_size=8, epochs=2,
                       recording=tmp_path / "pc.h5")
    sim.run()
    with cs.open(tmp_path / "pc.h5") as rec:
        np.testing.assert_array_equal(rec.metrics["converged_fraction"], [0.0, 0.0])
        np.testing.assert_array_equal(rec.metrics["mean_relaxation_steps"], [6.0, 6.0])


def test_only_a_relaxation_declares_a_tolerance():
    with pytest.raises(ValueError, match="relaxation_tolerance"):
        Capabilities(supervised=True, inference="sweep", setting="discriminative", relaxation_tolerance=1e-3)
