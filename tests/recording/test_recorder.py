"""The recorder end to end: every probe quantity is written to the file exactly
as an independent callback saw it at the same slot, on every backend; rows
arrive in chunks, statuses tell how a run ended, and mistakes are reported in
the words the user wrote."""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import cortexsim as cs
import cortexsim.sim.recorder as recorder_module
import cortexsim.recording.writer as writer_module
from conftest import build64
from cortexsim import (
    SGD,
    Adam,
    AreaSpec,
    Backprop,
    ConfigurationError,
    DivergenceError,
    HierarchySpec,
    PredictiveCoding,
    Probe,
    Recorder,
    Relaxation,
    Scheduler,
)
from cortexsim.backend import Backend
from cortexsim.recording import partial_path
from cortexsim.sim.recorded import run_recorded

# Two hidden areas with non-unit precisions (so prediction = mu - eps / pi is
# not mu - eps), a linear top area clamped to the target.
SPEC = HierarchySpec(
    areas=(
        AreaSpec("area0", 6),
        AreaSpec("area1", 5, precision=2.0),
        AreaSpec("area2", 4, precision=0.5),
        AreaSpec("area3", 3, activation="linear"),
    )
)
N, BATCH = 22, 6  # batches of 6, 6, 6, 4: the short one is shorter than `samples`
BATCHES = math.ceil(N / BATCH)
SAMPLES = 5
STEPS = 4  # relaxation steps
PER_SAMPLE = ("activity", "error", "prediction")

ROUND_TRIP = [
    Probe("activity", "area0", samples=SAMPLES),
    Probe("activity", "area1", samples=SAMPLES),
    Probe("activity", "area3", samples=SAMPLES),
    Probe("error", "area1", samples=SAMPLES),
    Probe("error", "area2", samples=SAMPLES),
    Probe("error", "area3", samples=SAMPLES),
    Probe("prediction", "area1", samples=SAMPLES),
    Probe("prediction", "area2", samples=SAMPLES),
    Probe("weights", "area1.W_ff"),
    Probe("weights", "area3.b_ff"),
    Probe("update", "area2.W_ff"),
    Probe("update", "area1.b_ff"),
    Probe("alignment", "area1"),
    Probe("alignment", "area3"),
    Probe("alignment", "all"),
    Probe("energy"),
    Probe("metric", "loss"),
    Probe("metric", "energy"),
    Probe("metric", "steps"),
    Probe("weights", "area2.W_ff", every=3, name="w2_every3"),
    Probe("activity", "area2", samples=2, every_unit="epoch", name="a2_epoch"),
    Probe("metric", "loss", every=2, every_unit="epoch", name="loss_epoch2"),
    Probe("update", "area3.W_ff", every_unit="epoch", name="u3_epoch"),
    # An epoch row is the epoch's last batch's row: weights before its update, and
    # an alignment of gradients taken with one and the same set of weights.
    Probe("weights", "area1.W_ff", every_unit="epoch", name="w1_epoch"),
    Probe("alignment", "all", every_unit="epoch", name="all_epoch"),
]


def make_data(n=N, seed=0, n_in=6, n_out=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n_in)), rng.normal(size=(n, n_out))


def pc_rule(**kw):
    return PredictiveCoding(inference=Relaxation(steps=STEPS, step_size=0.1, **kw))


def make_scheduler(backend="numpy", rule=None, optimizer=None, epochs=2, spec=SPEC, **kw):
    h = build64(spec, backend, seed=1)
    x, y = make_data(n_in=spec.areas[0].size, n_out=spec.areas[-1].size)
    rule = pc_rule() if rule is None else rule
    optimizer = Adam(lr=0.01) if optimizer is None else optimizer
    return Scheduler(h, rule, optimizer, x, y, batch_size=BATCH, epochs=epochs, seed=2, **kw)


# -- an independent record of what each probe should hold --------------------------


def host(be, value) -> np.ndarray:
    return np.asarray(value) if isinstance(value, (int, float)) else be.to_numpy(value)


def padded(value: np.ndarray, shape) -> np.ndarray:
    out = np.full(shape, np.nan)
    out[tuple(slice(0, n) for n in value.shape)] = value
    return out


def cosine_angle(mine: np.ndarray, ref: np.ndarray) -> np.ndarray:
    cos = float(mine @ ref / (np.linalg.norm(mine) * np.linalg.norm(ref)))
    cos = min(1.0, max(-1.0, cos))
    return np.array([cos, math.degrees(math.acos(cos))])


def expected_alignment(h, state, gradients, target: str) -> np.ndarray:
    be = h.backend
    reference = Backprop("mse").gradients(h, state)
    keys = sorted(k for k in reference if k in gradients and (target == "all" or k[0] == target))
    mine = np.concatenate([np.ravel(host(be, gradients[k])) for k in keys])
    ref = np.concatenate([np.ravel(host(be, reference[k])) for k in keys])
    return cosine_angle(mine, ref)


def expected_row(probe: Probe, h, state, gradients) -> np.ndarray:
    """The row ``probe`` should record, written out without cortexsim.sim.probes."""
    be = h.backend
    names = [a.name for a in h.areas]
    q = probe.quantity
    if q in PER_SAMPLE:
        l = names.index(probe.target)
        top = len(names) - 1
        mu = host(be, state.mu[l])
        if q == "activity":
            value = mu
        elif q == "error":
            value = host(be, state.errors[l]) if l == top else host(be, state.eps[l])
        else:  # the prediction mu - eps / pi, equal to the recorded one up to rounding
            value = mu - host(be, state.eps[l]) / h.areas[l].precision
        return padded(value[: probe.samples], (probe.samples, h.areas[l].size))
    if q in ("weights", "update"):
        area, parameter = probe.target.split(".")
        source = getattr(h[area], parameter) if q == "weights" else gradients[(area, parameter)]
        return host(be, source)
    if q == "alignment":
        return expected_alignment(h, state, gradients, probe.target)
    if q == "energy":
        return padded(host(be, state.energy), (STEPS + 1,))
    if probe.target == "loss":
        return host(be, state.loss)
    if probe.target == "energy":
        return host(be, state.energy)[-1]
    return np.asarray(float(state.steps))


class Expected:
    """Attached at ``before_update`` with order 0 (before the recorder's 100):
    copies what every probe should record, batch by batch and epoch by epoch."""

    def __init__(self, scheduler: Scheduler, probes) -> None:
        self.probes = probes
        self.rows = {p.name: [] for p in probes}
        self.index = {p.name: [] for p in probes}
        self.last: dict[str, np.ndarray] = {}
        scheduler.attach("before_update", self.batch, order=0, name="expected rows")
        scheduler.attach("epoch_end", self.epoch_end, order=0, name="expected epoch rows")

    def batch(self, event) -> None:
        self.last = {}
        for p in self.probes:
            row = expected_row(p, event.hierarchy, event.state, event.gradients)
            self.last[p.name] = (row, event.step, event.epoch)
            if p.every_unit == "batch" and event.step % p.every == 0:
                self.rows[p.name].append(row)
                self.index[p.name].append((event.step, event.epoch, -1))

    def epoch_end(self, event) -> None:
        for p in self.probes:
            if p.every_unit == "epoch" and (event.epoch + 1) % p.every == 0:
                row, step, epoch = self.last[p.name]
                self.rows[p.name].append(row)
                self.index[p.name].append((step, epoch, -1))

    def stacked(self, name: str) -> np.ndarray:
        return np.stack(self.rows[name]) if self.rows[name] else np.empty((0,))


def read(path: Path) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with cs.open(path) as rec:
            return {
                "status": rec.status,
                "attrs": dict(rec.attrs),
                "config": rec.config,
                "environment": rec.environment,
                "metrics": {k: np.array(v) for k, v in rec.metrics.items()},
                "probes": {
                    name: {
                        "data": p.to_numpy(),
                        "step": p.step,
                        "epoch": p.epoch,
                        "inference_step": p.inference_step,
                        "quantity": p.quantity,
                        "target": p.target,
                        "every": p.every,
                        "every_unit": p.every_unit,
                        "samples": p.samples,
                        "dims": p.dims,
                    }
                    for name, p in rec.probes.items()
                },
            }


def assert_rows(seen: dict, expected: Expected, exact: bool = True) -> None:
    for p in expected.probes:
        got = seen["probes"][p.name]
        want = expected.stacked(p.name)
        index = np.asarray(expected.index[p.name], dtype=np.int64).reshape(-1, 3)
        np.testing.assert_array_equal(got["step"], index[:, 0], err_msg=f"{p.name} step")
        np.testing.assert_array_equal(got["epoch"], index[:, 1], err_msg=f"{p.name} epoch")
        np.testing.assert_array_equal(got["inference_step"], index[:, 2], err_msg=p.name)
        assert got["data"].shape == want.shape, p.name
        if p.quantity == "alignment":
            # acos is ill-conditioned at cosine 1: angles of aligned updates get an absolute tolerance.
            np.testing.assert_allclose(got["data"][:, 0], want[:, 0], rtol=1e-5, atol=1e-8, err_msg=p.name)
            np.testing.assert_allclose(got["data"][:, 1], want[:, 1], rtol=1e-5, atol=1e-5, err_msg=p.name)
        elif exact and p.quantity != "prediction":
            np.testing.assert_array_equal(got["data"], want, err_msg=p.name)
        else:
            np.testing.assert_allclose(got["data"], want, rtol=1e-12, err_msg=p.name)


# -- 1. every quantity, every backend ---------------------------------------------


def test_every_quantity_round_trips_on_every_backend(backend_name, tmp_path):
    s = make_scheduler(backend_name, epochs=3)
    expected = Expected(s, ROUND_TRIP)
    out = run_recorded(s, tmp_path / "run.h5", ROUND_TRIP, checkpoint_every=3)
    assert out == tmp_path / "run.h5"
    seen = read(out)
    assert seen["status"] == "complete"
    assert_rows(seen, expected)

    total = 3 * BATCHES
    # Sampling: every batch, every 3rd batch, every epoch (last batch), every 2nd epoch.
    np.testing.assert_array_equal(seen["probes"]["area1.activity"]["step"], np.arange(total))
    np.testing.assert_array_equal(seen["probes"]["area1.activity"]["epoch"], np.arange(total) // BATCHES)
    np.testing.assert_array_equal(seen["probes"]["w2_every3"]["step"], np.arange(0, total, 3))
    np.testing.assert_array_equal(seen["probes"]["a2_epoch"]["step"], [3, 7, 11])
    np.testing.assert_array_equal(seen["probes"]["a2_epoch"]["epoch"], [0, 1, 2])
    np.testing.assert_array_equal(seen["probes"]["loss_epoch2"]["epoch"], [1])
    np.testing.assert_array_equal(seen["probes"]["loss_epoch2"]["step"], [7])

    # The short last batch (4 rows) is NaN-padded to `samples` rows.
    short = seen["probes"]["area1.activity"]["data"][BATCHES - 1]
    assert np.all(np.isfinite(short[:4])) and np.all(np.isnan(short[4:]))
    # The values are not trivially equal to one another.
    act = seen["probes"]["area1.activity"]["data"][0]
    pred = seen["probes"]["area1.prediction"]["data"][0]
    err = seen["probes"]["area1.error"]["data"][0]
    assert not np.allclose(act, pred) and not np.allclose(pred, act - err)
    np.testing.assert_allclose(pred, act - err / 2.0)
    w = seen["probes"]["area1.W_ff.weights"]["data"]
    assert not np.array_equal(w[0], w[1])  # weights move between batches
    cos = seen["probes"]["all.alignment"]["data"][:, 0]
    assert np.all(cos > 0) and np.all(cos < 1)

    attrs = seen["attrs"]
    assert (attrs["backend"], attrs["dtype"], attrs["rule"], attrs["seed"]) == (
        backend_name, "float64", "predictive_coding", 2,
    )
    assert attrs["format"] == "cortexsim-recording" and attrs["format_version"] == 1
    for p in ROUND_TRIP:
        got = seen["probes"][p.name]
        assert (got["quantity"], got["target"], got["every"], got["every_unit"]) == (
            p.quantity, p.target, p.every, p.every_unit,
        )
        assert got["samples"] == (p.samples if p.quantity in PER_SAMPLE else 0)
    assert seen["probes"]["energy"]["data"].shape == (total, STEPS + 1)
    assert seen["probes"]["loss.metric"]["data"].shape == (total,)
    assert seen["probes"]["area3.b_ff.weights"]["dims"] == ["time", "unit"]
    assert seen["probes"]["area1.W_ff.weights"]["dims"] == ["time", "row", "column"]
    # Per-epoch metrics agree with the scheduler's history.
    np.testing.assert_array_equal(seen["metrics"]["epoch"], [1, 2, 3])
    np.testing.assert_array_equal(seen["metrics"]["train_loss"], [m["train_loss"] for m in s.history])
    np.testing.assert_array_equal(seen["metrics"]["energy"], [m["energy"] for m in s.history])
    np.testing.assert_array_equal(seen["metrics"]["seconds"], [m["seconds"] for m in s.history])
    assert np.all(seen["metrics"]["seconds"] > 0)


def test_backprop_rule_round_trip(backend_name, tmp_path):
    """Backprop keeps no eps: errors are its backward errors, predictions the sweep's."""
    probes = [
        Probe("activity", "area2", samples=3),
        Probe("error", "area2", samples=3),
        Probe("weights", "area2.W_ff"),
        Probe("update", "area1.W_ff"),
        Probe("alignment", "all"),
        Probe("metric", "loss"),
    ]
    s = make_scheduler(backend_name, rule=Backprop("mse"))
    expected = Expected(s, [p for p in probes if p.quantity != "error"])
    errors = []
    s.attach("before_update", lambda e: errors.append(host(e.hierarchy.backend, e.state.errors[2])[:3]))
    Recorder(tmp_path / "bp.h5", probes).attach(s)
    s.run()
    seen = read(tmp_path / "bp.h5")
    assert_rows(seen, expected)
    np.testing.assert_array_equal(seen["probes"]["area2.error"]["data"], np.stack(errors))
    # Backprop against itself: perfectly aligned.
    np.testing.assert_allclose(seen["probes"]["all.alignment"]["data"], [[1.0, 0.0]] * (2 * BATCHES), atol=1e-4)


def test_epoch_rows_survive_the_test_set_sweep(backend_name, tmp_path):
    """Backprop's state lives in the sweep buffers, which the end-of-epoch accuracy
    sweep reuses when a test chunk has the shape of the last training batch."""
    probes = [
        Probe("activity", "area2", samples=3, every_unit="epoch", name="a2_epoch"),
        Probe("activity", "area3", samples=3, every_unit="epoch", name="a3_epoch"),
        Probe("alignment", "all", every_unit="epoch", name="all_epoch"),
        Probe("weights", "area2.W_ff", every_unit="epoch", name="w2_epoch"),
    ]
    x_test, _ = make_data(n=N - (BATCHES - 1) * BATCH, seed=5)  # 4 rows, as the last batch
    s = make_scheduler(backend_name, rule=Backprop("mse"), epochs=2,
                       x_test=x_test, y_test=np.zeros(len(x_test), dtype=int))
    expected = Expected(s, probes)
    Recorder(tmp_path / "t.h5", probes).attach(s)
    s.run()
    seen = read(tmp_path / "t.h5")
    assert_rows(seen, expected)
    np.testing.assert_array_equal(seen["probes"]["a2_epoch"]["step"], [BATCHES - 1, 2 * BATCHES - 1])


def test_generative_round_trip(tmp_path):
    """Generative PC: errors of the data area and predictions of the data."""
    spec = HierarchySpec.from_sizes([6, 4, 3])
    probes = [
        Probe("activity", "area2", samples=SAMPLES),
        Probe("error", "area0", samples=SAMPLES),
        Probe("error", "area1", samples=SAMPLES),
        Probe("prediction", "area0", samples=SAMPLES),
        Probe("weights", "area2.W_fb"),
        Probe("update", "area1.W_fb"),
        Probe("energy"),
    ]
    h = build64(spec, "numpy", seed=1)
    x, _ = make_data()
    s = Scheduler(h, PredictiveCoding(mode="generative", inference=Relaxation(steps=STEPS)),
                  SGD(lr=0.05), x, None, batch_size=BATCH, epochs=2, seed=2)
    expected = Expected(s, probes)
    Recorder(tmp_path / "gen.h5", probes).attach(s)
    s.run()
    assert_rows(read(tmp_path / "gen.h5"), expected)


def test_energy_trace_of_an_early_stop_is_nan_padded(tmp_path):
    s = make_scheduler(rule=pc_rule(tolerance=1e3))  # stops after the first step
    expected = Expected(s, [Probe("energy"), Probe("metric", "steps")])
    Recorder(tmp_path / "e.h5", expected.probes).attach(s)
    s.run()
    seen = read(tmp_path / "e.h5")
    assert_rows(seen, expected)
    energy = seen["probes"]["energy"]["data"]
    assert np.all(np.isfinite(energy[:, :2])) and np.all(np.isnan(energy[:, 2:]))
    np.testing.assert_array_equal(seen["probes"]["steps.metric"]["data"], 1.0)


# -- 2. chunks and host copies -----------------------------------------------------


def count_to_numpy(monkeypatch) -> list:
    calls = []
    original = Backend.to_numpy

    def counting(self, x):
        if sys._getframe(1).f_globals.get("__name__") != __name__:  # not this test's own copies
            calls.append(tuple(getattr(x, "shape", ())))
        return original(self, x)

    monkeypatch.setattr(Backend, "to_numpy", counting)
    return calls


CHUNK_PROBES = [
    Probe("activity", "area1", samples=SAMPLES),  # 5 x 5 float64 = 200 bytes
    Probe("weights", "area1.W_ff"),  # 6 x 5 = 240 bytes
    Probe("update", "area3.b_ff"),  # 24 bytes
    Probe("metric", "loss"),  # 8 bytes
    Probe("energy", every=2),
]


def test_small_buffers_flush_many_chunks_and_copy_once_per_chunk(tmp_path, monkeypatch):
    # Buffers hold whole chunks, so shrink the chunks with them.
    monkeypatch.setattr(recorder_module, "_BUFFER_BYTES", 600)
    monkeypatch.setattr(writer_module, "_CHUNK_BYTES", 600)
    epochs = 4
    calls = count_to_numpy(monkeypatch)
    make_scheduler(epochs=epochs).run()
    baseline = len(calls)

    calls.clear()
    s = make_scheduler(epochs=epochs)
    expected = Expected(s, CHUNK_PROBES)
    recorder = Recorder(tmp_path / "chunks.h5", CHUNK_PROBES)
    recorder.attach(s)
    capacity = {c.probe.name: c.capacity for c in recorder.channels}
    assert capacity == {
        "area1.activity": 3, "area1.W_ff.weights": 2, "area3.b_ff.update": 25,
        "loss.metric": 75, "energy": 15,
    }
    s.run()
    rows = {p.name: len(expected.rows[p.name]) for p in CHUNK_PROBES}
    assert rows["area1.activity"] == epochs * BATCHES == 16 and rows["energy"] == 8
    flushes = sum(math.ceil(rows[name] / capacity[name]) for name in rows)
    assert len(calls) - baseline == flushes  # one host copy per chunk, not per row
    assert flushes < sum(rows.values()) / 2
    assert_rows(read(tmp_path / "chunks.h5"), expected)


def test_default_buffers_copy_once_per_probe(tmp_path, monkeypatch):
    calls = count_to_numpy(monkeypatch)
    make_scheduler(epochs=3).run()
    baseline = len(calls)
    calls.clear()
    s = make_scheduler(epochs=3)
    expected = Expected(s, CHUNK_PROBES)
    Recorder(tmp_path / "one.h5", CHUNK_PROBES).attach(s)
    s.run()
    assert len(calls) - baseline == len(CHUNK_PROBES)
    assert_rows(read(tmp_path / "one.h5"), expected)


def test_big_layer_with_capacity_one(tmp_path, monkeypatch):
    """A row bigger than the buffer budget still gets a one-row buffer."""
    monkeypatch.setattr(recorder_module, "_BUFFER_BYTES", 16)
    monkeypatch.setattr(writer_module, "_CHUNK_BYTES", 16)
    probes = [Probe("weights", "area1.W_ff"), Probe("activity", "area2", samples=SAMPLES)]
    s = make_scheduler()
    expected = Expected(s, probes)
    recorder = Recorder(tmp_path / "big.h5", probes)
    recorder.attach(s)
    assert [c.capacity for c in recorder.channels] == [1, 1]
    s.run()
    assert_rows(read(tmp_path / "big.h5"), expected)


# -- 3. statuses -------------------------------------------------------------------


def test_completed_run_is_renamed_and_complete(tmp_path):
    s = make_scheduler()
    out = run_recorded(s, tmp_path / "done.h5", [Probe("metric", "loss")])
    assert out.exists() and not partial_path(out).exists()
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob("*.rewrite"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a complete file opens without a warning
        with cs.open(out) as rec:
            assert rec.status == "complete"
            assert rec["loss.metric"].n_rows == 2 * BATCHES


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_diverged_run_keeps_partial_with_rows_before(tmp_path):
    probes = [Probe("weights", "area1.W_ff"), Probe("metric", "loss"), Probe("activity", "area1", samples=3)]
    s = make_scheduler(optimizer=SGD(lr=1e25))
    expected = Expected(s, probes)
    path = tmp_path / "div.h5"
    with pytest.raises(DivergenceError):
        run_recorded(s, path, probes)
    assert not path.exists() and partial_path(path).exists()
    with pytest.warns(RuntimeWarning, match="diverged"):
        rec = cs.open(partial_path(path))
    with rec:
        assert rec.status == "diverged"
        assert rec["loss.metric"].n_rows >= 1
    seen = read(partial_path(path))
    assert_rows(seen, expected)
    assert 1 <= len(expected.rows["loss.metric"]) < 2 * BATCHES  # stopped early


def interrupting_scheduler(at_step: int | None):
    s = make_scheduler(epochs=3)

    def interrupt(event):
        if event.step == at_step:
            raise KeyboardInterrupt

    if at_step is not None:
        s.attach("after_learning", interrupt, order=0, name="interrupt")
    return s


RESUME_PROBES = [
    Probe("activity", "area1", samples=3),
    Probe("weights", "area2.W_ff"),
    Probe("update", "area1.b_ff", every=2),
    Probe("alignment", "all"),
    Probe("energy"),
    Probe("metric", "loss"),
    Probe("weights", "area1.b_ff", every_unit="epoch", name="b1_epoch"),
]


@pytest.mark.parametrize("at_step", [5, 4, 9])
def test_interrupted_run_is_running_and_resumes_identically(tmp_path, at_step):
    reference = run_recorded(interrupting_scheduler(None), tmp_path / "ref" / "run.h5", RESUME_PROBES,
                             checkpoint_every=2, config={"what": "reference"})
    ref = read(reference)

    path = tmp_path / "run.h5"
    with pytest.raises(KeyboardInterrupt):
        run_recorded(interrupting_scheduler(at_step), path, RESUME_PROBES, checkpoint_every=2)
    assert not path.exists() and partial_path(path).exists()
    with pytest.warns(RuntimeWarning, match="did not complete"):
        rec = cs.open(partial_path(path))
    with rec:
        assert rec.status == "running"
        # Every row up to the interruption was flushed, indices consistent.
        assert rec["loss.metric"].n_rows == at_step + 1
        np.testing.assert_array_equal(rec["loss.metric"].step, np.arange(at_step + 1))
        np.testing.assert_array_equal(rec["loss.metric"].to_numpy(), ref["probes"]["loss.metric"]["data"][: at_step + 1])

    out = run_recorded(interrupting_scheduler(None), path, RESUME_PROBES, checkpoint_every=2, resume=True)
    assert out == path and not partial_path(path).exists()
    seen = read(out)
    assert seen["status"] == "complete"
    for name, want in ref["probes"].items():
        for key in ("data", "step", "epoch", "inference_step"):
            np.testing.assert_array_equal(seen["probes"][name][key], want[key], err_msg=f"{name} {key}")
    assert seen["metrics"].keys() == ref["metrics"].keys()
    for name, want in ref["metrics"].items():
        if name == "seconds":  # wall time: measured, never reproduced
            continue
        np.testing.assert_array_equal(seen["metrics"][name], want, err_msg=name)


# -- 4. errors in the user's words -------------------------------------------------


def test_duplicate_probe_names(tmp_path):
    with pytest.raises(ConfigurationError, match="'area1.activity'"):
        Recorder(tmp_path / "x.h5", [Probe("activity", "area1"), Probe("activity", "area1", samples=2)])
    with pytest.raises(ConfigurationError, match="'mine'"):
        Recorder(tmp_path / "x.h5", [Probe("metric", "loss", name="mine"), Probe("energy", name="mine")])
    # Distinct names make the same probe twice legal.
    Recorder(tmp_path / "x.h5", [Probe("activity", "area1"), Probe("activity", "area1", name="again")])


@pytest.mark.parametrize(
    "probe, pattern",
    [
        (Probe("activty", "area1"), r"probes\[1\]\.quantity: unknown value 'activty'.*did you mean 'activity'"),
        (Probe("activity", "aera1"), r"probes\[1\]\.target: unknown value 'aera1'.*did you mean 'area1'"),
        (Probe("weights", "area1.W_f"), r"probes\[1\]\.target: unknown value 'area1\.W_f'.*did you mean 'area1\.W_ff'"),
        (Probe("alignment", "area0"), r"probes\[1\]\.target: unknown value 'area0'"),
        (Probe("metric", "los"), r"probes\[1\]\.target: unknown value 'los'.*did you mean 'loss'"),
        (Probe("metric", "loss", every=0), r"probes\[1\]\.every: .*>= 1, got 0"),
        (Probe("metric", "loss", every_unit="epochs"), r"probes\[1\]\.every_unit.*did you mean 'epoch'"),
        (Probe("activity", "area1", samples=0), r"probes\[1\]\.samples"),
        (Probe("weights", "area1.W_ff", inference_every=2), r"probes\[1\]\.inference_every"),
    ],
)
def test_bad_probe_is_named_and_no_file_is_left(tmp_path, probe, pattern):
    s = make_scheduler()
    with pytest.raises(ConfigurationError, match=pattern):
        Recorder(tmp_path / "bad.h5", [Probe("metric", "loss", name="fine"), probe]).attach(s)
    assert not list(tmp_path.iterdir())


def test_error_of_the_clamped_input_is_refused(tmp_path):
    for rule in (pc_rule(), Backprop("mse")):
        s = make_scheduler(rule=rule)
        with pytest.raises(ConfigurationError, match=r"probes\[0\]\.target: 'area0' is the clamped input"):
            Recorder(tmp_path / "e.h5", [Probe("error", "area0")]).attach(s)
    assert not list(tmp_path.iterdir())


def test_energy_probe_needs_a_relaxation(tmp_path):
    s = make_scheduler(rule=Backprop("mse"))
    with pytest.raises(ConfigurationError, match=r"probes\[0\].*'backprop'.*energy"):
        Recorder(tmp_path / "e.h5", [Probe("energy")]).attach(s)
    with pytest.raises(ConfigurationError, match=r"probes\[0\]"):
        Recorder(tmp_path / "e.h5", [Probe("metric", "energy")]).attach(s)
    assert not list(tmp_path.iterdir())


def test_alignment_probe_needs_discriminative_weights(tmp_path):
    h = build64(HierarchySpec.from_sizes([6, 4, 3]), "numpy")
    x, _ = make_data()
    s = Scheduler(h, PredictiveCoding(mode="generative"), SGD(lr=0.1), x, None, batch_size=BATCH)
    with pytest.raises(ConfigurationError, match=r"probes\[0\].*generative"):
        Recorder(tmp_path / "a.h5", [Probe("alignment", "all")]).attach(s)
    assert not list(tmp_path.iterdir())


def test_probe_from_dict_errors():
    with pytest.raises(ConfigurationError, match=r"probes\[2\]\.evry: unknown key.*did you mean 'every'"):
        Probe.from_dict({"quantity": "activity", "target": "area1", "evry": 2}, "probes[2]")
    with pytest.raises(ConfigurationError, match=r"probe\.every: .*>= 1, got 0"):
        Probe.from_dict({"quantity": "metric", "target": "loss", "every": 0})
    with pytest.raises(ConfigurationError, match=r"probe\.quantity: required"):
        Probe.from_dict({"target": "area1"})
    with pytest.raises(ConfigurationError, match=r"probe\.quantity: unknown value 'wieghts'.*'weights'"):
        Probe.from_dict({"quantity": "wieghts", "target": "area1.W_ff"})
    assert Probe.from_dict({"quantity": "activity", "target": "area1", "every": 3}) == Probe("activity", "area1", every=3)


# -- 5. configuration and environment ----------------------------------------------


def test_config_and_environment_are_stored(tmp_path):
    probes = [Probe("activity", "area1", samples=2, every=3), Probe("metric", "loss", name="L")]
    config = {"model": {"areas": [6, 5, 4, 3]}, "rule": {"name": "predictive_coding", "steps": STEPS},
              "schedule": {"epochs": 2, "batch_size": BATCH}}
    out = run_recorded(make_scheduler(), tmp_path / "c.h5", probes, config=config)
    seen = read(out)
    stored = seen["config"]
    for key, value in config.items():
        assert stored[key] == value
    assert [Probe.from_dict(p) for p in stored["probes"]] == probes
    env = seen["environment"]
    import platform
    import socket
    import sys

    assert env["python"] == sys.version
    assert env["host"] == socket.gethostname()
    assert env["platform"] == platform.platform()
    assert env["packages"]["numpy"] == np.__version__
    assert "h5py" in env["packages"]
    assert env["cortexsim"] == cs.__version__
    assert seen["attrs"]["cortexsim_version"] == cs.__version__
    # Plain h5py reads the same JSON.
    import h5py

    with h5py.File(out, "r") as f:
        assert json.loads(f["config"][()]) == stored


def test_probes_of_quantities_the_rule_does_not_have_are_refused_before_the_file_exists(tmp_path):
    h = build64(HierarchySpec.from_sizes([4, 3, 2]), "numpy")
    x, y = np.zeros((8, 4)), np.zeros((8, 2))
    s = Scheduler(h, PredictiveCoding(), SGD(lr=0.1), x, y)
    with pytest.raises(ConfigurationError, match=r"probes\[0\]\.target: rule 'predictive_coding' does not learn 'area1\.W_fb'"):
        Recorder(tmp_path / "a.h5", [Probe("update", "area1.W_fb")]).attach(s)
    with pytest.raises(ConfigurationError, match=r"probes\[0\]\.target: 'area0' is the clamped input"):
        Recorder(tmp_path / "b.h5", [Probe("prediction", "area0")]).attach(s)
    assert not any(tmp_path.iterdir())
