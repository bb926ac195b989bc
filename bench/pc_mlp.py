"""Predictive coding and backprop speed on the peer benchmark task.

784-256-256-10 MLP, tanh hidden, linear output, batch 128, MSE energy; PC
relaxes T = 20 steps of size 0.1 from the feedforward sweep, then one Adam step
(lr 1e-4). Median wall-clock per batch over 50 batches after warm-up, on
MNIST-shaped data. The roofline is the minimal 0.835 GFLOP per PC batch at the
float32 matmul rate measured in this same process on the benchmark's own
dominant shapes, so the ratio is meaningful on a noisy machine. That count is
two products per area and step; relaxing area 1 through the Gram matrix of
W_2 needs fewer (0.53 GFLOP here), which the script prints beside it, so the
fraction of the roofline can exceed what the products alone would allow.

    python bench/pc_mlp.py [--backend numpy|cupy] [--batches 50] [--repeats 3] [--pcx PYTHON]

With ``--pcx PYTHON`` (the python of a virtual environment holding pcx 0.6.3,
made as ``bench/peers/pcx_mlp.py`` says), every repeat also runs the same task
in pcx in a subprocess, alternated with the timings here (matmul rate, PC,
backprop, pcx), and the best pcx figure is compared with the best PC one. JAX
is told to use the CPU; neither side's thread settings are touched, so on the
benchmark machine both use its two cores.

The last line is machine-readable:
``pc_samples_per_s=... bp_samples_per_s=... pc_fraction_of_roofline=...``,
followed with ``--pcx`` by ``pcx_samples_per_s=... pc_over_pcx=...``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import cortexsim as cs

SIZES = (784, 256, 256, 10)
BATCH = 128
STEPS = 20
PCX_SCRIPT = Path(__file__).resolve().parent / "peers" / "pcx_mlp.py"


def minimal_flops(sizes: tuple[int, ...] = SIZES, batch: int = BATCH, steps: int = STEPS) -> float:
    """FLOPs of one PC batch with the clamped bottom prediction computed once:
    a feedforward sweep, per step one forward and one backward product for
    every area above the first, and the weight gradients."""
    layers = [sizes[i] * sizes[i + 1] for i in range(len(sizes) - 1)]
    sweep = 2 * batch * sum(layers)
    per_step = 2 * 2 * batch * sum(layers[1:])
    return sweep + steps * per_step + sweep


def performed_flops(sizes: tuple[int, ...] = SIZES, batch: int = BATCH, steps: int = STEPS) -> float:
    """FLOPs of the products ``relax_discriminative`` actually runs where area 1 goes
    through the Gram matrix of W_2 (docs/architecture.md): the Gram matrix once,
    one product per step for area 1 from the step its error arrives (the frontier),
    area 1's error formed once at the end; everything else as in ``minimal_flops``."""
    from cortexsim.inference.predictive_coding import _gram_pays

    n1, n2 = sizes[1], sizes[2]
    latent = len(sizes) - 2
    if not _gram_pays(batch, n1, n2, steps - latent):
        return minimal_flops(sizes, batch, steps)
    layers = [sizes[i] * sizes[i + 1] for i in range(len(sizes) - 1)]
    sweep = 2 * batch * sum(layers)
    above = 2 * 2 * batch * sum(layers[2:])  # forward and backward of the areas above 2
    area1_steps = steps - (latent - 1)  # area 1 moves once the top's error has reached it
    gram = 2 * n1 * n2 * n2 + area1_steps * 2 * batch * n2 * n2 + 2 * batch * n1 * n2
    return sweep + steps * above + gram + sweep


def matmul_seconds(be: cs.Backend, m: int, k: int, n: int, repeats: int = 200) -> float:
    """Best time of one float32 (m, k) @ (k, n) product into a preallocated output."""
    rng = np.random.default_rng(0)
    a = be.asarray(rng.standard_normal((m, k)))
    b = be.asarray(rng.standard_normal((k, n)))
    out = be.empty((m, n))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        be.matmul(a, b, out=out)
        be.to_numpy(out[:1, :1])  # synchronise a GPU
        best = min(best, time.perf_counter() - start)
    return best


def matmul_rate(be: cs.Backend) -> float:
    """Best float32 matmul rate (FLOP/s) on the benchmark's dominant shapes."""
    shapes = [(BATCH, 256, 256), (BATCH, 784, 256)]
    flops = sum(2.0 * m * k * n for m, k, n in shapes)
    return flops / sum(matmul_seconds(be, *shape) for shape in shapes)


def matmul_floor(be: cs.Backend, sizes: tuple[int, ...] = SIZES, steps: int = STEPS) -> float:
    """Seconds the products of one PC batch take alone, each at its best single-call
    time: what any implementation of the same products must spend."""
    pairs = list(zip(sizes[:-1], sizes[1:]))
    sweep = sum(matmul_seconds(be, BATCH, n_in, n_out) for n_in, n_out in pairs)
    step = sum(
        matmul_seconds(be, BATCH, n_in, n_out) + matmul_seconds(be, BATCH, n_out, n_in)
        for n_in, n_out in pairs[1:]
    )
    weights = sum(matmul_seconds(be, n_in, BATCH, n_out) for n_in, n_out in pairs)
    return sweep + steps * step + weights


def time_rule(rule: cs.rules.Rule, be_name: str, batches: int, warmup: int = 5) -> float:
    """Median seconds per training batch (inference + gradients + Adam)."""
    spec = cs.HierarchySpec.from_sizes(SIZES, activation="tanh", output_activation="linear")
    hierarchy = cs.build(spec, backend=be_name, seed=0)
    be = hierarchy.backend
    optimizer = cs.Adam(lr=1e-4)
    rng = np.random.default_rng(1)
    xs = [be.asarray(rng.uniform(0, 1, (BATCH, SIZES[0]))) for _ in range(8)]
    ys = [be.asarray(np.eye(SIZES[-1])[rng.integers(0, SIZES[-1], BATCH)]) for _ in range(8)]
    times = []
    for i in range(warmup + batches):
        x, y = xs[i % 8], ys[i % 8]
        start = time.perf_counter()
        state = rule.infer(hierarchy, x, y)
        optimizer.step(hierarchy, rule.gradients(hierarchy, state))
        be.to_numpy(hierarchy.top.b_ff[:1])  # synchronise a GPU
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_pcx(python: str, batches: int) -> float:
    """Median seconds per batch of the same task in pcx, run by ``python`` (a
    separate virtual environment) in a subprocess; exits on its failure."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [python, str(PCX_SCRIPT), "--batches", str(batches)],
        capture_output=True, text=True, env=env, check=False,
    )
    lines = proc.stdout.strip().splitlines()
    fields = dict(item.split("=", 1) for item in lines[-1].split() if "=" in item) if lines else {}
    if proc.returncode != 0 or "ms_per_batch" not in fields:
        sys.stderr.write(proc.stderr)
        sys.exit(f"{PCX_SCRIPT.name} failed (exit status {proc.returncode})")
    return float(fields["ms_per_batch"]) / 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3, help="take the best median of this many runs")
    parser.add_argument(
        "--pcx", metavar="PYTHON", default=None,
        help="python of a virtual environment with pcx 0.6.3: also time bench/peers/pcx_mlp.py",
    )
    args = parser.parse_args()
    be = cs.get_backend(args.backend)
    pc = cs.PredictiveCoding(inference=cs.Relaxation(steps=STEPS, step_size=0.1))
    bp = cs.Backprop()
    # The machine's speed drifts over minutes: measure the matmul rate in every
    # repeat, between the timings, and compare against the fastest rate seen
    # (the most demanding roofline).
    pc_times, bp_times, pcx_times, rates = [], [], [], []
    for _ in range(args.repeats):
        rates.append(matmul_rate(be))
        pc_times.append(time_rule(pc, args.backend, args.batches))
        bp_times.append(time_rule(bp, args.backend, args.batches))
        if args.pcx:
            pcx_times.append(time_pcx(args.pcx, args.batches))
    rates.append(matmul_rate(be))
    pc_s, bp_s, rate = min(pc_times), min(bp_times), max(rates)
    flops = minimal_flops()
    roofline_s = flops / rate
    floor_s = matmul_floor(be)
    print(f"backend {args.backend}; {'-'.join(map(str, SIZES))} tanh, batch {BATCH}, T={STEPS}")
    print(
        f"matmul rate on the dominant shapes: {rate / 1e9:.1f} GFLOP/s (fastest of "
        f"{len(rates)}, from {min(rates) / 1e9:.1f})"
    )
    print(f"minimal PC work: {flops / 1e9:.3f} GFLOP/batch -> roofline {roofline_s * 1e3:.2f} ms/batch")
    print(
        f"the same products alone, each at its best single-call time: {floor_s * 1e3:.2f} ms/batch "
        f"({roofline_s / floor_s:.2f} of roofline; small shapes run below the peak rate)"
    )
    performed = performed_flops()
    print(
        f"products performed (area 1 through the Gram matrix of W_2): {performed / 1e9:.3f} GFLOP/batch, "
        f"at the same rate {performed / rate * 1e3:.2f} ms/batch"
    )
    print(f"elementwise passes: {cs.inference.kernels.active(be)}")
    print(f"PC:       {pc_s * 1e3:.2f} ms/batch  {BATCH / pc_s:,.0f} samples/s "
          f"({performed / pc_s / 1e9:.1f} GFLOP/s on the products performed)")
    print(f"backprop: {bp_s * 1e3:.2f} ms/batch  {BATCH / bp_s:,.0f} samples/s")
    print(f"PC / roofline time: {roofline_s / pc_s:.2f}; PC / backprop time: {pc_s / bp_s:.1f}x")
    last = (
        f"pc_samples_per_s={BATCH / pc_s:.0f} bp_samples_per_s={BATCH / bp_s:.0f} "
        f"pc_fraction_of_roofline={roofline_s / pc_s:.3f}"
    )
    if pcx_times:
        pcx_s = min(pcx_times)
        print(
            f"pcx 0.6.3: {pcx_s * 1e3:.2f} ms/batch, {BATCH / pcx_s:,.0f} samples/s; "
            f"PC / pcx speed: {pcx_s / pc_s:.2f}x"
        )
        last += f" pcx_samples_per_s={BATCH / pcx_s:.0f} pc_over_pcx={pcx_s / pc_s:.3f}"
    print(last)


if __name__ == "__main__":
    main()
