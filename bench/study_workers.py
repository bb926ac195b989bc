"""Study throughput with 1 and 2 worker processes: runs per hour, as a ratio
measured in one run.

Eight short runs (predictive coding on the bundled digits, 64-64-10 tanh,
T = 20, 200 epochs: about five seconds each) are run as one study with
``--workers 1`` and with ``--workers 2``, alternated ``--repeats`` times; each
configuration's best wall time counts (the machine's speed drifts over
minutes). Wall time includes starting the Dask cluster and its worker
processes (each imports cortexsim), which a longer study amortizes.

    python bench/study_workers.py [--repeats 2] [--runs 8] [--epochs 200]

The last line is machine-readable:
``runs_per_hour_1=... runs_per_hour_2=... speedup=...``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUDY = """
[study]
name = "workers_bench"
seeds = {seeds}

[[model.areas]]
name = "pixels"
size = 64

[[model.areas]]
name = "hidden"
size = 64
activation = "tanh"

[[model.areas]]
name = "labels"
size = 10
activation = "linear"

[data]
name = "digits"

[schedule]
epochs = {epochs}
batch_size = 32

[optimizer]
name = "adam"
lr = 1e-3

[[rules]]
rule = "predictive_coding"
label = "pc"
inference = {{steps = 20, step_size = 0.1}}
"""


def run_study(study: Path, out: Path, workers: int) -> float:
    """Wall seconds of ``cortexsim run STUDY --workers N`` in a fresh process."""
    command = [sys.executable, "-m", "cortexsim", "run", str(study), "--out", str(out), "--quiet",
               "--workers", str(workers)]
    # One BLAS thread per process: the serial study on one core, the parallel one on two.
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"cortexsim run --workers {workers} failed:\n{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        study = Path(folder) / "study.toml"
        study.write_text(STUDY.format(seeds=list(range(args.runs)), epochs=args.epochs))
        times: dict[int, list[float]] = {1: [], 2: []}
        for repeat in range(args.repeats):
            for workers in (1, 2):
                times[workers].append(run_study(study, Path(folder) / f"out{workers}_{repeat}", workers))
    best = {workers: min(seconds) for workers, seconds in times.items()}
    per_hour = {workers: args.runs * 3600 / seconds for workers, seconds in best.items()}
    print(f"{args.runs} runs of {args.epochs} epochs (PC, digits 64-64-10, T = 20), best of {args.repeats}")
    for workers in (1, 2):
        print(f"--workers {workers}: {best[workers]:.1f} s wall ({', '.join(f'{s:.1f}' for s in times[workers])}), "
              f"{per_hour[workers]:,.0f} runs/hour")
    print(f"runs_per_hour_1={per_hour[1]:.0f} runs_per_hour_2={per_hour[2]:.0f} "
          f"speedup={per_hour[2] / per_hour[1]:.2f}")


if __name__ == "__main__":
    main()
