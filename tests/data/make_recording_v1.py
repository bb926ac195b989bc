"""Writes tests/data/recording_v1.h5, the version-1 recording every later
reader must still read. Kept to document how the file was made; do not
regenerate it once a newer format version exists."""

from pathlib import Path

import cortexsim as cs
from cortexsim.data import load
from cortexsim.sim.probes import Probe
from cortexsim.sim.recorded import checkpoint_path, run_recorded

OUT = Path(__file__).with_name("recording_v1.h5")

if __name__ == "__main__":
    data = load("digits")
    model = cs.build(cs.HierarchySpec.from_sizes([64, 8, 10]), seed=1)
    rule = cs.PredictiveCoding(inference=cs.Relaxation(steps=5))
    scheduler = cs.Scheduler(
        model, rule, cs.SGD(lr=0.1), data.x_train[:400], data.y_train[:400],
        batch_size=100, epochs=2, seed=1, x_test=data.x_test, y_test=data.y_test,
    )
    probes = [
        Probe("activity", "area1", samples=4),
        Probe("error", "area1", samples=4),
        Probe("weights", "area2.W_ff", every=2),
        Probe("update", "area1.b_ff", every_unit="epoch"),
        Probe("alignment", "all"),
        Probe("energy"),
        Probe("metric", "loss"),
    ]
    run_recorded(scheduler, OUT, probes, checkpoint_every=0, config={"model": model.spec.to_dict()})
    checkpoint_path(OUT).unlink()
