"""Speed of the rules that train the variational model of studies/vae_mnist.toml.

Burda et al.'s 784-200-200-50 model (models/vae_mnist_iwae.toml), batch 20,
binary MNIST-shaped data: one ``infer`` + ``gradients`` per batch (no optimizer
step), median over ``--batches`` batches after warm-up, best of ``--repeats``.
Ratios are to the VAE (``elbo``, k = 1) measured in the same process, so they
mean something on a noisy machine.

    python bench/variational.py [--backend numpy|cupy] [--batches 60] [--repeats 3]

The last line is machine-readable: ``<label>_ms=... <label>_ratio=...`` per rule.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import cortexsim as cs
from cortexsim.rules import ELBO, ReweightedWakeSleep

MODEL = Path(__file__).resolve().parents[1] / "models" / "vae_mnist_iwae.toml"
BATCH = 20
RULES = {
    "vae": lambda: ELBO(),
    "iwae_k5": lambda: ELBO(k=5),
    "wake_sleep": lambda: ReweightedWakeSleep(recognition="sleep"),
    "rws_k5": lambda: ReweightedWakeSleep(k=5),
}


def seconds_per_batch(hierarchy: cs.Hierarchy, rule, x, batches: int) -> float:
    """Median wall-clock seconds of one infer + gradients."""
    for _ in range(5):
        rule.gradients(hierarchy, rule.infer(hierarchy, x))
    times = []
    for _ in range(batches):
        start = time.perf_counter()
        grads = rule.gradients(hierarchy, rule.infer(hierarchy, x))
        hierarchy.backend.to_numpy(next(iter(grads.values()))[:1])  # synchronise a GPU
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    hierarchy = cs.build(cs.HierarchySpec.from_toml(MODEL), backend=args.backend, seed=0)
    x = hierarchy.backend.asarray((np.random.default_rng(0).random((BATCH, 784)) < 0.3).astype(np.float32))
    ms = {label: 1000 * min(seconds_per_batch(hierarchy, make(), x, args.batches) for _ in range(args.repeats))
          for label, make in RULES.items()}
    print(f"{'rule':<12} {'ms/batch':>9} {'x vae':>6}")
    for label, value in ms.items():
        print(f"{label:<12} {value:9.2f} {value / ms['vae']:6.2f}")
    print(" ".join(f"{label}_ms={value:.3f} {label}_ratio={value / ms['vae']:.3f}" for label, value in ms.items()))


if __name__ == "__main__":
    main()
