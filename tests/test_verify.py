"""``cortexsim verify`` and reports on a damaged study folder: each run's state
is said, damage is found and named, a killed run's write flags are cleared so
plain HDF5 tools open it (and it still resumes to the same result), and the
report lists a damaged run as unreadable while reporting the others."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import digits_backprop_study

from cortexsim.cli import main
from cortexsim.recording import open_recording, partial_path

ROOT = Path(__file__).resolve().parents[1]

STUDY = digits_backprop_study("tiny", "[0, 1, 2, 3]", epochs=2, checkpoint_every=5)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    (root / "study.toml").write_text(STUDY)
    out = root / "out"
    assert main(["run", str(root / "study.toml"), "--out", str(out), "--quiet"]) == 0
    return out


def leave_open_for_writing(path: Path) -> None:
    """What a kill -9 of the writer leaves: the file's SWMR write flags set."""
    code = ("import h5py, os, sys\n"
            "f = h5py.File(sys.argv[1], 'r+', libver='latest'); f.swmr_mode = True; f.flush(); os._exit(0)\n")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)


def test_verify_says_each_runs_state_and_clears_write_flags(finished, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    reference = open_recording(finished / "bp" / "seed1.h5").metrics["test_accuracy"]
    killed = partial_path(out / "bp" / "seed1.h5")
    os.replace(out / "bp" / "seed1.h5", killed)
    leave_open_for_writing(killed)
    with pytest.raises(OSError):
        h5py.File(killed, "r")  # what HDFView, h5dump and plain h5py meet
    raw = (out / "bp" / "seed2.h5").read_bytes()
    (out / "bp" / "seed2.h5").write_bytes(raw[: len(raw) // 2])
    ckpt = out / "bp" / "seed3.ckpt.npz"
    ckpt.write_bytes(ckpt.read_bytes()[:100])

    assert main(["verify", str(out)]) == 1
    lines = {line.split()[2]: line for line in capsys.readouterr().out.splitlines()[:4]}
    assert "complete" in lines["0"] and "2 epochs recorded" in lines["0"]
    assert "killed" in lines["1"] and "write flags cleared" in lines["1"] and "--resume continues" in lines["1"]
    assert "damaged" in lines["2"] and "seed2.h5: the recording is damaged" in lines["2"]
    assert "final checkpoint is damaged" in lines["3"] and "seed3.ckpt.npz" in lines["3"]
    with h5py.File(killed, "r") as f:  # opens anywhere now, rows kept
        assert f["metrics"]["epoch"].shape[0] == 2

    assert main(["run", str(finished.parent / "study.toml"), "--out", str(out), "--resume", "--quiet",
                 "--seeds", "1"]) == 0
    np.testing.assert_array_equal(open_recording(out / "bp" / "seed1.h5").metrics["test_accuracy"], reference)


def test_verify_refuses_a_folder_a_run_is_writing(finished, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".cortexsim.lock").write_text(f'{{"pid": {holder.pid}, "host": "{os.uname().nodename}"}}')
        assert main(["verify", str(out)]) == 2
        assert f"process {holder.pid}" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()


def test_a_report_lists_a_damaged_run_and_reports_the_others(finished, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    raw = (out / "bp" / "seed2.h5").read_bytes()
    (out / "bp" / "seed2.h5").write_bytes(raw[: len(raw) // 3])
    assert main(["report", str(out)]) == 0
    summary = (out / "report" / "summary.md").read_text()
    assert "recording unreadable" in summary and "seed2.h5" in summary
    assert "3 complete and included" in summary


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe not text", "not a text file"),
    (b'{"runs": [', "not valid JSON"),
    (b'{"runs": 5}', "not a study index"),
])
def test_a_damaged_study_index_is_named(finished, tmp_path, capsys, content, message):
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    (out / "study.json").write_bytes(content)
    for command in ("verify", "report"):
        assert main([command, str(out)]) == 2
        err = capsys.readouterr().err
        assert "study.json" in err and message in err, (command, err)
