"""``cortexsim run STUDY --cluster FILE``: Dask workers started as jobs of a
batch system (SLURM or PBS) through dask-jobqueue, so a study's runs go to a
lab's cluster without anyone starting a scheduler or workers by hand.

The ``[cluster]`` table lives in a file of its own, not in the study file:
it says where the runs go, not what they are, so one study file means the
same on every machine and one cluster file serves every study of a lab.

Each job runs ``cores`` single-threaded Dask workers (one per core, as a
``LocalCluster`` of cortexsim does), and ``jobs`` jobs are asked for. The
scheduler runs in the ``cortexsim run`` process, on the submitting host; the
workers must see the study's output folder under the same path (a shared
filesystem), as with ``--scheduler``.

    [cluster]
    system = "slurm"          # or "pbs"
    jobs = 4                  # batch jobs asked for
    cores = 2                 # per job: that many single-threaded workers
    memory = "8GB"            # per job
    walltime = "04:00:00"
    queue = "normal"          # optional: partition (SLURM) or queue (PBS)
    account = "lab123"        # optional
    interface = "ib0"         # optional: the network interface workers and scheduler use
    python = "/shared/venv/bin/python"   # optional: the workers' python (default: this one)
    prologue = ["module load hdf5"]      # optional: lines run before the worker starts
    directives = ["--constraint=avx2"]   # optional: extra #SBATCH / #PBS lines
    log_directory = "dask-logs"          # optional: the jobs' output files
    wait = 600                # seconds to wait for the first worker (jobs may queue)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

from ..errors import ClusterError, ConfigurationError
from ..files import read_toml
from ..validation import check_choice, check_int, check_keys, check_number, invalid

__all__ = ["BatchCluster", "SYSTEMS", "batch_client", "load_cluster", "read_cluster"]

SYSTEMS = ("slurm", "pbs")


@dataclass(frozen=True)
class BatchCluster:
    """A validated ``[cluster]`` table."""

    system: str
    jobs: int
    memory: str
    cores: int = 1
    walltime: str = "01:00:00"
    queue: str | None = None
    account: str | None = None
    interface: str | None = None
    python: str | None = None
    prologue: tuple[str, ...] = ()
    directives: tuple[str, ...] = ()
    log_directory: str | None = None
    wait: float = 600.0

    def dask_jobqueue_settings(self) -> dict[str, Any]:
        """Keyword arguments of dask-jobqueue's ``SLURMCluster`` / ``PBSCluster``."""
        settings: dict[str, Any] = {
            "cores": self.cores, "processes": self.cores, "memory": self.memory,
            "walltime": self.walltime, "job_extra_directives": list(self.directives),
            "job_script_prologue": list(self.prologue), "death_timeout": 60,
            "silence_logs": "critical",
        }
        for key in ("queue", "account", "python", "log_directory"):
            if getattr(self, key) is not None:
                settings[key] = getattr(self, key)
        if self.interface is not None:
            settings["interface"] = self.interface
            settings["scheduler_options"] = {"interface": self.interface}
        return settings


_KEYS = tuple(f.name for f in fields(BatchCluster))  # the keys a [cluster] table may hold


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid(where, f"expected a non-empty string, got {value!r}")
    return value


def _lines(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise invalid(where, f"expected a list of strings, got {value!r}")
    return tuple(_text(line, f"{where}[{i}]") for i, line in enumerate(value))


def read_cluster(table: Any, where: str = "cluster") -> BatchCluster:
    """Validate a ``[cluster]`` table; errors name ``cluster.KEY``."""
    check_keys(table, _KEYS, where)
    for key in ("system", "jobs", "memory"):
        if key not in table:
            raise invalid(f"{where}.{key}", "required key is missing (see docs/studies.md, Clusters)")
    check_choice(table["system"], SYSTEMS, f"{where}.system")
    optional = {key: _text(table[key], f"{where}.{key}")
                for key in ("queue", "account", "interface", "python", "log_directory") if key in table}
    walltime = _text(table.get("walltime", "01:00:00"), f"{where}.walltime")
    parts = walltime.split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
        raise invalid(f"{where}.walltime", f"expected HH:MM:SS, got {walltime!r}")
    return BatchCluster(
        system=table["system"], jobs=check_int(table["jobs"], f"{where}.jobs", minimum=1),
        memory=_text(table["memory"], f"{where}.memory"),
        cores=check_int(table.get("cores", 1), f"{where}.cores", minimum=1), walltime=walltime,
        prologue=_lines(table.get("prologue", []), f"{where}.prologue"),
        directives=_lines(table.get("directives", []), f"{where}.directives"),
        wait=check_number(table.get("wait", 600.0), f"{where}.wait", positive=True), **optional,
    )


def load_cluster(path: str | os.PathLike[str]) -> BatchCluster:
    """The ``[cluster]`` table of the file ``path``; errors name the file and the key."""
    document, _ = read_toml(path, "cluster file")
    try:
        check_keys(document, ("cluster",), "cluster file")
        if "cluster" not in document:
            raise invalid("cluster", "the file has no [cluster] table (docs/studies.md, Clusters)")
        return read_cluster(document["cluster"])
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path}: {exc}") from None


def _jobqueue_cluster(spec: BatchCluster) -> Any:
    try:
        import dask_jobqueue
    except ImportError:
        raise ConfigurationError(
            "cluster: starting workers on a batch system needs dask-jobqueue: pip install 'cortexsim[cluster]'"
        ) from None
    kind = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[spec.system]
    try:
        return kind(**spec.dask_jobqueue_settings())
    except (ValueError, TypeError, OSError) as exc:
        raise ClusterError(f"cluster: dask-jobqueue could not set up the {spec.system} cluster ({exc})") from None


@contextlib.contextmanager
def batch_client(spec: BatchCluster) -> Iterator[Any]:
    """A Dask ``Client`` whose workers are ``spec.jobs`` batch jobs; the jobs are
    cancelled when the block ends. Raises ``ClusterError`` when the submit
    command fails or no worker has started within ``spec.wait`` seconds."""
    import dask.distributed

    submit = {"slurm": "sbatch", "pbs": "qsub"}[spec.system]
    with _jobqueue_cluster(spec) as cluster:
        try:
            cluster.scale(jobs=spec.jobs)
        except (RuntimeError, OSError) as exc:
            raise ClusterError(f"cluster: {submit} refused the worker jobs ({exc})") from None
        with dask.distributed.Client(cluster) as client:
            try:
                client.wait_for_workers(1, timeout=spec.wait)
            except (TimeoutError, OSError):
                raise ClusterError(
                    f"cluster: no worker started within {spec.wait:g} s of asking {submit} for "
                    f"{spec.jobs} job(s); they may still be queued (raise cluster.wait), or failed "
                    f"at start (see their output{' in ' + spec.log_directory if spec.log_directory else ''})"
                ) from None
            yield client
