"""Running a model: the scheduler loop with named slots, probes and the
recorder that streams them to a recording, checkpoints and divergence checks."""
