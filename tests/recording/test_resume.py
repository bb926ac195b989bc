"""Crash safety: kill a recorded run with SIGKILL at random points, reopen
the partial file, resume, and compare with a run that was never killed."""

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from cortexsim.sim.checkpoint import load_checkpoint
from cortexsim.recording import open_recording, partial_path
from cortexsim.sim.recorded import checkpoint_path

TARGET = Path(__file__).with_name("kill_target.py")
ROOT = Path(__file__).resolve().parents[2]


def start(out: Path, resume: bool) -> tuple[subprocess.Popen, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, str(TARGET), str(out)] + (["--resume"] if resume else [])
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    assert line.strip() in ("started", "done"), proc.stderr.read()
    return proc, time.perf_counter()


def finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err


def read_all(path: Path) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with open_recording(path) as rec:
            rows = {
                name: (p.to_numpy(), p.step, p.epoch, p.inference_step)
                for name, p in rec.probes.items()
            }
            return {"probes": rows, "metrics": dict(rec.metrics), "status": rec.status}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run.h5"
    proc, began = start(out, resume=False)
    finish(proc)
    return out, time.perf_counter() - began


def test_killed_runs_resume_bit_identical(reference, tmp_path):
    ref_path, duration = reference
    ref = read_all(ref_path)
    out = tmp_path / "run.h5"
    rng = np.random.default_rng(7)
    kills = 0
    for attempt in range(4):
        proc, _ = start(out, resume=attempt > 0)
        time.sleep(rng.uniform(0.05, 0.25) * duration)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
        else:
            finish(proc)
            break
        partial = partial_path(out)
        if not partial.exists():
            continue  # killed before the file existed, or after the rename
        seen = read_all(partial)
        assert seen["status"] == "running"
        for name, (data, step, epoch, inference_step) in seen["probes"].items():
            n = len(step)
            np.testing.assert_array_equal(data, ref["probes"][name][0][:n], err_msg=name)
            np.testing.assert_array_equal(step, ref["probes"][name][1][:n], err_msg=name)
    assert kills >= 2, "the run finished before it could be killed; slow it down"
    proc, _ = start(out, resume=True)
    finish(proc)
    assert out.exists() and not partial_path(out).exists()
    got = read_all(out)
    assert got["status"] == "complete"
    assert got["probes"].keys() == ref["probes"].keys()
    for name, arrays in ref["probes"].items():
        for expected, actual in zip(arrays, got["probes"][name]):
            np.testing.assert_array_equal(actual, expected, err_msg=name)
    for name, values in ref["metrics"].items():
        if name == "seconds":  # wall time: measured, never reproduced
            continue
        np.testing.assert_array_equal(got["metrics"][name], values, err_msg=name)
    ref_state, _ = load_checkpoint(checkpoint_path(ref_path))
    got_state, _ = load_checkpoint(checkpoint_path(out))
    for key, value in ref_state["parameters"].items():
        np.testing.assert_array_equal(got_state["parameters"][key], value, err_msg=str(key))
