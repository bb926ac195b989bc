"""A small recorded run for the kill test: ``python kill_target.py OUT.h5 [--resume]``.

Prints "started" once the recording exists, then trains a 64-32-10 network
with predictive coding on the digits, recording activities, errors, weights
and metrics every batch and checkpointing every 3 batches.
"""

import sys

import cortexsim as cs
from cortexsim.data import load
from cortexsim.sim.probes import Probe
from cortexsim.sim.recorded import run_recorded


def scheduler() -> cs.Scheduler:
    data = load("digits")
    model = cs.build(cs.HierarchySpec.from_sizes([64, 32, 10]), seed=3)
    rule = cs.PredictiveCoding(inference=cs.Relaxation(steps=15, step_size=0.1))
    return cs.Scheduler(
        model, rule, cs.Adam(lr=1e-3), data.x_train, data.y_train,
        batch_size=16, epochs=4, seed=3, x_test=data.x_test, y_test=data.y_test,
    )


PROBES = [
    Probe("activity", "area1", samples=8),
    Probe("error", "area1", samples=8),
    Probe("weights", "area2.W_ff"),
    Probe("energy"),
    Probe("metric", "loss"),
    Probe("alignment", "all"),
]

if __name__ == "__main__":
    s = scheduler()
    s.attach("run_start", lambda event: print("started", flush=True))
    run_recorded(s, sys.argv[1], PROBES, checkpoint_every=3, resume="--resume" in sys.argv)
    print("done", flush=True)
