"""Runs a study plan: every rule x seed on identical data, initial weights and
batch order, each to its own recording, with an index (``study.json``)
rewritten after every run so a crash loses nothing that finished."""

from __future__ import annotations

import datetime
import inspect
import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..data import binarize, load
from ..errors import ConfigurationError, CortexsimError, DivergenceError
from ..experiments import EXPERIMENTS, save_result
from ..optim import make_optimizer, make_schedule
from ..recording import partial_path
from ..sim.recorded import checkpoint_path
from ..sim.scheduler import Scheduler
from ..sim.simulator import Simulator
from ..validation import check_int
from .lock import study_lock
from .plan import RunSpec, StudyPlan

__all__ = ["run_study", "INDEX"]

INDEX = "study.json"


def _write_index(out: Path, index: dict[str, Any]) -> None:
    temporary = out / (INDEX + ".tmp")
    temporary.write_text(json.dumps(index, indent=2, default=str))
    os.replace(temporary, out / INDEX)


def _data(plan: StudyPlan, seed: int, data_dir: str | None) -> tuple[Any, ...]:
    extra = {key: plan.data[key] for key in ("n", "layout") if key in plan.data}
    data = load(plan.data["name"], data_dir=data_dir or plan.data["data_dir"], **extra)
    if plan.data["validation"] > 0:
        data, (x_val, y_val) = data.validation_split(plan.data["validation"], seed)
    else:
        x_val = y_val = None
    x, y = data.x_train, data.y_train
    if plan.data["limit"]:
        x, y = x[: plan.data["limit"]], y[: plan.data["limit"]]
    x_test = data.x_test
    mode = plan.data.get("binarize")
    if mode is not None:
        # "dynamic" resamples the training images at every batch (the Scheduler);
        # held-out images are one fixed sample, drawn with the run's seed.
        fixed = "static" if mode == "dynamic" else mode
        if mode != "dynamic":
            x = binarize(x, fixed, seed=seed)
        x_val = None if x_val is None else binarize(x_val, fixed, seed=seed + 1)
        x_test = binarize(x_test, fixed, seed=seed + 2)
    return x, y, x_val, y_val, x_test, data.y_test


def run_one(
    plan: StudyPlan,
    out: Path,
    spec: RunSpec,
    seed: int,
    backend: str,
    resume: bool,
    data_dir: str | None,
    progress: Callable[[str, Scheduler], Any] | None = None,
) -> dict[str, Any]:
    """Run one rule x seed of ``plan`` to ``OUT/LABEL/seedS.h5``; returns its
    index entry (status, history, error)."""
    recording = out / spec.label / f"seed{seed}.h5"
    schedule = plan.schedule
    if resume and recording.exists() and not partial_path(recording).exists():
        if _missing_experiments(plan, out, spec, seed):  # e.g. added to the study since
            sim = Simulator.trained(plan.model, spec.make_rule(), checkpoint_path(recording),
                                    backend=backend, dtype=schedule["dtype"], seed=seed, rule_state=False)
            _run_experiments(plan, out, spec, seed, sim)
        return {"status": "complete"}
    x, y, x_val, y_val, x_test, y_test = _data(plan, seed, data_dir)
    config = {"study": plan.to_dict(), "label": spec.label, "seed": seed, "backend": backend}
    sim = Simulator(
        plan.model, spec.make_rule(), make_optimizer(**spec.optimizer),
        {"x_train": x, "y_train": y, "x_val": x_val, "y_val": y_val, "x_test": x_test, "y_test": y_test},
        backend=backend, dtype=schedule["dtype"], seed=seed,
        batch_size=schedule["batch_size"], epochs=schedule["epochs"],
        binarize="dynamic" if plan.data.get("binarize") == "dynamic" else None,
        lr_schedule=make_schedule(**schedule["learning_rate"]) if "learning_rate" in schedule else None,
        probes=plan.probes, unsupported_probes="skip", recording=recording,
        checkpoint_every=schedule["checkpoint_every"], resume=resume, config=config,
    )
    if progress is not None:
        progress(f"{spec.label} seed {seed}", sim.scheduler)
    entry: dict[str, Any] = {}
    try:
        sim.run()
        entry["status"] = "complete"
        _run_experiments(plan, out, spec, seed, sim)
    except DivergenceError as exc:
        entry["status"], entry["error"] = "diverged", str(exc)
    except CortexsimError as exc:
        entry["status"], entry["error"] = "failed", str(exc)
    finally:
        entry["history"] = sim.history
    return entry


def _experiment_path(out: Path, spec: RunSpec, seed: int, kind: str) -> Path:
    return out / spec.label / f"seed{seed}.{kind}.h5"


def _missing_experiments(plan: StudyPlan, out: Path, spec: RunSpec, seed: int) -> list[str]:
    return [kind for kind, _ in plan.experiments if not _experiment_path(out, spec, seed, kind).exists()]


def _run_experiments(plan: StudyPlan, out: Path, spec: RunSpec, seed: int, sim: Simulator) -> None:
    """Run the study's [[experiments]] on a trained model; each saved beside the recording."""
    for kind, settings in plan.experiments:
        path = _experiment_path(out, spec, seed, kind)
        if not path.exists():
            run = EXPERIMENTS[kind].run
            extra = {"data": dict(plan.data)} if "data" in inspect.signature(run).parameters else {}
            result = run(sim.hierarchy, sim.rule, seed=seed, **settings, **extra)
            save_result(result, path)


def _run_single_threaded(*args: Any) -> dict[str, Any]:
    """``run_one`` in a worker process: one BLAS thread, so workers share the cores."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return run_one(*args)


def _run_in_parallel(
    plan: StudyPlan, out: Path, jobs: list[tuple[RunSpec, int]], index: dict[str, Any],
    workers: int, backend: str, resume: bool, data_dir: str | None,
) -> None:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ConfigurationError(
            "workers: running studies in parallel needs Dask: pip install 'cortexsim[dist]'"
        ) from None
    # silence_logs: the workers' own logging stays quiet (a worker whose heartbeat
    # races the scheduler's shutdown logs a traceback that is not a fault); a run
    # that fails raises through future.result(), a worker that dies as KilledWorker.
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.CRITICAL) as cluster, \
            Client(cluster) as client:
        futures = {
            client.submit(_run_single_threaded, plan, out, spec, seed, backend, resume, data_dir,
                          pure=False): i
            for i, (spec, seed) in enumerate(jobs)
        }
        for future in as_completed(futures):
            index["runs"][futures[future]].update(future.result())
            _write_index(out, index)


def run_study(
    plan: StudyPlan,
    out: str | os.PathLike[str] | None = None,
    *,
    seeds: Sequence[int] | None = None,
    backend: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    data_dir: str | None = None,
    progress: Callable[[str, Scheduler], Any] | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Run every rule x seed of ``plan``; returns the index written to ``OUT/study.json``.

    Parameters
    ----------
    out : path, optional
        Output folder (default: the plan's ``study.out``).
    seeds, backend : optional
        Override the plan's seeds and backend.
    resume : bool
        Skip completed runs and continue killed ones from their checkpoints.
    overwrite : bool
        Replace recordings already in ``out``; without it (or ``resume``) an
        existing recording stops the study before anything runs.
    progress : callable, optional
        ``progress(title, scheduler)`` is called before each run, to attach a
        progress display to the scheduler's slots.
    workers : int
        Runs at a time. Above 1 the runs go to a Dask ``LocalCluster`` of that
        many single-threaded worker processes (``pip install
        'cortexsim[dist]'``); each run still writes its own recording.
    """
    workers = check_int(workers, "workers", minimum=1)
    out = Path(out if out is not None else plan.out)
    with study_lock(out):
        return _run_study(plan, out, seeds, backend, resume, overwrite, data_dir, progress, workers)


def _run_study(
    plan: StudyPlan, out: Path, seeds: Sequence[int] | None, backend: str | None, resume: bool,
    overwrite: bool, data_dir: str | None, progress: Callable[[str, Scheduler], Any] | None,
    workers: int,
) -> dict[str, Any]:
    seeds = tuple(plan.seeds if seeds is None else seeds)
    if not (resume or overwrite):
        for spec in plan.rules:
            for seed in seeds:
                recording = out / spec.label / f"seed{seed}.h5"
                for existing in (recording, partial_path(recording)):
                    if existing.exists():
                        raise ConfigurationError(
                            f"{existing} exists already: continue the study with --resume, "
                            f"replace its runs with --overwrite, or write elsewhere with --out"
                        )
    out.mkdir(parents=True, exist_ok=True)
    if plan.path.exists():
        shutil.copyfile(plan.path, out / "study.toml")
    backend = backend or plan.schedule["backend"]
    index: dict[str, Any] = {
        "name": plan.name,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "plan": plan.to_dict(),
        "runs": [],
    }
    jobs = [(spec, seed) for spec in plan.rules for seed in seeds]
    for spec, seed in jobs:
        recording = out / spec.label / f"seed{seed}.h5"
        index["runs"].append({
            "label": spec.label, "rule": spec.rule, "seed": seed, "supervised": spec.supervised,
            "recording": str(recording.relative_to(out)), "status": "pending",
        })
    if workers > 1:
        _run_in_parallel(plan, out, jobs, index, workers, backend, resume, data_dir)
        return index
    for (spec, seed), entry in zip(jobs, index["runs"]):
        try:
            entry.update(run_one(plan, out, spec, seed, backend, resume, data_dir, progress))
        except BaseException:
            entry["status"] = "running"  # interrupted: resumable
            _write_index(out, index)
            raise
        _write_index(out, index)
    _write_index(out, index)
    return index
