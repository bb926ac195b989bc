"""NWB export of a real recording (a predictive-coding study on the digits,
probed inside and after the relaxation): nwbinspector finds nothing critical,
every array reads back from pynwb bit for bit, the metadata round-trips, and
the command line refuses what it should, in the project's words."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

pynwb = pytest.importorskip("pynwb")

import cortexsim as cs  # noqa: E402
from cortexsim.cli import main  # noqa: E402
from cortexsim.errors import ConfigurationError, CortexsimError, FormatError  # noqa: E402
from cortexsim.recording.nwb import export_nwb, nwb_settings  # noqa: E402

# Batches of 16 give ~90 per epoch, so the per-batch probes have more time points than
# units (a TimeSeries) while the per-epoch weights (2 rows of 64 x 8) become a table; the
# tolerance stops some relaxations early, so the relaxation-step axis has NaN padding.
STUDY = """
[study]
name = "nwb_export"
description = "Predictive coding on the digits, probed for the NWB export"
seeds = [3]

[[model.areas]]
name = "pixels"
size = 64

[[model.areas]]
name = "hidden"
size = 8
activation = "tanh"

[[model.areas]]
name = "labels"
size = 10
activation = "linear"

[data]
name = "digits"

[schedule]
epochs = 2
batch_size = 16

[[rules]]
rule = "predictive_coding"
label = "pc"
[rules.inference]
steps = 6
step_size = 0.1
tolerance = 0.015

[[probes]]
quantity = "activity"
target = "pixels"
samples = 2

[[probes]]
quantity = "activity"
target = "hidden"
samples = 2
inference_every = 2
name = "hidden.relaxation"

[[probes]]
quantity = "error"
target = "hidden"
samples = 2

[[probes]]
quantity = "error"
target = "labels"
samples = 2
every = 3

[[probes]]
quantity = "energy"

[[probes]]
quantity = "metric"
target = "loss"

[[probes]]
quantity = "alignment"
target = "hidden"

[[probes]]
quantity = "alignment"
target = "all"

[[probes]]
quantity = "update"
target = "labels.W_ff"
every = 7

[[probes]]
quantity = "weights"
target = "hidden.W_ff"
every_unit = "epoch"
"""


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nwb")
    (folder / "study.toml").write_text(STUDY)
    assert main(["run", str(folder / "study.toml"), "--out", str(folder / "out"), "--quiet"]) == 0
    return folder / "out" / "pc" / "seed3.h5"


@pytest.fixture(scope="module")
def exported(recording):
    path = export_nwb(recording, recording.with_name("seed3.nwb"))
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        yield path, io.read()


def container(nwbfile, location):
    kind, *rest = location.split("/")
    if kind == "stimulus":
        return nwbfile.stimulus[rest[-1]]
    return nwbfile.processing[rest[0]][rest[1]]


def relaxation_layout(probe):
    """(batches, recorded relaxation steps, ...) of a probe recorded inside inference,
    NaN where a relaxation stopped early: written out without the exporter."""
    steps, relaxation = np.unique(probe.step), np.unique(probe.inference_step)
    data = probe.to_numpy()
    out = np.full((len(steps), len(relaxation), *data.shape[1:]), np.nan, dtype=data.dtype)
    for row, (step, t) in enumerate(zip(probe.step, probe.inference_step)):
        out[np.searchsorted(steps, step), np.searchsorted(relaxation, t)] = data[row]
    return steps, out


def assert_nothing_critical(path):
    nwbinspector = pytest.importorskip("nwbinspector")
    messages = list(nwbinspector.inspect_nwbfile(nwbfile_path=str(path)))
    found = {(m.importance.name, m.check_function_name) for m in messages}
    serious = {f for f in found if f[0] not in ("BEST_PRACTICE_VIOLATION", "BEST_PRACTICE_SUGGESTION")}
    assert not serious, messages
    # A simulated model has no species; nothing else the export controls is a violation.
    violations = {name for importance, name in found if importance == "BEST_PRACTICE_VIOLATION"}
    assert violations <= {"check_subject_species_exists"}, messages


def assert_bit_for_bit(recording, nwbfile):
    """Every probe's values and indices, and every metric, as the recording holds them."""
    table = nwbfile.processing["hierarchy"]["probes"]
    rows = {name: i for i, name in enumerate(table["probe"].data[:])}
    forms = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rec = cs.open(recording)
    with rec:
        assert set(rows) == set(rec.probes)
        for name, probe in rec.probes.items():
            i = rows[name]
            for index in ("step", "epoch", "inference_step"):
                got = np.asarray(table[index][i])
                assert got.dtype == np.int64 and np.array_equal(got, getattr(probe, index)), (name, index)
            if probe.inference_every:
                times, want = relaxation_layout(probe)
            else:
                times, want = probe.step, probe.to_numpy()
            found = container(nwbfile, table["nwb_path"][i])
            if isinstance(found, pynwb.TimeSeries):
                forms.add("TimeSeries")
                got = found.data[:]
                np.testing.assert_array_equal(np.round(found.get_timestamps()), times, err_msg=name)
            else:
                forms.add("DynamicTable")
                got = found["data"].data[:]
                np.testing.assert_array_equal(found["step"].data[:], times, err_msg=name)
            assert got.dtype == want.dtype and got.shape == want.shape, name
            assert got.tobytes() == want.tobytes(), name
        metrics = nwbfile.processing["hierarchy"]["epoch_metrics"]
        assert set(metrics.colnames) == set(rec.metrics)
        for name, values in rec.metrics.items():
            assert metrics[name].data[:].tobytes() == values.tobytes(), name
    return forms


def test_nwbinspector_finds_nothing_critical(exported):
    assert_nothing_critical(exported[0])


def test_every_array_reads_back_bit_for_bit(recording, exported):
    assert assert_bit_for_bit(recording, exported[1]) == {"TimeSeries", "DynamicTable"}


def test_the_kept_version_1_file_exports(tmp_path):
    """The format's reference file: hand-written, no study in its configuration."""
    kept = Path(__file__).resolve().parents[1] / "data" / "recording_v1.h5"
    path = export_nwb(kept, tmp_path / "v1.nwb")
    assert_nothing_critical(path)
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwbfile = io.read()
        assert_bit_for_bit(kept, nwbfile)
        assert not nwbfile.stimulus  # which area is the data is not in this configuration
        with cs.open(kept) as rec:
            assert nwb_settings(nwbfile)["config"] == rec.config


def test_what_goes_where(recording, exported):
    _, nwbfile = exported
    assert list(nwbfile.stimulus) == ["pixels.activity"]  # area 0's activity: the data
    assert set(nwbfile.processing) == {"hidden", "labels", "hierarchy"}
    hidden = nwbfile.processing["hidden"]
    assert set(hidden.data_interfaces) == {"hidden.relaxation", "hidden.error", "hidden.alignment",
                                           "hidden.W_ff.weights"}
    assert set(nwbfile.processing["labels"].data_interfaces) == {"labels.error", "labels.W_ff.update"}
    assert {"energy", "loss.metric", "all.alignment", "probes", "epoch_metrics", "settings"} == set(
        nwbfile.processing["hierarchy"].data_interfaces)

    relaxation = hidden["hidden.relaxation"]
    assert relaxation.data.shape[1:] == (4, 2, 8)  # relaxation steps 0, 2, 4, 6
    assert np.isnan(relaxation.data[:]).any()  # some relaxations stopped early
    assert relaxation.rate == 1.0 and relaxation.starting_time == 0.0
    assert "relaxation steps 0, 2, 4, 6" in relaxation.description
    update = nwbfile.processing["labels"]["labels.W_ff.update"]
    assert update.timestamps is None and update.rate == pytest.approx(1 / 7)
    assert isinstance(hidden["hidden.W_ff.weights"], pynwb.core.DynamicTable)  # 2 rows of 64 x 8
    assert nwbfile.stimulus["pixels.activity"].unit == "activity"
    assert hidden["hidden.error"].unit == "precision-weighted prediction error"


def test_metadata_round_trips(recording, exported, tmp_path):
    path, nwbfile = exported
    with cs.open(recording) as rec:
        assert nwb_settings(nwbfile) == {"attrs": rec.attrs, "config": rec.config, "environment": rec.environment}
        created = rec.attrs["created"]
    assert nwbfile.session_start_time.isoformat() == created
    assert nwbfile.session_id == "pc-seed3" and nwbfile.subject.subject_id == "pc-seed3"
    assert "predictive_coding" in nwbfile.session_description and "nwb_export" in nwbfile.session_description
    assert nwbfile.experiment_description == "Predictive coding on the digits, probed for the NWB export"
    assert "inference.steps=6" in nwbfile.protocol and "tolerance=0.015" in nwbfile.protocol
    assert "hidden (8 units, tanh)" in nwbfile.subject.description
    assert list(nwbfile.keywords[:]) == ["cortexsim", "simulation", "hierarchical generative model",
                                         "predictive_coding"]
    again = export_nwb(recording, tmp_path / "again.nwb")
    with pynwb.NWBHDF5IO(str(again), "r") as io:
        assert io.read().identifier == nwbfile.identifier  # the same run, the same identifier


def test_the_command_exports_and_refuses_to_overwrite(recording, tmp_path, capsys):
    out = tmp_path / "run.nwb"
    assert main(["export", str(recording), "--nwb", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    before = out.read_bytes()
    assert main(["export", str(recording), "--nwb", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cortexsim: error: ") and str(out) in err and "--overwrite" in err
    assert out.read_bytes() == before
    assert main(["export", str(recording), "--nwb", str(out), "--overwrite"]) == 0
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        assert "pixels.activity" in io.read().stimulus
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.nwb"]  # no temporary left


def test_a_missing_or_damaged_recording_is_an_error_naming_it(recording, tmp_path, capsys):
    missing = tmp_path / "no_such_run.h5"
    assert main(["export", str(missing), "--nwb", str(tmp_path / "x.nwb")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cortexsim: error: ") and str(missing) in err

    cut = tmp_path / "cut.h5"
    cut.write_bytes(recording.read_bytes()[: recording.stat().st_size // 2])
    with pytest.raises(FormatError, match="cut.h5"):
        export_nwb(cut, tmp_path / "cut.nwb")

    flipped = tmp_path / "flipped.h5"
    shutil.copyfile(recording, flipped)
    with h5py.File(flipped, "r") as f:
        chunk = f["probes/hidden.error/data"].id.get_chunk_info(0)
    with open(flipped, "r+b") as handle:  # one flipped byte inside a checksummed chunk
        handle.seek(chunk.byte_offset + chunk.size // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(FormatError, match="flipped.h5"):
            export_nwb(flipped, tmp_path / "flipped.nwb")
    assert not list(tmp_path.glob("*.nwb"))  # nothing half-written stays


def test_the_recording_itself_is_never_the_output(recording):
    with pytest.raises(ConfigurationError, match="the recording itself"):
        export_nwb(recording, recording, overwrite=True)
    with cs.open(recording) as rec:
        assert rec.status == "complete"


def test_without_pynwb_the_error_names_the_extra(recording, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "pynwb", None)  # import pynwb raises ImportError
    with pytest.raises(CortexsimError, match=r"pip install 'cortexsim\[nwb\]'"):
        export_nwb(recording, tmp_path / "x.nwb")
    assert main(["export", str(recording), "--nwb", str(tmp_path / "x.nwb")]) == 2
    assert "cortexsim[nwb]" in capsys.readouterr().err


def test_a_probe_reads_a_part_at_a_time(recording):
    """What the export streams, a buffer at a time: any block of the layout."""
    from cortexsim.recording.nwb_probes import Series

    with cs.open(recording) as rec:
        for name in ("hidden.relaxation", "hidden.error"):
            probe = rec[name]
            series = Series(probe)
            whole = relaxation_layout(probe)[1] if probe.inference_every else probe.to_numpy()
            assert series.shape == whole.shape
            rng = np.random.default_rng(0)
            for _ in range(20):
                block = []
                for n in whole.shape:
                    start = int(rng.integers(0, n))
                    block.append(slice(start, int(rng.integers(start + 1, n + 1))))
                got = series.read(tuple(block))
                assert got.tobytes() == whole[tuple(block)].tobytes(), (name, block)
