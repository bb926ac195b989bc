"""Damaged files, as a lab ends up with them: for every kind of file cortexsim
reads, seeded truncations at random offsets, zeroed blocks and flipped bits
(264 cases). Each must end in a typed error naming the file or in a read that
returns exactly what was written: never a traceback, and for the binary
files (recordings, checkpoints, datasets), whose contents carry checksums,
never a silently different number. Text files (study and model TOML,
study.json) carry no checksum: a flipped digit is a different setting, so
for them the bar is a clear error or a file that still parses and validates.
The HDF5 library can crash (segfault) on some damaged files; recordings are
therefore checked in a child process (``recording.check_recording``, as
``cortexsim verify`` and ``--resume`` do), which turns a crash into an error."""

import gzip
import hashlib
import json
import shutil
import struct

import numpy as np
import pytest

import cortexsim as cs
from cortexsim.errors import CortexsimError
from cortexsim.data.idx import read_idx
from cortexsim.data.mnist import verify_file
from cortexsim.recording import check_recording, open_recording
from cortexsim.report.folder import read_study_folder
from cortexsim.sim.checkpoint import load_checkpoint
from cortexsim.study.plan import load_study

CASES = 44  # per kind of file: 6 kinds, 264 in all

STUDY = """
[study]
name = "tiny"
seeds = [0]

[[model.areas]]
name = "pixels"
size = 6

[[model.areas]]
name = "hidden"
size = 5
activation = "tanh"

[[model.areas]]
name = "labels"
size = 3
activation = "linear"

[schedule]
epochs = 2
batch_size = 8

[[rules]]
rule = "backprop"
"""


def damaged_copies(original, tmp_path, seed):
    """``CASES`` damaged copies of ``original``: a third truncated at a random
    offset, a third with a zeroed block of 1 to 64 bytes, a third with one bit
    flipped; the last case of each third is at the file's start."""
    raw = original.read_bytes()
    rng = np.random.default_rng(seed)
    for case in range(CASES):
        kind = ("truncate", "zero", "flip")[case % 3]
        offset = 0 if case >= CASES - 3 else int(rng.integers(0, len(raw)))
        data = bytearray(raw)
        if kind == "truncate":
            data = data[:offset]
        elif kind == "zero":
            width = int(rng.integers(1, 65))
            if data[offset:offset + width] == bytes(len(data[offset:offset + width])):
                data[offset] ^= 0xFF  # the block was zero already: damage it anyway
            data[offset:offset + width] = bytes(len(data[offset:offset + width]))
        else:
            data[offset] ^= 1 << int(rng.integers(0, 8))
        path = tmp_path / f"{case}_{kind}_{original.name}"
        path.write_bytes(bytes(data))
        yield kind, offset, path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("originals")
    rng = np.random.default_rng(0)
    data = {"x_train": rng.normal(size=(40, 6)), "y_train": rng.integers(0, 3, size=40),
            "x_test": rng.normal(size=(16, 6)), "y_test": rng.integers(0, 3, size=16)}
    spec = cs.HierarchySpec.from_sizes([6, 5, 3], activation="tanh")
    probes = [cs.Probe("activity", "area1", samples=4), cs.Probe("weights", "area1.W_ff")]
    with cs.Simulator(spec, cs.Backprop(), cs.Adam(lr=1e-2), data, dtype="float64", seed=1, batch_size=8,
                      epochs=2, probes=probes, recording=root / "run.h5", checkpoint_every=3) as sim:
        sim.run()
    (root / "study.toml").write_text(STUDY)
    (root / "model.toml").write_text(STUDY[STUDY.index("[[model.areas]]"):STUDY.index("[schedule]")])
    folder = root / "study"
    folder.mkdir()
    (folder / "study.json").write_text(json.dumps({"name": "tiny", "plan": {}, "runs": [
        {"label": "bp", "rule": "backprop", "seed": 0, "recording": "bp/seed0.h5", "status": "complete"}]}))
    labels = rng.integers(0, 10, size=300).astype(np.uint8)
    with gzip.open(root / "labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">HBBI", 0, 0x08, 1, labels.size) + labels.tobytes())
    return root


def expect_error_or_same(read, path, same):
    """``read(path)`` raises a CortexsimError naming ``path``, or returns what ``same`` accepts."""
    try:
        value = read(path)
    except CortexsimError as exc:
        assert path.name in str(exc), str(exc)
        return "error"
    same(value)
    return "same"


def recording_contents(path):
    rows = check_recording(path)  # in a child process: HDF5 can crash on a damaged file
    with open_recording(path) as rec:
        probes = {name: p.to_numpy() for name, p in rec.probes.items()}
        steps = {name: p.step for name, p in rec.probes.items()}
        metrics = {name: np.asarray(v) for name, v in rec.metrics.items()}
        config = rec.config
    return rows, probes, steps, metrics, config


def test_recordings(files, tmp_path):
    want = recording_contents(files / "run.h5")

    def same(got):
        assert got[0] == want[0]
        for a, b in zip(got[1:4], want[1:4]):
            assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)

    outcomes = [expect_error_or_same(recording_contents, path, same)
                for _, _, path in damaged_copies(files / "run.h5", tmp_path, 1)]
    assert outcomes.count("error") >= CASES // 3, outcomes  # at least every truncation


def test_checkpoints(files, tmp_path):
    want, _ = load_checkpoint(files / "run.ckpt.npz")

    def same(got):
        state, _ = got
        assert state["position"] == want["position"] and state["history"] == want["history"]
        for key, value in want["parameters"].items():
            assert np.array_equal(state["parameters"][key], value), key

    outcomes = [expect_error_or_same(load_checkpoint, path, same)
                for _, _, path in damaged_copies(files / "run.ckpt.npz", tmp_path, 2)]
    assert outcomes.count("error") >= CASES // 2, outcomes


def test_dataset_files(files, tmp_path):
    original = files / "labels-idx1-ubyte.gz"
    digest = hashlib.sha256(original.read_bytes()).hexdigest()
    want = read_idx(original)

    def read(path):
        verify_file(path, digest)
        return read_idx(path)

    outcomes = [expect_error_or_same(read, path, lambda got: np.testing.assert_array_equal(got, want))
                for _, _, path in damaged_copies(original, tmp_path, 3)]
    assert outcomes.count("error") == CASES, outcomes  # every change fails the checksum


def test_study_files(files, tmp_path):
    for _, _, path in damaged_copies(files / "study.toml", tmp_path, 4):
        expect_error_or_same(load_study, path, lambda plan: None)


def test_model_files(files, tmp_path):
    for _, _, path in damaged_copies(files / "model.toml", tmp_path, 5):
        expect_error_or_same(cs.HierarchySpec.from_toml, path, lambda spec: None)


def test_study_indexes(files, tmp_path):
    for n, (_, _, path) in enumerate(damaged_copies(files / "study" / "study.json", tmp_path, 6)):
        folder = tmp_path / f"folder{n}"
        folder.mkdir()
        shutil.copyfile(path, folder / "study.json")
        try:
            study, runs = read_study_folder(folder)
        except CortexsimError as exc:
            assert "study.json" in str(exc)
            continue
        assert all(run.problem for run in runs)  # no recording behind any entry: none is reported
