"""One process per study folder, and command-line arguments checked like
study keys: never a traceback."""

import os
import socket
import subprocess
import sys

import pytest
from conftest import digits_backprop_study
from hypothesis import given, settings
from hypothesis import strategies as st

from cortexsim import ConfigurationError
from cortexsim.cli import main
from cortexsim.study.lock import LOCK_NAME, study_lock


def _write_lock(folder, pid, host=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_NAME).write_text(f'{{"pid": {pid}, "host": "{host or socket.gethostname()}"}}')


def test_a_second_process_is_refused_with_the_holders_id(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        _write_lock(tmp_path, holder.pid)
        with pytest.raises(ConfigurationError, match=rf"another cortexsim run \(process {holder.pid} on "):
            with study_lock(tmp_path):
                pass
        assert (tmp_path / LOCK_NAME).exists()  # the holder's lock is left alone
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_is_taken_over_and_released(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _write_lock(tmp_path, gone.pid)
    with pytest.warns(UserWarning, match=rf"taking over a stale lock \(process {gone.pid} is gone\)"):
        with study_lock(tmp_path) as path:
            assert f'"pid": {os.getpid()}' in path.read_text()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_from_another_host_is_not_taken(tmp_path):
    _write_lock(tmp_path, 1, host="elsewhere.example")
    with pytest.raises(ConfigurationError, match=r"process 1 on elsewhere\.example.*delete"):
        with study_lock(tmp_path):
            pass


def test_the_lock_is_released_when_the_study_fails(tmp_path):
    with pytest.raises(RuntimeError):
        with study_lock(tmp_path):
            raise RuntimeError
    assert not (tmp_path / LOCK_NAME).exists()


def test_two_cli_runs_on_one_folder(tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        _write_lock(tmp_path / "out", holder.pid)
        code = main(["run", "studies/quickstart.toml", "--out", str(tmp_path / "out"), "--quiet"])
        assert code == 2
        assert f"process {holder.pid}" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("seeds", ["0,,1", "a", "-1", "1,1", "", "0.5", "٣"])
def test_bad_seeds_name_the_argument(seeds, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["run", "studies/quickstart.toml", "--seeds", seeds])
    assert stop.value.code == 2
    assert "--seeds" in capsys.readouterr().err


@settings(max_examples=60, deadline=None)
@given(seeds=st.text(max_size=8), workers=st.text(max_size=4))
def test_any_arguments_end_in_exit_status_2_not_a_traceback(seeds, workers):
    try:
        code = main(["run", "no/such/study.toml", "--seeds", seeds, "--workers", workers])
    except SystemExit as stop:
        code = stop.code
    assert code == 2


# -- a kill storm ---------------------------------------------------------------------------------

KILL_STUDY = digits_backprop_study("storm", "[0, 1, 2, 3]", epochs=100, checkpoint_every=7)


def test_a_kill_storm_with_two_workers_resumes_to_the_serial_result(tmp_path):
    """kill -9 of the parent of a ``--workers 2`` study at random moments, then
    ``--resume``: every run completes, each metric identical to a serial run."""
    import signal
    import time

    import numpy as np

    import cortexsim as cs

    pytest.importorskip("dask.distributed")
    study = tmp_path / "storm.toml"
    study.write_text(KILL_STUDY)
    assert main(["run", str(study), "--out", str(tmp_path / "serial"), "--quiet"]) == 0
    out = tmp_path / "parallel"
    command = [sys.executable, "-m", "cortexsim", "run", str(study), "--out", str(out), "--quiet",
               "--workers", "2"]
    rng = np.random.default_rng(5)
    kills = 0
    for attempt in range(4):
        proc = subprocess.Popen(command + (["--resume"] if attempt else []),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(1.5, 5.0))  # an uninterrupted --workers 2 run takes 8 s on an idle machine
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read()
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    time.sleep(2.0)  # the workers notice their parent is gone
    final = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert "Traceback" not in final.stderr
    assert kills >= 2
    for seed in range(4):
        got = cs.open(out / "bp" / f"seed{seed}.h5").metrics
        want = cs.open(tmp_path / "serial" / "bp" / f"seed{seed}.h5").metrics
        for name in want:
            if name != "seconds":
                np.testing.assert_array_equal(got[name], want[name], err_msg=f"seed {seed}: {name}")
