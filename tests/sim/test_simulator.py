"""The Simulator: one object per run, equal to the scheduler and recorder it
assembles, resumable, with operations a user places in named slots."""

import numpy as np
import pytest

import cortexsim as cs
from cortexsim import ConfigurationError
from cortexsim.recording import partial_path
from cortexsim.sim.recorded import checkpoint_path

SPEC = cs.HierarchySpec.from_sizes([6, 5, 3], activation="tanh")
PROBES = [cs.Probe("alignment", "all"), cs.Probe("energy"), cs.Probe("activity", "area1", samples=4)]


def data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    return {"x_train": rng.normal(size=(n, 6)), "y_train": rng.integers(0, 3, size=n),
            "x_test": rng.normal(size=(20, 6)), "y_test": rng.integers(0, 3, size=20)}


def pc():
    return cs.PredictiveCoding(inference=cs.Relaxation(steps=5, step_size=0.1))


def simulator(path, **kw):
    return cs.Simulator(SPEC, pc(), cs.Adam(lr=1e-2), data(), dtype="float64", seed=3,
                        batch_size=8, epochs=3, probes=PROBES, recording=path,
                        checkpoint_every=2, **kw)


def test_equals_the_scheduler_and_recorder_it_assembles(tmp_path):
    with simulator(tmp_path / "sim.h5") as sim:
        history = sim.run()
    d = data()
    h = cs.build(SPEC, dtype="float64", seed=3)
    scheduler = cs.Scheduler(h, pc(), cs.Adam(lr=1e-2), d["x_train"], d["y_train"], batch_size=8,
                             epochs=3, seed=3, x_test=d["x_test"], y_test=d["y_test"])
    cs.run_recorded(scheduler, tmp_path / "by_hand.h5", PROBES, checkpoint_every=2)
    for probe in ("all.alignment", "energy", "area1.activity"):
        with cs.open(tmp_path / "by_hand.h5") as rec:
            np.testing.assert_array_equal(sim.recorded(probe), rec[probe].to_numpy())
    assert [m["test_accuracy"] for m in history] == [m["test_accuracy"] for m in scheduler.history]
    for key, value in h.parameters_to_numpy().items():
        np.testing.assert_array_equal(sim.hierarchy.parameters_to_numpy()[key], value)
    assert sim.recording == tmp_path / "sim.h5" and not partial_path(sim.recording).exists()


def test_resume_after_a_crash_is_bit_identical(tmp_path):
    simulator(tmp_path / "whole.h5").run()

    class Crash(Exception):
        pass

    def crash(event):
        if event.step == 6:
            raise Crash

    broken = simulator(tmp_path / "run.h5")
    broken.attach("after_learning", crash, order=2000, name="crash")
    with pytest.raises(Crash):
        broken.run()
    assert partial_path(tmp_path / "run.h5").exists()
    resumed = simulator(tmp_path / "run.h5", resume=True)
    assert not resumed.complete and resumed.scheduler.step == 6
    resumed.run()
    for probe in ("all.alignment", "energy", "area1.activity"):
        np.testing.assert_array_equal(resumed.recorded(probe),
                                      cs.Simulator(SPEC, pc(), recording=tmp_path / "whole.h5").recorded(probe))
    done = simulator(tmp_path / "run.h5", resume=True)
    assert done.complete and len(done.history) == 3 and done.run() == done.history


def test_user_operations_run_at_named_places(tmp_path):
    sim = cs.Simulator(SPEC, cs.Backprop(), cs.SGD(lr=0.5), data(), dtype="float64", batch_size=8)
    seen = {}

    def before(event):
        seen["W"] = np.array(event.hierarchy["area1"].W_ff)
        seen["grad"] = np.array(event.gradients[("area1", "W_ff")])

    def after(event):
        step = seen["W"] - np.array(event.hierarchy["area1"].W_ff)
        seen.setdefault("steps", []).append(np.max(np.abs(step - 0.5 * seen["grad"])))

    sim.attach("update", before, order=-1, name="before the step")
    sim.attach("update", after, order=1, name="after the step")
    table = sim.schedule().splitlines()
    names = [line.split(None, 2)[2] for line in table[1:] if line.split()[0] == "update"]
    assert names == ["before the step", "optimizer.step", "after the step", "sum loss and energy",
                     "finiteness check"]
    sim.run()
    assert len(seen["steps"]) == 6 and max(seen["steps"]) < 1e-12  # SGD: W -= lr * grad, in between
    sim.detach("finiteness check")
    assert "finiteness check" not in sim.schedule()
    with pytest.raises(ConfigurationError, match=r"nothing named 'optimizer\.stpe'.*did you mean 'optimizer\.step'"):
        sim.detach("optimizer.stpe")


def test_rules_declare_what_probes_they_fill(tmp_path):
    with pytest.raises(ConfigurationError, match=r"probes\[1\]: rule 'backprop' has no relaxation"):
        cs.Simulator(SPEC, "backprop", data=data(), probes=PROBES, recording=tmp_path / "a.h5")
    sim = cs.Simulator(SPEC, "backprop", data=data(), probes=PROBES, unsupported_probes="skip",
                       recording=tmp_path / "b.h5")
    assert [p.name for p in sim.probes] == ["all.alignment", "area1.activity"]
    sim.close()
    with pytest.raises(ConfigurationError, match="recording needs a file"):
        cs.Simulator(SPEC, "backprop", data=data(), probes=PROBES[:1])
    with pytest.raises(ConfigurationError, match="cannot run"):
        cs.Simulator(SPEC, "backprop").run()
    generative = cs.Simulator(SPEC, cs.PredictiveCoding(mode="generative"), data=data(), epochs=1)
    assert generative.scheduler.data.y_train is None  # labels are dropped for a generative rule


def test_trained_restores_the_final_model(tmp_path):
    sim = simulator(tmp_path / "run.h5")
    sim.run()
    trained = cs.Simulator.trained(SPEC, pc(), checkpoint_path(tmp_path / "run.h5"), dtype="float64", seed=3)
    for key, value in sim.hierarchy.parameters_to_numpy().items():
        np.testing.assert_array_equal(trained.hierarchy.parameters_to_numpy()[key], value)
    assert trained.scheduler is None


def test_a_recording_never_run_is_closed_resumable(tmp_path):
    with simulator(tmp_path / "idle.h5"):
        pass
    assert partial_path(tmp_path / "idle.h5").exists()
    resumed = simulator(tmp_path / "idle.h5", resume=True)
    resumed.run()
    assert len(resumed.recorded("energy")) == 18


def test_learning_rate_schedule_sets_every_batch_and_survives_a_resume(tmp_path):
    """Under a step schedule, SGD's update in epoch e is lr * 0.5^e times the
    gradient; a run whose parameters are checked against SGD runs at those
    fixed rates, one epoch each, continuing the same weights and data order."""
    schedule = cs.make_schedule("step", every=1, gamma=0.5)
    sim = cs.Simulator(SPEC, "backprop", cs.SGD(lr=0.2), data(), dtype="float64", seed=3,
                       batch_size=8, epochs=3, lr_schedule=schedule)
    assert "learning-rate schedule" in sim.schedule()
    history = sim.run()
    assert [m["learning_rate"] for m in history] == [0.2, 0.1, 0.05]

    h = cs.build(SPEC, dtype="float64", seed=3)
    d = data()
    for epoch, lr in enumerate([0.2, 0.1, 0.05]):
        by_hand = cs.Scheduler(h, cs.make_rule("backprop"), cs.SGD(lr=lr), d["x_train"], d["y_train"],
                               batch_size=8, epochs=epoch + 1, seed=3)
        by_hand.epoch = epoch  # the same shuffled order as epoch ``epoch`` of the scheduled run
        by_hand.run()
    for key, value in h.parameters_to_numpy().items():
        np.testing.assert_allclose(sim.hierarchy.parameters_to_numpy()[key], value, rtol=1e-12)

    class Crash(Exception):
        pass

    def crash(event):
        if event.step == 9:
            raise Crash

    def scheduled(path, **kw):
        return cs.Simulator(SPEC, "backprop", cs.SGD(lr=0.2), data(), dtype="float64", seed=3,
                            batch_size=8, epochs=3, lr_schedule=schedule, recording=path,
                            probes=[cs.Probe("alignment", "all")], checkpoint_every=2, **kw)

    broken = scheduled(tmp_path / "run.h5")
    broken.attach("after_learning", crash, order=2000, name="crash")
    with pytest.raises(Crash):
        broken.run()
    resumed = scheduled(tmp_path / "run.h5", resume=True)
    assert resumed.scheduler.epoch == 1  # stopped inside the second epoch
    resumed.run()
    for key, value in h.parameters_to_numpy().items():
        np.testing.assert_allclose(resumed.hierarchy.parameters_to_numpy()[key], value, rtol=1e-12)
