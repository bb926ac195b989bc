"""Runs sent to a running Dask scheduler (``--scheduler ADDRESS``): a worker
killed in the middle of a run takes no data with it."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import digits_backprop_study

import cortexsim as cs
from cortexsim.cli import main

distributed = pytest.importorskip("dask.distributed")

# About 1,400 batches per run: 1 to 2 s each on an idle core, long enough that a
# kill after its first checkpoint (batch 7) lands mid-run.
STUDY = digits_backprop_study("cluster", "[0, 1]", epochs=60, checkpoint_every=7)
SEEDS = (0, 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


@contextlib.contextmanager
def _cluster(folder, workers: int = 2):
    """A ``dask scheduler`` and ``workers`` single-threaded workers on localhost,
    without nannies (a killed worker stays dead); yields (address, client,
    {worker address: its process})."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    dask = [sys.executable, "-m", "dask"]
    procs = []
    client = None
    try:
        log = open(folder / "scheduler.log", "w")
        procs.append(subprocess.Popen(dask + ["scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                                              "--no-dashboard"], stdout=log, stderr=subprocess.STDOUT))
        for n in range(workers):
            log = open(folder / f"worker{n}.log", "w")
            procs.append(subprocess.Popen(dask + ["worker", address, "--nthreads", "1", "--no-nanny",
                                                  "--no-dashboard", "--death-timeout", "60", "--name", f"w{n}"],
                                          stdout=log, stderr=subprocess.STDOUT))
        client = distributed.Client(address, timeout=60)
        client.wait_for_workers(workers, timeout=60)
        by_pid = {proc.pid: proc for proc in procs[1:]}
        yield address, client, {addr: by_pid[pid] for addr, pid in client.run(os.getpid).items()}
    finally:
        if client is not None:
            client.close(timeout=10)
        for proc in reversed(procs):
            _stop(proc)


def test_a_worker_killed_mid_run_takes_no_data_with_it(tmp_path):
    study = tmp_path / "cluster.toml"
    study.write_text(STUDY)
    assert main(["run", str(study), "--out", str(tmp_path / "serial"), "--quiet", "--backend", "numpy"]) == 0
    out = tmp_path / "cluster"
    with _cluster(tmp_path) as (address, client, workers):
        proc = subprocess.Popen([sys.executable, "-m", "cortexsim", "run", str(study), "--out", str(out),
                                 "--backend", "numpy", "--scheduler", address],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            killed = None
            deadline = time.monotonic() + 60
            while killed is None and time.monotonic() < deadline and proc.poll() is None:
                for worker, keys in client.processing().items():
                    for key in keys:  # "bp-seed1-4f2a...": kill the worker once that run has a checkpoint
                        label, seed = key.split("-")[:2]
                        if (out / label / f"{seed}.ckpt.npz").exists() and worker in workers:
                            workers[worker].send_signal(signal.SIGKILL)
                            workers[worker].wait(timeout=10)
                            killed = (label, int(seed[len("seed"):]))
                            break
                    if killed:
                        break
                time.sleep(0.05)
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            _stop(proc)
        _check_killed_run(out, tmp_path / "serial", killed, proc, stderr)
        # --overwrite deletes the old runs first: nothing resumes from their checkpoints
        assert main(["run", str(study), "--out", str(out), "--quiet", "--scheduler", address, "--overwrite",
                     "--set", "schedule.epochs=2"]) == 0
    for seed in SEEDS:
        assert len(cs.open(out / "bp" / f"seed{seed}.h5").metrics["epoch"]) == 2


def _check_killed_run(out, serial, killed, proc, stderr):
    assert killed is not None, "no run was caught in the middle"
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "[2/2]" in stderr  # the progress lines follow the runs as they finish
    runs = {(r["label"], r["seed"]): r for r in json.loads((out / "study.json").read_text())["runs"]}
    assert all(r["status"] == "complete" for r in runs.values())
    assert runs[killed]["resumed_at"]["step"] > 0  # continued from its checkpoint, not from scratch
    assert f"{killed[0]} seed {killed[1]} complete, resumed at epoch" in stderr
    for seed in SEEDS:
        got = cs.open(out / "bp" / f"seed{seed}.h5").metrics
        want = cs.open(serial / "bp" / f"seed{seed}.h5").metrics
        for name in want:
            if name != "seconds":
                np.testing.assert_array_equal(got[name], want[name], err_msg=f"seed {seed}: {name}")


def test_an_unreachable_scheduler_is_named_not_a_traceback(tmp_path, capsys, monkeypatch):
    from cortexsim.study import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1.0)
    study = tmp_path / "cluster.toml"
    study.write_text(STUDY)
    address = f"tcp://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    assert main(["run", str(study), "--out", str(tmp_path / "out"), "--quiet", "--scheduler", address]) == 2
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err
    assert f"--scheduler {address}: no Dask scheduler answered" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "bp").exists()


@pytest.mark.parametrize("address", ["nonsense", "foo://host:1"])
def test_a_malformed_address_is_named(tmp_path, capsys, address):
    study = tmp_path / "cluster.toml"
    study.write_text(STUDY)
    assert main(["run", str(study), "--out", str(tmp_path / "out"), "--quiet", "--scheduler", address]) == 2
    assert f"--scheduler {address}: not a scheduler address" in capsys.readouterr().err


def test_workers_and_scheduler_exclude_each_other(tmp_path, capsys):
    study = tmp_path / "cluster.toml"
    study.write_text(STUDY)
    code = main(["run", str(study), "--out", str(tmp_path / "out"), "--quiet", "--workers", "2",
                 "--scheduler", "tcp://127.0.0.1:8786"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--workers" in err and "--scheduler" in err
    assert not (tmp_path / "out").exists()


class _Workers:
    """Stands in for a Client whose workers answer ``client.run`` with ``facts``."""

    def __init__(self, facts):
        self.facts = facts

    def run(self, function, probe):
        return {address: dict(fact) for address, fact in self.facts.items()}


def test_workers_that_cannot_see_the_folder_or_run_another_version_are_named(tmp_path):
    from cortexsim import __version__
    from cortexsim.errors import ClusterError
    from cortexsim.study.cluster import check_workers

    good = {"version": __version__, "host": "a", "sees": True}
    check_workers(_Workers({"tcp://a:1": good}), tmp_path, "tcp://s:8786")
    blind = {"tcp://a:1": good, "tcp://b:2": {**good, "host": "b", "sees": False}}
    with pytest.raises(ClusterError, match=r"tcp://b:2 \(b\) cannot see the output folder .*same path"):
        check_workers(_Workers(blind), tmp_path, "tcp://s:8786")
    older = {"tcp://a:1": {**good, "version": "0.0.1"}}
    with pytest.raises(ClusterError, match=r"tcp://a:1 \(0\.0\.1\) run another cortexsim"):
        check_workers(_Workers(older), tmp_path, "tcp://s:8786")
    assert list(tmp_path.iterdir()) == []  # the probe file is gone
