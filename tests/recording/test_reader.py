"""The recording reader against files written by hand with plain h5py, following
docs/format.md (version 1), so the reader is tested against the contract rather
than against cortexsim's own writer."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import warnings

import h5py
import numpy as np
import pytest

from cortexsim.errors import CortexsimError, FormatError
from cortexsim.recording.reader import ProbeData, Recording, open_recording

ATTRS = ("quantity", "target", "unit", "every", "every_unit", "inference_every", "samples")
CONFIG = {"model": {"areas": [16, 5, 3]}, "rule": "predictive_coding", "seed": 7}
ENVIRONMENT = {"python": "3.11", "platform": "linux"}
# Two records per batch (inference_every > 0), 6 batches, 3 batches per epoch.
STEPS = np.repeat(np.arange(6), 2)
EPOCHS = STEPS // 3
INFERENCE = np.tile([0, 5], 6)
PROBES = {
    "area1_activity": dict(
        quantity="activity", target="area1", unit="activity", every=1, every_unit="batch",
        inference_every=5, samples=16, dims=["time", "sample", "unit"], shape=(16, 5),
    ),
    "w_ff": dict(
        quantity="weights", target="area2.W_ff", unit="weight", every=1, every_unit="batch",
        inference_every=5, samples=0, dims=["time", "row", "column"], shape=(5, 3),
    ),
    "loss": dict(
        quantity="metric", target="loss", unit="nats", every=1, every_unit="batch",
        inference_every=5, samples=0, dims=["time"], shape=(),
    ),
}


def probe_values(name: str, n: int = len(STEPS)) -> np.ndarray:
    """Deterministic data whose row i is recognisable (row i holds i + small offsets)."""
    shape = PROBES[name]["shape"]
    offsets = np.arange(int(np.prod(shape))).reshape(shape) / 1000.0
    return np.arange(n).reshape((n,) + (1,) * len(shape)) + offsets


def timed(group: h5py.Group, name: str, values: np.ndarray, fill=None, extra: int = 0) -> None:
    """A chunked, resizable, compressed time dataset; ``extra`` unwritten rows at the end."""
    values = np.asarray(values)
    shape = (len(values) + extra,) + values.shape[1:]
    ds = group.create_dataset(
        name, shape=shape, maxshape=(None,) + values.shape[1:], dtype=values.dtype,
        chunks=(4,) + values.shape[1:], compression="lzf", shuffle=True, fillvalue=fill,
    )
    ds[: len(values)] = values


def write_recording(path, *, status="complete", version=1, extra_rows=0, fmt="cortexsim-recording"):
    """Write a complete valid v1 recording (or a variation of one) with plain h5py."""
    with h5py.File(path, "w") as f:
        f.attrs.update(
            format=fmt, format_version=version, cortexsim_version="0.1.0",
            created="2024-05-01T12:00:00Z", status=status, backend="numpy",
            dtype="float64", seed=7, rule="predictive_coding",
        )
        f.create_dataset("config", data=json.dumps(CONFIG))
        f.create_dataset("environment", data=json.dumps(ENVIRONMENT))
        metrics = f.create_group("metrics")
        timed(metrics, "epoch", np.array([1, 2], dtype=np.int64), fill=-1, extra=extra_rows)
        timed(metrics, "train_loss", np.array([0.9, 0.5]), extra=extra_rows)
        timed(metrics, "test_accuracy", np.array([0.6, 0.8]), extra=extra_rows)
        for name, spec in PROBES.items():
            g = f.create_group(f"probes/{name}")
            for key in ATTRS:
                g.attrs[key] = spec[key]
            g.attrs["dims"] = json.dumps(spec["dims"])
            timed(g, "data", probe_values(name), extra=extra_rows)
            indices = {"step": STEPS, "epoch": EPOCHS, "inference_step": INFERENCE}
            for index, values in indices.items():
                timed(g, index, values.astype(np.int64), fill=-1, extra=extra_rows)
    return path


def quiet_open(path) -> Recording:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return open_recording(path)


@pytest.fixture
def run_file(tmp_path):
    return write_recording(tmp_path / "run.h5")


# -- reading a complete file ----------------------------------------------------


def test_round_trip_of_every_field(run_file):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a complete file opens silently
        rec = open_recording(run_file)
    with rec:
        assert rec.path.name == "run.h5"
        assert rec.status == "complete"
        assert rec.format_version == 1
        assert rec.attrs["rule"] == "predictive_coding" and rec.attrs["seed"] == 7
        assert rec.attrs["created"] == "2024-05-01T12:00:00Z" and rec.attrs["dtype"] == "float64"
        assert rec.config == CONFIG and rec.environment == ENVIRONMENT
        assert set(rec.metrics) == {"epoch", "train_loss", "test_accuracy"}
        np.testing.assert_array_equal(rec.metrics["epoch"], [1, 2])
        np.testing.assert_allclose(rec.metrics["train_loss"], [0.9, 0.5])
        assert list(rec.probes) == sorted(PROBES)
        for name, spec in PROBES.items():
            p = rec[name]
            assert isinstance(p, ProbeData) and rec.probes[name] is p and name in rec.probes
            for key in (*ATTRS, "dims"):
                assert getattr(p, key) == spec[key], key
            assert p.n_rows == len(STEPS)
            assert p.shape == (len(STEPS), *spec["shape"])
            np.testing.assert_array_equal(p.step, STEPS)
            np.testing.assert_array_equal(p.epoch, EPOCHS)
            np.testing.assert_array_equal(p.inference_step, INFERENCE)
            np.testing.assert_array_equal(p.to_numpy(), probe_values(name))
            assert name in repr(p) and spec["quantity"] in repr(p)
    assert "closed" in repr(rec) and "closed" in repr(p)


def test_slicing_reads_only_the_asked_rows(run_file, monkeypatch):
    with open_recording(run_file) as rec:
        p = rec["area1_activity"]
        full = probe_values("area1_activity")
        assert p._n_rows is None  # opening read no probe data
        np.testing.assert_array_equal(p[3], full[3])
        np.testing.assert_array_equal(p[-1], full[-1])
        np.testing.assert_array_equal(p[2:7:2], full[2:7:2])
        np.testing.assert_array_equal(p[::-3], full[::-3])
        np.testing.assert_array_equal(p[[5, 1, 1]], full[[5, 1, 1]])
        np.testing.assert_array_equal(p[1:4, 0, 2], full[1:4, 0, 2])
        np.testing.assert_array_equal(p[4, :, 1], full[4, :, 1])
        np.testing.assert_array_equal(p[..., 0], full[..., 0])
        np.testing.assert_array_equal(p[STEPS > 3], full[STEPS > 3])
        assert p[5:5].shape == (0, 16, 5)
        with pytest.raises(IndexError, match="out of bounds"):
            p[len(STEPS)]
        # The h5py read asks for the rows only, not the whole dataset.
        seen = []
        dataset_getitem = h5py.Dataset.__getitem__

        def spy(ds, selection, **kwargs):
            seen.append((ds.name, selection))
            return dataset_getitem(ds, selection, **kwargs)

        monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
        p[2:4]
        assert ("/probes/area1_activity/data", slice(2, 4, 1)) in seen
        seen.clear()
        p[[5, 1]]
        assert [sel.tolist() for name, sel in seen if name.endswith("data")] == [[1, 5]]


def test_at_returns_the_rows_of_a_step_or_epoch(run_file):
    with open_recording(run_file) as rec:
        p = rec["w_ff"]
        full = probe_values("w_ff")
        np.testing.assert_array_equal(p.at(step=4), full[STEPS == 4])
        assert p.at(step=4).shape == (2, 5, 3)
        np.testing.assert_array_equal(p.at(epoch=1), full[EPOCHS == 1])
        np.testing.assert_array_equal(p.at(step=2, epoch=0), full[4:6])
        assert p.at(step=99).shape == (0, 5, 3)
        with pytest.raises(TypeError):
            p.at()


def test_select_by_quantity_and_target(run_file):
    with open_recording(run_file) as rec:
        assert [p.name for p in rec.select(quantity="activity")] == ["area1_activity"]
        assert [p.name for p in rec.select(target="area2.W_ff")] == ["w_ff"]
        assert [p.name for p in rec.select(quantity="metric", target="loss")] == ["loss"]
        assert rec.select(quantity="weights", target="loss") == []
        assert len(rec.select()) == 3


def test_summary_is_one_line(run_file):
    with open_recording(run_file) as rec:
        text = str(rec)
        assert text == repr(rec) and "\n" not in text
        rows = f"{3 * len(STEPS)} rows"
        parts = ("run.h5", "complete", "rule predictive_coding", "backend numpy", "3 probes", rows)
        for part in parts:
            assert part in text, part
        assert text.endswith(", 2 epochs>")


def test_wrong_probe_name_suggests_the_close_one(run_file):
    with open_recording(run_file) as rec:
        with pytest.raises(KeyError, match=r"did you mean 'w_ff'\?"):
            rec["w_f"]
        with pytest.raises(KeyError, match="area1_activity"):
            rec.probes["nothing_like_it"]


def test_unwritten_rows_are_trimmed(tmp_path):
    path = write_recording(tmp_path / "run.h5", extra_rows=3)
    with open_recording(path) as rec:
        p = rec["area1_activity"]
        assert len(p._group["data"]) == len(STEPS) + 3  # the file does hold the rows
        assert p.n_rows == len(STEPS) and p.shape[0] == len(STEPS)
        assert len(p.step) == len(p.epoch) == len(p.inference_step) == len(STEPS)
        np.testing.assert_array_equal(p.to_numpy(), probe_values("area1_activity"))
        np.testing.assert_array_equal(p[-1], probe_values("area1_activity")[-1])
        np.testing.assert_array_equal(rec.metrics["epoch"], [1, 2])
        assert len(rec.metrics["train_loss"]) == 2


def test_to_xarray_without_xarray_says_how_to_install(run_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "xarray", None)  # import xarray now fails
    with open_recording(run_file) as rec:
        with pytest.raises(CortexsimError, match="pip install xarray"):
            rec["loss"].to_xarray()


def test_to_xarray(run_file):
    pytest.importorskip("xarray")
    with open_recording(run_file) as rec:
        da = rec["area1_activity"].to_xarray()
        assert da.dims == ("time", "sample", "unit") and da.name == "area1_activity"
        np.testing.assert_array_equal(da["step"].values, STEPS)
        np.testing.assert_array_equal(da["epoch"].values, EPOCHS)
        np.testing.assert_array_equal(da.values, probe_values("area1_activity"))
        assert da.attrs["quantity"] == "activity"


# -- refusals -------------------------------------------------------------------


def refused(path, reason: str):
    """Expect a FormatError naming the file and giving ``reason``."""
    return pytest.raises(FormatError, match=f"(?s){re.escape(str(path))}.*{reason}")


def test_missing_file_is_refused(tmp_path):
    with refused(tmp_path / "nope.h5", "no such file"):
        open_recording(tmp_path / "nope.h5")


def test_random_bytes_are_refused(tmp_path):
    path = tmp_path / "noise.h5"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with refused(path, "not an HDF5 file"):
        open_recording(path)


def test_text_file_is_refused(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("epoch,loss\n1,0.5\n")
    with refused(path, "not an HDF5 file"):
        open_recording(path)


def test_truncated_file_is_refused(run_file, tmp_path):
    path = tmp_path / "cut.h5"
    data = run_file.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with refused(path, "truncated"):
        rec = quiet_open(path)
        # Should HDF5 open it, reading everything must still refuse clearly.
        for p in rec.probes.values():
            p.to_numpy()


def test_foreign_hdf5_file_is_refused(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    with refused(path, "not a cortexsim recording.*'format'"):
        open_recording(path)


def test_other_format_attribute_is_refused(tmp_path):
    path = write_recording(tmp_path / "other.h5", fmt="someone-else")
    with refused(path, "not a cortexsim recording.*someone-else"):
        open_recording(path)


def test_newer_format_version_is_refused(tmp_path):
    path = write_recording(tmp_path / "future.h5", version=2)
    with refused(path, "version 2 is newer.*version 1.*upgrade cortexsim"):
        open_recording(path)


# -- incomplete runs ------------------------------------------------------------


def test_running_file_opens_with_a_warning(tmp_path):
    path = write_recording(tmp_path / "run.h5.partial", status="running")
    with pytest.warns(RuntimeWarning, match=f"{re.escape(str(path))}.*did not complete.*flushed"):
        rec = open_recording(path)
    with rec:
        assert rec.status == "running" and rec["loss"].n_rows == len(STEPS)


def test_diverged_file_opens_with_a_warning(tmp_path):
    path = write_recording(tmp_path / "run.h5.partial", status="diverged")
    with pytest.warns(RuntimeWarning, match="diverged"):
        open_recording(path).close()


WRITER = textwrap.dedent(
    """
    import json, sys, time
    import h5py, numpy as np

    f = h5py.File(sys.argv[1], "w", libver="latest")
    f.attrs.update(format="cortexsim-recording", format_version=1, cortexsim_version="0.1.0",
                   created="2024-05-01T12:00:00Z", status="running", backend="numpy",
                   dtype="float32", seed=0, rule="predictive_coding")
    f.create_dataset("config", data=json.dumps({"rule": "predictive_coding"}))
    f.create_dataset("environment", data=json.dumps({}))
    f.create_dataset("metrics/epoch", shape=(0,), maxshape=(None,), dtype="i8", fillvalue=-1)
    g = f.create_group("probes/area1")
    for key, value in dict(quantity="activity", target="area1", unit="activity", every=1,
                           every_unit="batch", inference_every=0, samples=2,
                           dims=json.dumps(["time", "sample", "unit"])).items():
        g.attrs[key] = value
    data = g.create_dataset("data", shape=(0, 2, 4), maxshape=(None, 2, 4), dtype="f4")
    index = [g.create_dataset(n, shape=(0,), maxshape=(None,), dtype="i8", fillvalue=-1)
             for n in ("step", "epoch", "inference_step")]
    f.swmr_mode = True
    i = 0
    while True:
        for ds in (data, *index):
            ds.resize((i + 1,) + ds.shape[1:])
        data[i] = i
        index[0][i], index[1][i], index[2][i] = i, 0, -1
        f.flush()
        if i == 0:
            print("ready", flush=True)
        i += 1
        time.sleep(0.005)
    """
)


def test_file_of_a_killed_swmr_writer_opens(tmp_path):
    path = tmp_path / "run.h5.partial"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = writer.stdout.readline()
        assert line.strip() == "ready", writer.stderr.read()
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.wait(timeout=30)
        writer.stdout.close()
        writer.stderr.close()
    with pytest.warns(RuntimeWarning, match="did not complete.*flushed"):
        rec = open_recording(path)
    with rec:
        p = rec["area1"]
        n = p.n_rows
        assert n >= 1 and rec.status == "running"
        np.testing.assert_array_equal(p.step, np.arange(n))
        data = p.to_numpy()
        assert data.shape == (n, 2, 4)
        expected = np.broadcast_to(np.arange(n, dtype="f4")[:, None, None], data.shape)
        np.testing.assert_array_equal(data, expected)
        assert f"{n} rows" in str(rec)
