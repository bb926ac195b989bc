"""Runs a study plan: every rule x seed on identical data, initial weights and
batch order, each to its own recording, with an index (``study.json``)
rewritten after every run so a crash loses nothing that finished."""

from __future__ import annotations

import datetime
import inspect
import json
import os
import shutil
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..data import binarize, load
from ..errors import ConfigurationError, CortexsimError, DivergenceError, FormatError, RecoveryWarning
from ..experiments import EXPERIMENTS, save_result
from ..optim import make_optimizer, make_schedule
from ..recording import check_recording, partial_path
from ..sim.checkpoint import previous_checkpoint, set_aside
from ..sim.recorded import checkpoint_path
from ..sim.scheduler import Scheduler
from ..sim.simulator import Simulator
from ..validation import check_int
from .batch_system import BatchCluster
from .lock import study_lock
from .plan import RunSpec, StudyPlan
from .sweep import check_held_out
from .tuning import run_sweep

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
    if resume and recording.exists() and not partial_path(recording).exists() and _intact(recording):
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


def _intact(recording: Path) -> bool:
    """Whether a finished run's recording still reads; one damaged since it was
    written (a copy cut short) is kept aside, said, and the run done again."""
    try:
        check_recording(recording)
    except FormatError as exc:
        aside = set_aside(recording)
        warnings.warn(f"{exc}; kept aside as {aside.name}; the run starts again from the beginning",
                      RecoveryWarning, stacklevel=3)
        return False
    return True


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


def _run_attempt(plan: StudyPlan, out: Path, spec: RunSpec, seed: int, backend: str,
                 data_dir: str | None) -> dict[str, Any]:
    """One attempt at a run on a worker, resuming from its checkpoint if an
    earlier attempt left one; the entry says where it started (``resumed_at``)."""
    start: dict[str, Any] = {}

    def note(title: str, scheduler: Any) -> None:
        start.update(epoch=scheduler.epoch, batch=scheduler.batch, step=scheduler.step)

    try:
        entry = _run_single_threaded(plan, out, spec, seed, backend, True, data_dir, note)
    except CortexsimError as exc:  # a mistake (a missing dataset) fails again: not one to retry
        return {"raise": exc}
    if start.get("step"):
        entry["resumed_at"] = start
    return entry


def _run_in_parallel(
    studies: Sequence[tuple[StudyPlan, Path, str, dict[str, Any]]], workers: int, scheduler: str | None,
    batch: BatchCluster | None, data_dir: str | None,
    finished: Callable[[dict[str, Any], int, int], Any] | None,
) -> None:
    """Every run of ``studies`` (plan, out, backend, index) on one Dask client at
    once, each study's index rewritten as its runs end."""
    from .cluster import check_workers, dask_client, run_on_cluster

    # The workers resolve the paths, maybe on other hosts: give them absolute ones,
    # and the data folder this process would use.
    plan = studies[0][0]
    data_dir = data_dir or plan.data["data_dir"] or os.environ.get("CORTEXSIM_DATA") or None
    data_dir = None if data_dir is None else str(Path(data_dir).expanduser().resolve())
    jobs, places = [], []
    for plan, out, backend, index in studies:
        specs = {spec.label: spec for spec in plan.rules}
        for i, run in enumerate(index["runs"]):
            jobs.append((plan, out.resolve(), specs[run["label"]], run["seed"], backend))
            places.append((out, index, i))
    count = 0

    def done(j: int, entry: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        out, index, i = places[j]
        index["runs"][i].update(entry)
        _write_index(out, index)
        if finished is not None:
            finished(index["runs"][i], count, len(jobs))

    with dask_client(workers, scheduler, batch) as client:
        if scheduler is not None or batch is not None:  # workers on other hosts
            check_workers(client, studies[0][1].resolve(),
                          f"--scheduler {scheduler}" if scheduler is not None else "cluster")
        run_on_cluster(client, _run_attempt, jobs, data_dir, done)


def _clear_run(plan: StudyPlan, out: Path, spec: RunSpec, seed: int) -> None:
    """Delete what an earlier run of (spec, seed) left in ``out`` (``--overwrite``
    on Dask), so a retried attempt resumes from its own checkpoint only."""
    recording = out / spec.label / f"seed{seed}.h5"
    checkpoint = checkpoint_path(recording)
    for path in (recording, partial_path(recording), checkpoint, previous_checkpoint(checkpoint),
                 *(_experiment_path(out, spec, seed, kind) for kind, _ in plan.experiments)):
        path.unlink(missing_ok=True)


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
    scheduler: str | None = None,
    finished: Callable[[dict[str, Any], int, int], Any] | None = None,
    cluster: BatchCluster | None = None,
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
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://HOST:8786``) to send the
        runs to instead; its workers must see ``out`` under the same path.
        Exclusive with ``workers`` above 1.
    finished : callable, optional
        ``finished(entry, done, total)`` as each run ends on Dask (``workers``
        above 1, ``scheduler`` or ``[cluster]``), where ``progress`` cannot follow the runs.
    cluster : BatchCluster, optional
        Start the workers as the batch jobs it describes (``cortexsim run
        --cluster FILE``, ``batch_system.load_cluster``); they must see ``out``
        under the same path. Exclusive with ``workers`` above 1 and ``scheduler``.

    On Dask a run whose worker dies is run again on another worker and
    continues from its last checkpoint, with or without ``resume``. A
    ``[sweep]`` sends the runs of all its points at once.
    """
    workers = check_int(workers, "workers", minimum=1)
    if scheduler is not None and workers > 1:
        raise ConfigurationError(
            f"workers: {workers} asks for a LocalCluster, but the runs go to the scheduler at "
            f"{scheduler}; give one of --workers and --scheduler"
        )
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise ConfigurationError(f"scheduler: expected an address like tcp://HOST:8786, got {scheduler!r}")
    if cluster is not None and (workers > 1 or scheduler is not None):
        raise ConfigurationError("cluster: the runs go to batch jobs, to a LocalCluster (workers) or to a "
                                 "running scheduler; give one of --cluster, --workers and --scheduler")
    out = Path(out if out is not None else plan.out)
    given = seeds is not None
    seeds = tuple(plan.seeds if seeds is None else seeds)
    parallel = (workers, scheduler, cluster, data_dir, finished)
    with study_lock(out):
        if plan.sweep is not None:  # tune each rule on its own seeds first; its best setting runs below
            check_held_out(seeds, plan.sweep.tuning_seeds, "the seeds given" if given else "study.seeds")

            def run_points(points: Sequence[tuple[StudyPlan, Path]], tuning: Sequence[int]) -> list[dict[str, Any]]:
                return _run_studies([(p, folder, _titled(progress, folder.name)) for p, folder in points],
                                    tuning, backend, resume, overwrite, parallel)

            plan = run_sweep(plan, out, run_points)
        return _run_studies([(plan, out, progress)], seeds, backend, resume, overwrite, parallel)[0]


def _titled(progress: Callable[[str, Scheduler], Any] | None, setting: str) -> Callable[[str, Scheduler], Any] | None:
    """A progress display whose title names the setting a sweep run tries."""
    if progress is None:
        return None
    return lambda title, scheduler: progress(f"{title} ({setting})", scheduler)


def _run_studies(
    studies: Sequence[tuple[StudyPlan, Path, Callable[[str, Scheduler], Any] | None]], seeds: Sequence[int],
    backend: str | None, resume: bool, overwrite: bool, parallel: tuple[Any, ...],
) -> list[dict[str, Any]]:
    """Run every (plan, out) of ``studies`` on ``seeds``: one after the other
    here, or all their runs at once on Dask; returns each study's index."""
    workers, scheduler, cluster, data_dir, finished = parallel
    on_dask = workers > 1 or scheduler is not None or cluster is not None
    prepared = [(plan, out, backend or plan.schedule["backend"], _prepare(plan, out, seeds, resume, overwrite))
                for plan, out, _ in studies]
    if on_dask:
        # Every run goes with resume on, so that a retried one continues from its
        # checkpoint: safe, as nothing of a fresh study exists (checked above) and
        # --overwrite deletes the old runs now rather than as each new one completes.
        if overwrite and not resume:
            for plan, out, _, index in prepared:
                specs = {spec.label: spec for spec in plan.rules}
                for run in index["runs"]:
                    _clear_run(plan, out, specs[run["label"]], run["seed"])
        _run_in_parallel(prepared, workers, scheduler, cluster, data_dir, finished)
        return [index for *_, index in prepared]
    for (plan, out, backend, index), (*_, progress) in zip(prepared, studies):
        specs = {spec.label: spec for spec in plan.rules}
        for entry in index["runs"]:
            try:
                entry.update(run_one(plan, out, specs[entry["label"]], entry["seed"], backend, resume,
                                     data_dir, progress))
            except BaseException:
                entry["status"] = "running"  # interrupted: resumable
                _write_index(out, index)
                raise
            _write_index(out, index)
        _write_index(out, index)
    return [index for *_, index in prepared]


def _prepare(plan: StudyPlan, out: Path, seeds: Sequence[int], resume: bool, overwrite: bool) -> dict[str, Any]:
    """Check that a fresh study overwrites nothing, make ``out`` and return its
    index, every run pending."""
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
    index: dict[str, Any] = {
        "name": plan.name,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "plan": plan.to_dict(),
        "runs": [],
    }
    for spec in plan.rules:
        for seed in seeds:
            recording = out / spec.label / f"seed{seed}.h5"
            index["runs"].append({
                "label": spec.label, "rule": spec.rule, "seed": seed, "supervised": spec.supervised,
                "recording": str(recording.relative_to(out)), "status": "pending",
            })
    return index
