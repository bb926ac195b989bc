"""Relaxation to equilibrium: Euler against the Heun and adaptive solvers.

Discriminative predictive-coding inference (input and one-hot label clamped,
start at the feedforward sweep, batch 128 of MNIST-shaped uniform [0, 1)
pixels, weights of ``cs.build(spec, seed=0)``) on two networks:

- ``mlp``: 784-256-256-10, tanh hidden, linear out, MSE (the peer benchmark
  task of bench/pc_mlp.py, models/pc_mlp_mnist.toml);
- ``deep``: 784-240x7-10, tanh hidden, linear out, cross-entropy
  (models/dtp_mnist_lee2015.toml, the network and loss of the "PC about equals
  backprop" studies: studies/rules_vs_backprop_mnist.toml, pc_equilibrium.toml).

First the converged energy F_inf: the adaptive solver in float64 on the same
(float32) weights and data, rtol 1e-8, atol 1e-10, until the per-sample energy
changes by less than 1e-12 between steps. Then, in the working dtype, for
every method a search run gives N, the first accepted step with
|F_N - F_inf| <= 1e-4 |F_inf| (at most 8192 steps), and where the method
ends (F after 2N steps, or more); a run whose energy after 256 steps is above
its start is reported as diverged. The table gives N, the
energy-gradient evaluations of a run of N steps (Euler: N; Heun: 2N;
adaptive: counted, rejected steps included), the matrix products they imply
(2 (L - 1) per evaluation: each hidden area's prediction from below and its
back-projection from above; Euler's error frontier skips a few of them in
its first L - 1 steps), and the best of ``--repeats`` wall-clock times of a
run of exactly N steps (a short run is timed as the mean of as many calls as
fill 0.2 s). The speed-up is the best Euler time over the best
Heun / adaptive time, measured in the same run.

    python bench/pc_solvers.py [--backend numpy|cupy] [--repeats 3] [--networks mlp,deep]

The last line is machine-readable:
``mlp_speedup=... mlp_best=... mlp_best_euler=... deep_speedup=... ...``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import cortexsim as cs
from cortexsim.inference import relax_discriminative
from cortexsim.model.losses import get_loss

MODELS = Path(__file__).resolve().parents[1] / "models"
BATCH = 128
WITHIN = 1e-4
NETWORKS = {
    "mlp": ("784-256-256-10 tanh, mse",
            lambda: cs.HierarchySpec.from_sizes((784, 256, 256, 10), activation="tanh",
                                                output_activation="linear"), "mse"),
    "deep": ("784-240x7-10 tanh, cross-entropy",
             lambda: cs.HierarchySpec.from_toml(MODELS / "dtp_mnist_lee2015.toml"), "cross_entropy"),
}
METHODS = (
    [("euler", f"step {s}", dict(step_size=s)) for s in (0.1, 0.2, 0.3, 0.5)]
    + [("heun", f"step {s}", dict(solver="heun", step_size=s)) for s in (0.1, 0.2, 0.3, 0.5)]
    + [("adaptive", f"rtol {r:g}", dict(solver="adaptive", rtol=r)) for r in (1e-2, 1e-3, 1e-4)]
)


@dataclass
class Row:
    method: str
    setting: str
    steps: int | None = None  # accepted steps to within WITHIN of F_inf
    evaluations: int | None = None
    products: int | None = None
    seconds: float | None = None
    end: float | None = None  # |F_end - F_inf| / |F_inf| of the search run
    diverged: bool = False


def problem(name: str, backend: str):
    """The float32 hierarchy, its float64 copy, data on both, the loss."""
    _, make_spec, loss = NETWORKS[name]
    spec = make_spec()
    working = cs.build(spec, backend=backend, seed=0)
    exact = cs.build(spec, backend=backend, dtype="float64", seed=0)
    exact.load_parameters(working.parameters_to_numpy())
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(BATCH, spec.sizes[0])).astype(np.float32)
    y = np.eye(spec.sizes[-1], dtype=np.float32)[rng.integers(0, spec.sizes[-1], BATCH)]
    return working, exact, x, y, get_loss(loss)


def converged_energy(h, x, y, loss) -> tuple[float, cs.State]:
    settings = cs.Relaxation(steps=100_000, solver="adaptive", rtol=1e-8, atol=1e-10, tolerance=1e-12)
    state = relax_discriminative(h, h.backend.asarray(x), h.backend.asarray(y), loss, settings)
    if not state.converged:
        raise RuntimeError("F_inf: the reference relaxation did not converge")
    return float(h.backend.to_numpy(state.energy)[-1]), state


def measure(h, x, y, loss, method: str, setting: str, options: dict, f_inf: float, max_steps: int,
            repeats: int) -> Row:
    be = h.backend
    xb, yb = be.asarray(x), be.asarray(y)
    row = Row(method, setting)
    check = relax_discriminative(h, xb, yb, loss, cs.Relaxation(steps=256, **options))
    energy = be.to_numpy(check.energy)
    if not np.isfinite(energy[-1]) or energy[-1] > energy[0]:
        row.diverged = True
        return row
    cap = 512
    while True:  # runs are deterministic: a longer one repeats a shorter one's trace
        state = relax_discriminative(h, xb, yb, loss, cs.Relaxation(steps=cap, **options))
        energy = be.to_numpy(state.energy)
        close = np.nonzero(np.abs(energy - f_inf) <= WITHIN * abs(f_inf))[0]
        if close.size or cap >= max_steps:
            break
        cap *= 2
    if close.size and cap < 2 * close[0]:  # where it ends: at least twice the steps it needed
        energy = be.to_numpy(relax_discriminative(
            h, xb, yb, loss, cs.Relaxation(steps=2 * int(close[0]), **options)).energy)
    row.end = abs(float(energy[-1]) - f_inf) / abs(f_inf)
    if not close.size:
        return row
    row.steps = int(close[0])
    run = cs.Relaxation(steps=row.steps, **options)

    def seconds(calls: int) -> tuple[float, cs.State]:
        start = time.perf_counter()
        for _ in range(calls):
            state = relax_discriminative(h, xb, yb, loss, run)
            be.to_numpy(state.energy[-1:])  # synchronise a GPU
        return (time.perf_counter() - start) / calls, state

    # short runs are repeated within one timing, so that each timing lasts ~0.2 s
    first, state = seconds(1)
    calls = max(1, round(0.2 / first))
    best = min(seconds(calls)[0] for _ in range(repeats))
    reached = float(be.to_numpy(state.energy)[-1])
    assert abs(reached - f_inf) <= WITHIN * abs(f_inf), (method, setting, reached, f_inf)
    row.evaluations = state.steps if state.evaluations is None else state.evaluations
    row.products = row.evaluations * 2 * (len(h.areas) - 2)
    row.seconds = best
    return row


def table(rows: list[Row]) -> str:
    lines = ["| method | setting | steps to 1e-4 | evaluations | matrix products "
             "| seconds (best of 3) | end: \\|F-F_inf\\|/F_inf |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if r.diverged:
            lines.append(f"| {r.method} | {r.setting} | diverged | | | | |")
            continue
        end = "" if r.end is None else f"{r.end:.1e}"
        if r.steps is None:
            lines.append(f"| {r.method} | {r.setting} | not reached | | | | {end} |")
            continue
        lines.append(f"| {r.method} | {r.setting} | {r.steps} | {r.evaluations} | {r.products} | "
                     f"{r.seconds:.3f} | {end} |")
    return "\n".join(lines)


def best(rows: list[Row], euler: bool) -> Row | None:
    timed = [r for r in rows if r.seconds is not None and (r.method == "euler") == euler]
    return min(timed, key=lambda r: r.seconds) if timed else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--networks", default="mlp,deep")
    args = parser.parse_args()
    summary = []
    for name in args.networks.split(","):
        title = NETWORKS[name][0]
        working, exact, x, y, loss = problem(name, args.backend)
        start = time.perf_counter()
        f_inf, reference = converged_energy(exact, x, y, loss)
        print(f"\n## {name}: {title}, batch {BATCH}, {args.backend} {working.backend.dtype_name}\n")
        print(f"F_inf = {f_inf:.9g} per sample (float64 adaptive, {reference.steps} steps, "
              f"{reference.evaluations} evaluations, {time.perf_counter() - start:.0f} s)\n")
        rows = [measure(working, x, y, loss, method, setting, options, f_inf, max_steps=8192,
                        repeats=args.repeats)
                for method, setting, options in METHODS]
        print(table(rows))
        ends = [r.end for r in rows if r.end is not None]
        print(f"\nevery converging method ends within {max(ends):.1e} of F_inf (relative)")
        euler, other = best(rows, True), best(rows, False)
        if euler is None or other is None:
            print("no speed-up: a method never reached F_inf")
            continue
        speedup = euler.seconds / other.seconds
        print(f"best solver: {other.method} {other.setting}, {other.seconds:.3f} s, {other.evaluations} "
              f"evaluations; best Euler: {euler.setting}, {euler.seconds:.3f} s, {euler.evaluations} "
              f"evaluations; speed-up {speedup:.2f}x in time, {euler.evaluations / other.evaluations:.2f}x "
              f"in evaluations")
        default = next((r for r in rows if r.method == "euler" and r.setting == "step 0.1"), None)
        adaptive = [r for r in rows if r.method == "adaptive" and r.seconds is not None]
        if default is not None and default.seconds is not None and adaptive:
            fastest = min(adaptive, key=lambda r: r.seconds)
            print(f"against Euler at the studies' step 0.1 ({default.seconds:.3f} s, {default.evaluations} "
                  f"evaluations): adaptive {fastest.setting} "
                  f"{default.seconds / fastest.seconds:.2f}x in time, "
                  f"{default.evaluations / fastest.evaluations:.2f}x in evaluations")
        summary += [f"{name}_speedup={speedup:.3f}",
                    f"{name}_evaluation_ratio={euler.evaluations / other.evaluations:.3f}",
                    f"{name}_best={other.method}:{other.setting.replace(' ', '=')}",
                    f"{name}_best_s={other.seconds:.4f}",
                    f"{name}_best_euler=euler:{euler.setting.replace(' ', '=')}",
                    f"{name}_best_euler_s={euler.seconds:.4f}"]
    print(" ".join(summary))


if __name__ == "__main__":
    main()
