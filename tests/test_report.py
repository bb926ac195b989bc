"""Study reports: a tiny study folder built by hand (2 rules x 2 seeds on a digits
subset), then write_report and compare_table checked against the recordings."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from matplotlib.image import imread

import cortexsim as cs
from cortexsim import plots
from cortexsim.data import load
from cortexsim.sim.probes import Probe
from cortexsim.report.summary import compare_table, write_report
from cortexsim.report.folder import read_study_folder

SEEDS = (0, 1)
EPOCHS = 3


def _run(out, label, seed, data):
    train, (x_val, y_val) = data.validation_split(0.2, seed=seed)
    model = cs.build(cs.HierarchySpec.from_sizes([64, 16, 10]), seed=seed)
    if label == "pc":
        rule = cs.PredictiveCoding(inference=cs.Relaxation(steps=8, step_size=0.1))
        probes = [Probe("alignment", "all"), Probe("alignment", "area1"), Probe("energy")]
    else:
        rule = cs.Backprop()
        probes = [Probe("metric", "loss")]
    scheduler = cs.Scheduler(
        model,
        rule,
        cs.Adam(lr=3e-3),
        train.x_train[:240],
        train.y_train[:240],
        batch_size=32,
        epochs=EPOCHS,
        seed=seed,
        x_test=data.x_test[:300],
        y_test=data.y_test[:300],
        x_val=x_val[:150],
        y_val=y_val[:150],
    )
    relative = f"{label}/seed{seed}.h5"
    cs.run_recorded(scheduler, out / relative, probes)
    return {
        "label": label,
        "rule": rule.name,
        "seed": seed,
        "recording": relative,
        "status": "complete",
    }


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """Study A: pc and backprop x 2 seeds; study B: a copy of pc only, seed 1 'failed'."""
    data = load("digits")
    a = tmp_path_factory.mktemp("study_a")
    runs = [_run(a, label, seed, data) for label in ("pc", "backprop") for seed in SEEDS]
    (a / "study.json").write_text(
        json.dumps({"name": "tiny-a", "runs": runs, "seeds": list(SEEDS)})
    )
    b = tmp_path_factory.mktemp("study_b")
    shutil.copytree(a / "pc", b / "pc")
    runs_b = [dict(r) for r in runs if r["label"] == "pc"]
    runs_b[1]["status"] = "failed"
    (b / "study.json").write_text(json.dumps({"name": "tiny-b", "runs": runs_b}))
    return a, b


def _expected(out, label, seeds=SEEDS):
    """Test accuracy at the first best validation epoch, per seed, read with cortexsim.open."""
    values = []
    for seed in seeds:
        with cs.open(out / label / f"seed{seed}.h5") as rec:
            m = rec.metrics
            values.append(m["test_accuracy"][int(np.argmax(m["validation_accuracy"]))])
    values = np.array(values)
    sd = values.std(ddof=1) if len(values) > 1 else 0.0
    return values.mean(), sd


def _row(text, first_cell):
    lines = [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]
    assert lines, f"no table row starting with {first_cell!r}"
    return lines[0]


def test_report_files_and_figures(studies):
    out, _ = studies
    summary = write_report(out)
    assert summary == out / "report" / "summary.md"
    for name in ("learning_curves.png", "alignment.png", "energy.png"):
        image = imread(out / "report" / name)
        assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 500, name
        assert float(image[..., :3].std()) > 0.05, f"{name} looks blank"
    text = summary.read_text()
    for name in ("learning_curves.png", "alignment.png", "energy.png"):
        assert f"({name})" in text


def test_summary_numbers_match_the_recordings(studies):
    out, _ = studies
    text = write_report(out).read_text()
    assert text.startswith("# Study report: tiny-a")
    for label, rule in (("pc", "predictive_coding"), ("backprop", "backprop")):
        mean, sd = _expected(out, label)
        row = _row(text, label)
        assert f"| {label} | {rule} | 2 | {100 * mean:.2f} ± {100 * sd:.2f} |" in row
        seconds = []
        for seed in SEEDS:
            with cs.open(out / label / f"seed{seed}.h5") as rec:
                seconds.append(rec.metrics["seconds"].sum())
        assert row.endswith(f"| {np.mean(seconds):.3g} |")
        for seed in SEEDS:
            with cs.open(out / label / f"seed{seed}.h5") as rec:
                m = rec.metrics
            run_row = _run_rows(text, f"{label}/seed{seed}.h5")
            assert len(run_row) == 1 and run_row[0].startswith(f"| {label} | {rule} | {seed} |")
            assert f"| {100 * m['test_accuracy'][-1]:.2f} |" in run_row[0]
            assert f"| {m['train_loss'][-1]:.4g} |" in run_row[0]
            assert f"| {m['seconds'].sum():.3g} |" in run_row[0]
            assert "| complete |" in run_row[0]
    assert "How the numbers were computed" in text and "ddof = 1" in text


def test_incomplete_runs_are_listed_but_excluded(studies):
    _, out = studies
    text = write_report(out).read_text()
    mean, sd = _expected(out, "pc", seeds=(0,))
    assert sd == 0.0
    assert f"| pc | predictive_coding | 1 | {100 * mean:.2f} ± 0.00 |" in text
    assert "excluded: status failed" in _run_rows(text, "pc/seed1.h5")[0]
    assert "excluded" not in _run_rows(text, "pc/seed0.h5")[0]
    assert "Left out of the aggregates and figures: `pc` seed 1 (status failed)" in text
    assert (out / "report" / "energy.png").is_file() and (
        out / "report" / "alignment.png"
    ).is_file()
    _, runs = read_study_folder(out)
    assert [r.included for r in runs] == [True, False]


def _run_rows(text, recording):
    """The per-run table rows of the run recorded at ``recording``."""
    return [line for line in text.splitlines() if f"| `{recording}` |" in line]


def test_compare_table(studies):
    a, b = studies
    table = compare_table([a, b])
    pc_a, _ = _expected(a, "pc")
    bp_a, bp_sd = _expected(a, "backprop")
    pc_b, _ = _expected(b, "pc", seeds=(0,))
    assert (
        f"| tiny-a | backprop | backprop | 2 | {100 * bp_a:.2f} ± {100 * bp_sd:.2f} | reference |"
        in table
    )
    diff = re.escape(f"{100 * (pc_a - bp_a):+.2f}")
    assert re.search(rf"\| tiny-a \| pc \| predictive_coding \| 2 \| [^|]+ \| {diff} \|", table)
    assert (
        f"| tiny-b | pc | predictive_coding | 1 | {100 * pc_b:.2f} ± 0.00 | n/a (no backprop) |"
        in table
    )
    assert table.splitlines()[1].startswith("| ---")


def test_figures_for_edge_cases(tmp_path):
    """One seed, a single epoch, an early-stopped energy trace, nothing to plot."""
    one = {
        "r": [
            {
                "epoch": np.array([1]),
                "train_loss": np.array([0.5]),
                "test_accuracy": np.array([0.3]),
            }
        ]
    }
    fig = plots.learning_curves(one)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2  # no validation panel
    energy = np.array([[3.0, 2.0, 1.0, np.nan], [2.0, 1.5, 1.0, 0.9]])
    fig = plots.energy({"r": [(np.array([0, 0]), energy)]})
    saved = plots.save(fig, tmp_path / "deep" / "energy.png")
    assert imread(saved).shape[0] > 100
    fig = plots.alignment({})
    plots.save(fig, tmp_path / "alignment.png")
    assert plots.rule_colors(["a", "b", "a"]) == {"a": plots.PALETTE[0], "b": plots.PALETTE[1]}


def test_interrupted_and_missing_runs(tmp_path):
    """A run killed mid-way (only a .partial file) and a run without a recording."""
    data = load("digits")
    model = cs.build(cs.HierarchySpec.from_sizes([64, 16, 10]), seed=0)
    scheduler = cs.Scheduler(
        model,
        cs.Backprop(),
        cs.Adam(lr=3e-3),
        data.x_train[:128],
        data.y_train[:128],
        batch_size=32,
        epochs=3,
        x_test=data.x_test[:100],
        y_test=data.y_test[:100],
    )

    def stop(event):
        if event.step == 5:
            raise KeyboardInterrupt

    scheduler.attach("after_learning", stop)
    with pytest.raises(KeyboardInterrupt):
        cs.run_recorded(scheduler, tmp_path / "bp" / "seed0.h5", [Probe("metric", "loss")])
    runs = [
        {
            "label": "bp",
            "rule": "backprop",
            "seed": 0,
            "recording": "bp/seed0.h5",
            "status": "running",
        },
        {
            "label": "bp",
            "rule": "backprop",
            "seed": 1,
            "recording": "bp/seed1.h5",
            "status": "complete",
        },
    ]
    (tmp_path / "study.json").write_text(json.dumps({"name": "cut", "runs": runs}))
    text = write_report(tmp_path).read_text()
    running = _run_rows(text, "bp/seed0.h5")[0]
    assert "| running | 1 |" in running and "excluded: status running" in running
    assert "excluded: no recording" in _run_rows(text, "bp/seed1.h5")[0]
    assert "| bp | backprop | 0 | — |" in text and "No complete run to plot." in text
    assert not (tmp_path / "report" / "learning_curves.png").exists()
