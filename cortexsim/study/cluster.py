"""A study's runs on Dask: a ``LocalCluster`` of N workers, a scheduler
already running at an address (``--scheduler tcp://HOST:8786``), or workers
started as batch jobs (``[cluster]``, ``batch_system``).

Every run is sent with ``resume`` on, which the caller makes safe: it has
checked that no recording of a fresh study exists, or deleted the old ones
(``--overwrite``). So a run whose worker dies is run again by the scheduler on
another worker and continues from its last checkpoint in the shared output
folder, and a run that raised is retried the same way (``retries=``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import ClusterError, ConfigurationError
from .batch_system import BatchCluster, batch_client
from .plan import RunSpec, StudyPlan

__all__ = ["dask_client", "check_workers", "run_on_cluster", "CONNECT_TIMEOUT", "RETRIES"]

CONNECT_TIMEOUT = 20.0
"""Seconds to reach a scheduler, and again to see its first worker."""

RETRIES = 2
"""Times a run that raised is sent again. A worker that dies is not counted
here: the scheduler runs the task again on its own, up to its
``distributed.scheduler.allowed-failures`` (3 by default), then gives up
with ``KilledWorker``."""


def _dask(setting: str) -> Any:
    try:
        import dask.distributed
    except ImportError:
        raise ConfigurationError(
            f"{setting}: running studies on Dask needs it installed: pip install 'cortexsim[dist]'"
        ) from None
    return dask.distributed


@contextlib.contextmanager
def dask_client(workers: int = 1, scheduler: str | None = None,
                batch: BatchCluster | None = None) -> Iterator[Any]:
    """A Dask ``Client``: of a new ``LocalCluster`` of ``workers`` single-threaded
    processes, connected to the running scheduler at ``scheduler``, or of
    workers started as the batch jobs ``batch`` describes.

    Raises ``ClusterError`` naming the address when no scheduler answers
    there, or none of its workers shows up, within ``CONNECT_TIMEOUT`` seconds.
    """
    distributed = _dask("--scheduler" if scheduler else "cluster" if batch else "workers")
    if batch is not None:
        with batch_client(batch) as client:
            yield client
        return
    if scheduler is None:
        # silence_logs: the workers' own logging stays quiet (a worker whose heartbeat
        # races the scheduler's shutdown logs a traceback that is not a fault); a run
        # that fails raises through future.result(), a worker that dies as KilledWorker.
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                      dashboard_address=None, silence_logs=logging.CRITICAL) as cluster, \
                distributed.Client(cluster) as client:
            yield client
        return
    try:
        from distributed.comm.addressing import parse_address, parse_host_port
        from distributed.comm.registry import get_backend

        scheme, location = parse_address(scheduler)
        get_backend(scheme)
        if scheme in ("tcp", "tls"):
            parse_host_port(location)
    except (ValueError, TypeError) as exc:
        raise ClusterError(f"--scheduler {scheduler}: not a scheduler address ({exc}); "
                           f"expected one like tcp://HOST:8786") from None
    try:
        client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise ClusterError(
            f"--scheduler {scheduler}: no Dask scheduler answered within {CONNECT_TIMEOUT:g} s "
            f"({type(exc).__name__}: {exc}); start one with `dask scheduler` and give its address, "
            f"e.g. tcp://HOST:8786"
        ) from None
    with client:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except (TimeoutError, OSError):
            raise ClusterError(
                f"--scheduler {scheduler}: the scheduler has no workers after {CONNECT_TIMEOUT:g} s; "
                f"start some with `dask worker {scheduler} --nthreads 1`"
            ) from None
        yield client


def _worker_facts(probe: str) -> dict[str, Any]:
    """On a worker: its cortexsim version, host, and whether it sees ``probe``."""
    return {"version": __version__, "host": socket.gethostname(), "sees": os.path.exists(probe)}


def check_workers(client: Any, out: Path, where: str) -> None:
    """Refuse workers that cannot write ``out`` or run another cortexsim: every
    worker must see the output folder (a shared filesystem) and run this version.
    Errors start with ``where`` (``--scheduler ADDRESS``, ``cluster``)."""
    probe = out / f".cortexsim-probe-{uuid.uuid4().hex}"
    probe.write_text("")
    try:
        facts = client.run(_worker_facts, str(probe))
    except Exception as exc:  # noqa: BLE001 - whatever a remote worker raised, said as one line
        raise ClusterError(f"{where}: the workers cannot run cortexsim "
                           f"({type(exc).__name__}: {exc}); install it where they run") from None
    finally:
        probe.unlink(missing_ok=True)
    blind = sorted(f"{address} ({f['host']})" for address, f in facts.items() if not f["sees"])
    if blind:
        raise ClusterError(
            f"{where}: {', '.join(blind)} cannot see the output folder {out}; "
            f"it must be on a filesystem every worker shares, named by the same path"
        )
    other = sorted(f"{address} ({f['version']})" for address, f in facts.items() if f["version"] != __version__)
    if other:
        raise ClusterError(f"{where}: {', '.join(other)} run another cortexsim than "
                           f"this one ({__version__}); the runs would not be reproducible")


def run_on_cluster(
    client: Any, attempt: Callable[..., dict[str, Any]],
    jobs: Sequence[tuple[StudyPlan, Path, RunSpec, int, str]], data_dir: str | None,
    done: Callable[[int, dict[str, Any]], Any],
) -> None:
    """Send ``attempt(plan, out, spec, seed, backend, data_dir)`` for every (plan,
    out, spec, seed, backend) of ``jobs`` to ``client``, all at once (the runs of
    a sweep's points and of a study alike); ``done(i, entry)`` as each finishes.

    ``attempt`` resumes from a checkpoint when one exists and returns the run's
    index entry, or ``{"raise": error}`` for a ``CortexsimError`` that is raised
    here rather than retried. ``out`` and ``data_dir`` must be absolute: the
    workers resolve them, not this process.
    """
    distributed = _dask("workers")
    futures = {
        client.submit(attempt, plan, out, spec, seed, backend, data_dir, pure=False,
                      retries=RETRIES, key=f"{spec.label}-seed{seed}-{uuid.uuid4().hex[:8]}"): i
        for i, (plan, out, spec, seed, backend) in enumerate(jobs)
    }
    for future in distributed.as_completed(futures):
        i = futures[future]
        try:
            entry = future.result()
            if "raise" in entry:
                raise entry["raise"]
        except distributed.KilledWorker as exc:
            spec, seed = jobs[i][2:4]
            entry = {"status": "failed",
                     "error": f"every worker that ran {spec.label} seed {seed} died ({exc}); its last "
                              f"checkpoint is kept: continue with --resume"}
        done(i, entry)
