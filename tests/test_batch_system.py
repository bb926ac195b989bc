"""``--cluster FILE``: workers started as batch jobs through dask-jobqueue. The
batch system is played by ``tests/data/fake_batch`` (an ``sbatch`` that runs
the job script on this machine, a ``scancel`` that stops it), so the whole
path runs: job scripts written and submitted, workers joining over the
loopback interface, runs sent, jobs cancelled at the end."""

import os
import shutil
import signal
import stat
from pathlib import Path

import numpy as np
import pytest
from conftest import digits_backprop_study

import cortexsim as cs
from cortexsim.cli import main
from cortexsim.errors import ConfigurationError
from cortexsim.study.batch_system import load_cluster, read_cluster

pytest.importorskip("dask.distributed")
dask_jobqueue = pytest.importorskip("dask_jobqueue")

FAKE = Path(__file__).parent / "data" / "fake_batch"
CLUSTER = """
[cluster]
system = "slurm"
jobs = 2
cores = 1
memory = "1GB"
walltime = "00:10:00"
queue = "short"
interface = "lo"
wait = 90
prologue = ["export CORTEXSIM_TEST_PROLOGUE=1"]
directives = ["--constraint=avx2"]
"""


def _study(tmp_path, cluster=CLUSTER, epochs=3):
    """(study file, cluster file)."""
    path = tmp_path / "batch.toml"
    path.write_text(digits_backprop_study("batch", "[0, 1]", epochs=epochs, checkpoint_every=7))
    (tmp_path / "cluster.toml").write_text(cluster)
    return path, tmp_path / "cluster.toml"


@pytest.mark.parametrize("table, key, message", [
    ({"jobs": 1, "memory": "1GB"}, "cluster.system", "required key is missing"),
    ({"system": "slrum", "jobs": 1, "memory": "1GB"}, "cluster.system", "did you mean 'slurm'"),
    ({"system": "pbs", "jobs": 0, "memory": "1GB"}, "cluster.jobs", "whole number >= 1"),
    ({"system": "pbs", "jobs": 1, "memory": "1GB", "walltime": "2h"}, "cluster.walltime", "HH:MM:SS"),
    ({"system": "pbs", "jobs": 1, "memory": "1GB", "prologue": "module load x"}, "cluster.prologue", "list"),
    ({"system": "pbs", "jobs": 1, "memory": "1GB", "cpus": 4}, "cluster.cpus", "unknown key"),
])
def test_a_cluster_table_is_checked_and_its_errors_name_the_key(table, key, message):
    with pytest.raises(ConfigurationError, match=f"{key}: .*{message}"):
        read_cluster(table)


def test_the_cluster_file_is_named_with_its_mistakes(tmp_path, capsys):
    study, path = _study(tmp_path, cluster='\n[cluster]\nsystem = "slurm"\njobs = 2\n')
    with pytest.raises(ConfigurationError, match=f"{path}: cluster.memory: required key is missing"):
        load_cluster(path)
    path.write_text('[clusters]\nsystem = "slurm"\n')
    assert main(["run", str(study), "--out", str(tmp_path / "out"), "--cluster", str(path)]) == 2
    assert f"{path}: cluster file.clusters: unknown key" in capsys.readouterr().err
    assert main(["run", str(study), "--out", str(tmp_path / "out"), "--cluster", str(tmp_path / "none.toml")]) == 2
    assert "none.toml" in capsys.readouterr().err
    path.write_text(CLUSTER)
    assert main(["run", str(study), "--out", str(tmp_path / "out"), "--cluster", str(path), "--workers", "2"]) == 2
    assert "give one of --cluster, --workers and --scheduler" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("system, directive", [("slurm", "#SBATCH"), ("pbs", "#PBS")])
def test_the_job_script_carries_every_setting(system, directive):
    spec = read_cluster({"system": system, "jobs": 3, "cores": 2, "memory": "4GB", "walltime": "02:30:00",
                         "queue": "long", "account": "lab7", "interface": "lo",
                         "prologue": ["module load hdf5"], "directives": ["-l feature=avx2"]})
    kind = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[system]
    with kind(**spec.dask_jobqueue_settings()) as cluster:
        script = cluster.job_script()
    assert f"{directive} -l feature=avx2" in script
    assert "02:30:00" in script and "long" in script and "lab7" in script
    assert "module load hdf5" in script
    assert "--nworkers 2" in script or "--nprocs 2" in script  # one worker per core ...
    assert "--nthreads 1" in script  # ... each single-threaded
    assert "--interface lo" in script


def _fake_batch(tmp_path, monkeypatch):
    """Put the stand-in sbatch and scancel first on PATH; returns their log folder."""
    bin_dir, log_dir = tmp_path / "bin", tmp_path / "jobs"
    bin_dir.mkdir()
    log_dir.mkdir()
    for name in ("sbatch", "scancel"):
        shutil.copy(FAKE / name, bin_dir / name)
        (bin_dir / name).chmod((bin_dir / name).stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_BATCH_DIR", str(log_dir))
    return log_dir


def _stop_jobs(log_dir):
    jobs = log_dir / "jobs"
    for pid in (jobs.read_text().split() if jobs.exists() else []):
        try:
            os.killpg(int(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def test_a_study_runs_on_batch_jobs_as_it_runs_here(tmp_path, monkeypatch, capsys):
    study, cluster = _study(tmp_path)
    assert main(["run", str(study), "--out", str(tmp_path / "here"), "--quiet"]) == 0
    log_dir = _fake_batch(tmp_path, monkeypatch)
    try:
        code = main(["run", str(study), "--out", str(tmp_path / "jobs_out"), "--quiet", "--cluster", str(cluster)])
        err = capsys.readouterr().err
        assert code == 0, err
        submitted = (log_dir / "jobs").read_text().split()
        assert len(submitted) == 2  # cluster.jobs
        scripts = sorted(log_dir.glob("job-*.sh"))
        assert len(scripts) == 2
        text = scripts[0].read_text()
        assert "#SBATCH --constraint=avx2" in text and "#SBATCH -p short" in text
        assert "export CORTEXSIM_TEST_PROLOGUE=1" in text
        assert sorted((log_dir / "cancelled").read_text().split()) == sorted(submitted)  # jobs ended with the study
    finally:
        _stop_jobs(log_dir)
    for seed in (0, 1):
        got = cs.open(tmp_path / "jobs_out" / "bp" / f"seed{seed}.h5").metrics
        want = cs.open(tmp_path / "here" / "bp" / f"seed{seed}.h5").metrics
        for name in want:
            if name != "seconds":
                np.testing.assert_array_equal(got[name], want[name], err_msg=f"seed {seed}: {name}")


def test_no_worker_in_time_is_said_not_a_traceback(tmp_path, monkeypatch, capsys):
    study, cluster = _study(tmp_path, cluster=CLUSTER.replace("wait = 90", "wait = 2").replace(
        'prologue = ["export CORTEXSIM_TEST_PROLOGUE=1"]', 'prologue = ["exit 1"]'))
    log_dir = _fake_batch(tmp_path, monkeypatch)
    try:
        assert main(["run", str(study), "--out", str(tmp_path / "out"), "--quiet", "--cluster", str(cluster)]) == 2
    finally:
        _stop_jobs(log_dir)
    err = capsys.readouterr().err
    assert "cluster: no worker started within 2 s of asking sbatch for 2 job(s)" in err
    assert "Traceback" not in err


def test_without_dask_jobqueue_the_extra_is_named(tmp_path, monkeypatch):
    import sys

    from cortexsim.study.batch_system import batch_client

    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'cortexsim\[cluster\]'"):
        with batch_client(read_cluster({"system": "slurm", "jobs": 1, "memory": "1GB"})):
            pass
