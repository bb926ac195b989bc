"""Recovery from damage, as a resumed run meets it: a damaged newest checkpoint
falls back to the previous one, none usable restarts the run, a damaged
recording is kept aside and the run restarts, a full disk stops the run with
the last good checkpoint intact; each case says what it did (RecoveryWarning
or StorageError) and ends with results bit-identical to an uninterrupted run."""

import errno
import warnings

import numpy as np
import pytest

import cortexsim as cs
from cortexsim.errors import RecoveryWarning, StorageError
from cortexsim.recording import partial_path
from cortexsim.sim import checkpoint as checkpoint_module
from cortexsim.sim.checkpoint import previous_checkpoint
from cortexsim.sim.recorded import checkpoint_path

SPEC = cs.HierarchySpec.from_sizes([6, 5, 3], activation="tanh")
PROBES = [cs.Probe("energy"), cs.Probe("activity", "area1", samples=4), cs.Probe("weights", "area1.W_ff")]
NAMES = ("energy", "area1.activity", "area1.W_ff.weights")


def data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    return {"x_train": rng.normal(size=(n, 6)), "y_train": rng.integers(0, 3, size=n),
            "x_test": rng.normal(size=(20, 6)), "y_test": rng.integers(0, 3, size=20)}


def simulator(path, **kw):
    return cs.Simulator(SPEC, cs.PredictiveCoding(inference=cs.Relaxation(steps=5, step_size=0.1)),
                        cs.Adam(lr=1e-2), data(), dtype="float64", seed=3, batch_size=8, epochs=3,
                        probes=PROBES, recording=path, checkpoint_every=2, **kw)


class Crash(Exception):
    pass


def crashed(path, at=9):
    """A run killed in batch ``at`` (its checkpoints of batches 10 and 8 on disk)."""
    def crash(event):
        if event.step == at:
            raise Crash
    sim = simulator(path)
    sim.attach("after_learning", crash, order=2000, name="crash")
    with pytest.raises(Crash):
        sim.run()
    assert partial_path(path).exists() and previous_checkpoint(checkpoint_path(path)).exists()
    return path


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    path = tmp_path_factory.mktemp("whole") / "whole.h5"
    sim = simulator(path)
    sim.run()
    return {name: sim.recorded(name) for name in NAMES}, sim.history


def finished_like(path, whole, **expect):
    """Resume ``path``, check the warnings and the resumed step, run to the end, compare."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sim = simulator(path, resume=True)
    said = [str(w.message) for w in caught if issubclass(w.category, RecoveryWarning)]
    for fragment in expect.get("said", ()):
        assert any(fragment in message for message in said), (fragment, said)
    assert len(said) == len(expect.get("said", ())), said
    assert sim.scheduler.step == expect["step"]
    sim.run()
    for name in NAMES:
        np.testing.assert_array_equal(sim.recorded(name), whole[0][name], err_msg=name)
    assert [m["test_accuracy"] for m in sim.history] == [m["test_accuracy"] for m in whole[1]]
    return said


def damage(path, how):
    raw = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(raw[: len(raw) // 2]))
    else:  # a zeroed block in the middle
        middle = len(raw) // 2
        raw[middle: middle + 256] = bytes(256)
        path.write_bytes(bytes(raw))


def test_two_checkpoints_are_kept(tmp_path):
    path = crashed(tmp_path / "run.h5")
    newest, previous = (cs.sim.checkpoint.load_checkpoint(p)[0]["position"]["step"]
                        for p in (checkpoint_path(path), previous_checkpoint(checkpoint_path(path))))
    assert (newest, previous) == (10, 8)


@pytest.mark.parametrize("how", ["truncate", "zeroed"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path, whole, how):
    path = crashed(tmp_path / "run.h5")
    damage(checkpoint_path(path), how)
    finished_like(path, whole, step=8, said=("not a readable cortexsim checkpoint",
                                            "resuming from the previous checkpoint"))
    assert (tmp_path / "run.ckpt.npz.damaged").exists()  # kept aside, not deleted


def test_no_usable_checkpoint_restarts_the_run(tmp_path, whole):
    path = crashed(tmp_path / "run.h5")
    for p in (checkpoint_path(path), previous_checkpoint(checkpoint_path(path))):
        damage(p, "truncate")
    finished_like(path, whole, step=0, said=("run.ckpt.npz: not a readable", "run.ckpt.prev.npz: not a readable",
                                            "no usable checkpoint; the run starts again"))
    assert (tmp_path / "run.ckpt.npz.damaged").exists() and (tmp_path / "run.ckpt.prev.npz.damaged").exists()


@pytest.mark.parametrize("how", ["truncate", "zeroed"])
def test_a_damaged_recording_is_kept_aside_and_the_run_restarts(tmp_path, whole, how):
    path = crashed(tmp_path / "run.h5")
    damage(partial_path(path), how)
    finished_like(path, whole, step=0, said=("the recording is damaged",))
    assert (tmp_path / "run.h5.partial.damaged").exists()


def test_a_full_disk_while_checkpointing_stops_cleanly_and_resumes(tmp_path, whole, monkeypatch):
    path = tmp_path / "run.h5"
    original, calls = checkpoint_module.np.savez, []

    def savez(handle, **arrays):
        calls.append(1)
        if len(calls) == 4:  # the fourth checkpoint
            handle.write(b"partial bytes")
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(handle, **arrays)

    monkeypatch.setattr(checkpoint_module.np, "savez", savez)
    with pytest.raises(StorageError, match=r"run\.ckpt\.npz: could not write the checkpoint \(No space left "
                                           r"on device\); the last good one is intact .*continue with --resume"):
        simulator(path).run()
    monkeypatch.setattr(checkpoint_module.np, "savez", original)
    assert not (tmp_path / "run.ckpt.npz.tmp").exists()
    finished_like(path, whole, step=6)


def test_a_full_disk_while_recording_stops_cleanly_and_resumes(tmp_path, whole, monkeypatch):
    from cortexsim.recording import writer as writer_module

    path = tmp_path / "run.h5"
    original, calls = writer_module._append, []

    def append(dataset, rows):
        calls.append(1)
        if len(calls) == 40:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(dataset, rows)

    monkeypatch.setattr(writer_module, "_append", append)
    with pytest.raises(StorageError, match=r"run\.h5\.partial: could not write .*No space left on device.*--resume"):
        simulator(path).run()
    monkeypatch.setattr(writer_module, "_append", original)
    step = cs.sim.checkpoint.load_checkpoint(checkpoint_path(path))[0]["position"]["step"]
    finished_like(path, whole, step=step)


@pytest.fixture
def small_filesystem(tmp_path):
    """A tmpfs mounted at a temporary folder (root only; skipped elsewhere)."""
    import os
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=250k", "tmpfs", str(mount)],
                                           capture_output=True).returncode:
        pytest.skip("mounting a small filesystem needs root")

    def resize(size):
        subprocess.run(["mount", "-o", f"remount,size={size}", str(mount)], check=True)

    yield mount, resize
    subprocess.run(["umount", str(mount)], check=False)


_ON_DISK = """
import sys, warnings
sys.path.insert(0, sys.argv[1])
from test_recovery import simulator
from cortexsim.errors import StorageError
path, resume = sys.argv[2], sys.argv[3] == "resume"
warnings.simplefilter("ignore")
try:
    sim = simulator(path, resume=resume)
    sim.run()
    print("completed")
except StorageError as exc:
    print("StorageError:", exc)
"""


@pytest.mark.parametrize("size", ["250k", "330k"])
def test_a_full_filesystem_stops_the_run_cleanly_and_it_resumes(small_filesystem, whole, size):
    """A real full disk (a tmpfs too small for the run): the run stops with a
    StorageError, not a traceback from HDF5; with space freed, --resume
    completes it bit-identically. Each run is its own process, as a real one
    is: a write HDF5 failed to finish leaves that process's library state
    unusable (a later close in the same process can crash)."""
    import subprocess
    import sys
    from pathlib import Path

    mount, resize = small_filesystem
    resize(size)
    here = str(Path(__file__).parent)

    def run(mode):
        done = subprocess.run([sys.executable, "-c", _ON_DISK, here, str(mount / "run.h5"), mode],
                              capture_output=True, text=True, timeout=300)
        return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]

    stopped = run("fresh")
    assert stopped.startswith("StorageError:") and "No space left on device" in stopped, stopped
    assert "--resume" in stopped
    resize("20m")
    assert run("resume") == "completed"
    with cs.open(mount / "run.h5") as rec:
        for name in NAMES:
            np.testing.assert_array_equal(rec[name].to_numpy(), whole[0][name], err_msg=name)
