"""Recording cost: run-time overhead of recording every area, and peak memory
of a long recording.

1. Overhead. The benchmark network 784-256-256-10 (tanh hidden, linear output),
   predictive coding with T = 20 relaxation steps of size 0.1, Adam (lr 1e-4),
   batch 128, on random MNIST-shaped data (no download), trained for
   ``--epochs`` epochs of ``--batches`` batches. The recorded run is
   ``cortexsim.sim.recorded.run_recorded(..., checkpoint_every=100)`` with an activity
   and an error probe (default ``samples=16``) on every latent area, taken every
   batch; the baseline is the same scheduler with ``scheduler.run()`` and a
   ``Checkpointer`` every 100 batches (and at epoch ends), so both runs write
   the same checkpoints and only recording differs. Baseline and recorded runs
   alternate ``--repeats`` times after one warm-up pair; medians are compared.
   Timer callbacks attached around the recorder's and the checkpointer's slot
   entries (in both runs) split the recorder's own time into set-up (creating
   the file), taking rows, flushing at checkpoints and the end (last flush,
   compacting rewrite, rename); on a noisy machine this split is steadier than
   the difference of two totals.

2. Memory. A tiny 4-3-2 network (tanh, linear top; PC with 5 relaxation steps,
   batch 16) records every probe that applies to it (activities and
   predictions of every area, errors of the latent areas, weights of every
   parameter, updates of the learned ones, alignment per area and overall, the
   energy trace and the loss, energy and steps metrics), every batch. Rows are
   counted as batches x probes: one row per probe per batch, whatever its
   shape. Runs of about ``--rows`` rows (each in a fresh subprocess, over a
   fixed data set of ``--memory-batches`` batches repeated for as many epochs as
   needed, so the data does not grow with the run) report their peak RSS
   (``VmHWM``, the high-water RSS, read when the run starts, at the end of the
   loop before the recording is closed, and at the very end). Flat memory means
   the longest run peaks within a few MB of the shortest.

    python bench/recording.py [--batches 150] [--epochs 2] [--repeats 7]
                              [--rows 100000,300000,1000000] [--compressions none,lzf]

The last line is machine-readable:
``recording_overhead=... peak_rss_mb=... recording_overhead_lzf=...`` (the
overhead with the default, uncompressed probe data as a fraction of the
baseline time; the peak RSS of the longest memory run, in MiB; the overhead
with the lzf filter).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import cortexsim as cs
from cortexsim.sim.checkpoint import Checkpointer
from cortexsim.sim.probes import row_value
from cortexsim.sim.recorded import run_recorded

SIZES = (784, 256, 256, 10)
BATCH = 128
STEPS = 20
TINY_SIZES = (4, 3, 2)
TINY_BATCH = 16
TINY_STEPS = 5


# -- 1. run-time overhead -------------------------------------------------------------
def mnist_like(batches: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Random inputs in [0, 1] and integer labels, ``batches`` full batches of them."""
    rng = np.random.default_rng(seed)
    n = batches * BATCH
    return rng.uniform(0, 1, (n, SIZES[0])).astype(np.float32), rng.integers(0, SIZES[-1], n)


def benchmark_scheduler(x: np.ndarray, y: np.ndarray, epochs: int) -> cs.Scheduler:
    spec = cs.HierarchySpec.from_sizes(SIZES, activation="tanh", output_activation="linear")
    hierarchy = cs.build(spec, backend="numpy", seed=0)
    rule = cs.PredictiveCoding(inference=cs.Relaxation(steps=STEPS, step_size=0.1))
    return cs.Scheduler(hierarchy, rule, cs.Adam(lr=1e-4), x, y, batch_size=BATCH, epochs=epochs, seed=0)


def every_area_probes(hierarchy: cs.Hierarchy) -> list[cs.Probe]:
    """An activity and an error probe on every latent area (all but the data area)."""
    return [cs.Probe(q, area.name) for area in hierarchy.areas[1:] for q in ("activity", "error")]


# Callbacks bracketing the recorder (order 100) and the checkpointer (order 1000) in
# their slots: the time between a pair's two marks is what those callbacks took.
BRACKETS = {
    "take": (("before_update", 99, 101),),  # recorder: copy the rows into its buffers
    "checkpoint": (("after_learning", 999, 1001), ("epoch_end", 99, 1001)),  # flush + save
    "end": (("run_end", 99, 101),),  # recorder: last flush, compacting rewrite, rename
}


def instrument(scheduler: cs.Scheduler) -> dict[str, float]:
    """Attach the bracket timers; returns the seconds they accumulate, by part."""
    spent = dict.fromkeys(BRACKETS, 0.0)
    opened: dict[str, float] = {}
    for part, slots in BRACKETS.items():
        for slot, before, after in slots:
            def begin(event: Any, key: str = f"{part}/{slot}") -> None:
                opened[key] = time.perf_counter()

            def finish(event: Any, key: str = f"{part}/{slot}", part: str = part) -> None:
                spent[part] += time.perf_counter() - opened.pop(key)

            scheduler.attach(slot, begin, order=before, name=f"bench timer {part}")
            scheduler.attach(slot, finish, order=after, name=f"bench timer {part}")
    return spent


def time_baseline(x: np.ndarray, y: np.ndarray, epochs: int, folder: Path) -> dict[str, float]:
    """Seconds of one run without probes, checkpointing like ``run_recorded``."""
    scheduler = benchmark_scheduler(x, y, epochs)
    spent = instrument(scheduler)
    Checkpointer(folder / "baseline.ckpt.npz", every=100).attach(scheduler)
    start = time.perf_counter()
    scheduler.run()
    return {"total": time.perf_counter() - start, **spent}


def time_recorded(
    x: np.ndarray, y: np.ndarray, epochs: int, folder: Path, compression: str = "none"
) -> dict[str, float]:
    """Seconds of one recorded run: total, set-up (until ``run_start`` fires) and the
    bracketed parts."""
    scheduler = benchmark_scheduler(x, y, epochs)
    spent = instrument(scheduler)
    marks: dict[str, float] = {}
    scheduler.attach("run_start", lambda event: marks.setdefault("loop", time.perf_counter()), order=-(10**9))
    start = time.perf_counter()
    final = run_recorded(
        scheduler, folder / "recorded.h5", every_area_probes(scheduler.hierarchy), checkpoint_every=100,
        compression=compression,
    )
    total = time.perf_counter() - start
    result = {"total": total, "setup": marks["loop"] - start, **spent, "file_bytes": final.stat().st_size}
    final.unlink()
    return result


def overhead(args: argparse.Namespace, folder: Path, compression: str) -> float:
    x, y = mnist_like(args.batches)
    probes = every_area_probes(benchmark_scheduler(x[:BATCH], y[:BATCH], 1).hierarchy)
    batches = args.batches * args.epochs
    time_baseline(x, y, 1, folder)  # warm-up pair, not counted
    time_recorded(x, y, 1, folder, compression)
    baselines, recorded = [], []
    for _ in range(args.repeats):
        baselines.append(time_baseline(x, y, args.epochs, folder))
        recorded.append(time_recorded(x, y, args.epochs, folder, compression))

    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    base, rec = median(baselines, "total"), median(recorded, "total")
    ratio = rec / base - 1.0
    pair_ratio = statistics.median(r["total"] / b["total"] for r, b in zip(recorded, baselines)) - 1.0
    parts = {
        "set-up (create the file)": median(recorded, "setup"),
        "take rows (every batch)": median(recorded, "take"),
        "checkpoints (flush to HDF5 + save), less the baseline's":
            median(recorded, "checkpoint") - median(baselines, "checkpoint"),
        "end (last flush, close, rename)": median(recorded, "end"),
    }
    own = sum(parts.values())
    file_mb = recorded[-1]["file_bytes"] / 2**20
    row_bytes = sum(p.samples * SIZES[int(p.target[len("area"):])] for p in probes) * 4
    raw_mb = batches * row_bytes / 2**20
    print(
        f"[overhead, compression {compression}] numpy; {'-'.join(map(str, SIZES))} tanh, PC T={STEPS} step 0.1, Adam 1e-4, "
        f"batch {BATCH}; {args.epochs} epochs x {args.batches} batches; checkpoint every 100 "
        f"batches and at epoch ends in both runs; medians of {args.repeats} alternating pairs"
    )
    print(
        f"  {len(probes)} probes (activity + error of {', '.join(p.target for p in probes[::2])}), "
        f"samples=16, every batch: {raw_mb:.1f} MiB of rows, {file_mb:.1f} MiB file "
        f"({raw_mb / own:.0f} MiB/s of recorder time)"
    )
    print(
        f"  baseline {base:.3f} s ({base / batches * 1e3:.2f} ms/batch); recorded {rec:.3f} s "
        f"({rec / batches * 1e3:.2f} ms/batch)"
    )
    base_runs = " ".join(f"{b['total']:.3f}" for b in baselines)
    rec_runs = " ".join(f"{r['total']:.3f}" for r in recorded)
    print(f"  all runs (s): base {base_runs}; rec {rec_runs}")
    print("  recorder's own time in the recorded run (medians; % of the baseline run):")
    for name, seconds in parts.items():
        print(f"    {name:<58} {seconds * 1e3:7.1f} ms  {seconds / base:+6.1%}")
    print(f"    {'sum':<58} {own * 1e3:7.1f} ms  {own / base:+6.1%}")
    print(
        f"  overhead = recorded/baseline - 1 = {ratio:+.1%} (median of the pairs' ratios "
        f"{pair_ratio:+.1%}; target <= 5%)"
    )
    return ratio


# -- 2. peak memory ----------------------------------------------------------------------
def tiny_scheduler(epochs: int, batches_per_epoch: int) -> cs.Scheduler:
    spec = cs.HierarchySpec.from_sizes(TINY_SIZES, activation="tanh", output_activation="linear")
    hierarchy = cs.build(spec, backend="numpy", seed=0)
    rule = cs.PredictiveCoding(inference=cs.Relaxation(steps=TINY_STEPS, step_size=0.1))
    rng = np.random.default_rng(2)
    n = batches_per_epoch * TINY_BATCH
    x = rng.uniform(0, 1, (n, TINY_SIZES[0])).astype(np.float32)
    y = rng.integers(0, TINY_SIZES[-1], n)
    return cs.Scheduler(hierarchy, rule, cs.Adam(lr=1e-4), x, y, batch_size=TINY_BATCH, epochs=epochs, seed=0)


def applicable_probes(scheduler: cs.Scheduler) -> list[cs.Probe]:
    """Every probe of every quantity that yields a value for this rule and model,
    found by taking each candidate once on one batch of a copy."""
    hierarchy = scheduler.hierarchy
    names = [area.name for area in hierarchy.areas]
    candidates = [cs.Probe(q, n) for n in names for q in ("activity", "error", "prediction")]
    candidates += [cs.Probe(q, f"{a}.{p}") for a, p in hierarchy.parameters() for q in ("weights", "update")]
    candidates += [cs.Probe("alignment", n) for n in names[1:] + ["all"]]
    candidates += [cs.Probe("energy")] + [cs.Probe("metric", m) for m in ("loss", "energy", "steps")]
    _, x, y = next(scheduler.batches(0))
    state = scheduler.rule.infer(hierarchy, x, y)
    gradients = scheduler.rule.gradients(hierarchy, state)
    reference = cs.Backprop(scheduler.rule.loss).gradients(hierarchy, state)
    aligned = cs.sim.probes.alignment(hierarchy, gradients, reference)
    probes = []
    for probe in candidates:
        try:
            value = row_value(probe, hierarchy, state, gradients, aligned)
        except (KeyError, TypeError, AttributeError):  # e.g. no update of an unlearned parameter
            continue
        if value is not None:
            probes.append(probe)
    return probes


def max_rss_mb() -> float:
    """Peak RSS of this process so far, in MiB: VmHWM, which starts afresh at exec
    (``getrusage`` max RSS would carry the parent's peak over a fork)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def memory_child(args: argparse.Namespace) -> None:
    """One recorded run of about ``args.child_rows`` rows; prints a JSON line."""
    probe_count = len(applicable_probes(tiny_scheduler(1, args.memory_batches)))
    epochs = max(1, math.ceil(args.child_rows / (probe_count * args.memory_batches)))
    scheduler = tiny_scheduler(epochs, args.memory_batches)
    probes = applicable_probes(scheduler)
    marks: dict[str, float] = {}
    scheduler.attach("run_start", lambda e: marks.setdefault("start", max_rss_mb()), order=-(10**9))
    scheduler.attach("run_end", lambda e: marks.setdefault("loop", max_rss_mb()), order=99)
    folder = Path(tempfile.mkdtemp(prefix="cortexsim-bench-"))
    try:
        start = time.perf_counter()
        final = run_recorded(
            scheduler, folder / "memory.h5", probes, checkpoint_every=args.memory_checkpoint_every
        )
        seconds = time.perf_counter() - start
        with cs.open(final) as recording:
            rows = sum(recording[p.name].n_rows for p in probes)
        file_mb = final.stat().st_size / 2**20
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({
        "rows": rows, "probes": len(probes), "batches": scheduler.step, "seconds": seconds,
        "rss_start_mb": marks["start"], "rss_loop_mb": marks["loop"], "rss_peak_mb": max_rss_mb(),
        "file_mb": file_mb,
    }))


def memory(args: argparse.Namespace) -> float:
    targets = [int(r) for r in args.rows.split(",")]
    results = []
    for target in targets:
        command = [
            sys.executable, __file__, "--child-rows", str(target),
            "--memory-batches", str(args.memory_batches),
            "--memory-checkpoint-every", str(args.memory_checkpoint_every),
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"memory run of {target} rows failed:\n{done.stderr}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first = results[0]
    print(
        f"[memory] numpy; {'-'.join(map(str, TINY_SIZES))} tanh, PC T={TINY_STEPS}, batch {TINY_BATCH}; "
        f"{first['probes']} probes every batch (rows = batches x probes); checkpoint every "
        f"{args.memory_checkpoint_every} batches; one subprocess per run"
    )
    for r in results:
        print(
            f"  {r['rows']:>9,} rows ({r['batches']:,} batches, {r['seconds']:.1f} s, "
            f"{r['rows'] / r['seconds']:,.0f} rows/s, {r['file_mb']:.1f} MiB file): max RSS "
            f"{r['rss_start_mb']:.1f} MiB at start, {r['rss_loop_mb']:.1f} MiB end of loop, "
            f"{r['rss_peak_mb']:.1f} MiB after close"
        )
    last = results[-1]
    print(
        f"  longest vs shortest run: {last['rss_peak_mb'] - first['rss_peak_mb']:+.1f} MiB peak, "
        f"{last['rss_loop_mb'] - first['rss_loop_mb']:+.1f} MiB during the loop "
        f"(flat means within a few MiB)"
    )
    return last["rss_peak_mb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=150, help="batches per epoch of the overhead runs")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7, help="alternating baseline/recorded pairs")
    parser.add_argument("--rows", default="100000,300000,1000000", help="row targets of the memory runs")
    parser.add_argument(
        "--memory-batches", type=int, default=500, help="batches per epoch of the memory runs"
    )
    parser.add_argument("--memory-checkpoint-every", type=int, default=1000)
    parser.add_argument("--child-rows", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--compressions", default="none,lzf", help="probe data filters to measure; the first is reported last"
    )
    args = parser.parse_args()
    if args.child_rows:
        memory_child(args)
        return
    folder = Path(tempfile.mkdtemp(prefix="cortexsim-bench-"))
    compressions = args.compressions.split(",")
    try:
        ratios = {c: overhead(args, folder, c) for c in compressions}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    peak = memory(args)
    others = " ".join(f"recording_overhead_{c}={ratios[c]:.3f}" for c in compressions[1:])
    print(f"recording_overhead={ratios[compressions[0]]:.3f} peak_rss_mb={peak:.1f} {others}".rstrip())


if __name__ == "__main__":
    main()
