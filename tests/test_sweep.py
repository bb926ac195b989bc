"""[sweep]: each rule's setting is chosen on tuning seeds from validation scores
alone, then run on held-out seeds; --resume skips finished sweep runs; bad
sweep keys are named."""

import json
from pathlib import Path

import numpy as np
import pytest

import cortexsim as cs
from cortexsim import ConfigurationError
from cortexsim.report.summary import write_report
from cortexsim.study.plan import load_study
from cortexsim.study.runner import run_study
from cortexsim.study.tuning import score_of

LRS = [1e-4, 1e-3, 1e-2, 3e-2]

STUDY = f"""
[study]
name = "sweep"
seeds = [0]

[model]
[[model.areas]]
name = "pixels"
size = 64
[[model.areas]]
name = "hidden"
size = 8
[[model.areas]]
name = "labels"
size = 10
activation = "linear"

[data]
name = "digits"
validation = 0.2
limit = 120

[schedule]
epochs = 1
batch_size = 40

[optimizer]
name = "adam"
lr = 0.01

[[rules]]
rule = "predictive_coding"
label = "pc"
[rules.inference]
steps = 3

[[rules]]
rule = "backprop"

[sweep]
tuning_seeds = [10, 11]
optimizer.lr = {LRS}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


def test_sweep_chooses_from_validation_and_runs_the_choice_on_held_out_seeds(tmp_path):
    plan = load_study(write(tmp_path, STUDY))
    out = tmp_path / "out"
    started = []
    run_study(plan, out, progress=lambda title, scheduler: started.append(title))
    assert len(started) == 2 * 4 * 2 + 2  # every point x rule x tuning seed, then the final runs
    sweep = json.loads((out / "sweep.json").read_text())
    index = json.loads((out / "study.json").read_text())
    for label in ("pc", "backprop"):
        points = sweep["rules"][label]["points"]
        assert [p["setting"]["optimizer.lr"] for p in points] == LRS
        means = []
        for p in points:  # the recorded validation scores, read back from the recordings
            scores = []
            for seed in (10, 11):
                with cs.open(out / p["folder"] / label / f"seed{seed}.h5") as rec:
                    assert rec.config["seed"] == seed
                    scores.append(score_of(rec.metrics, "validation_accuracy", "max"))
            means.append(np.mean(scores))
        np.testing.assert_allclose([p["score"] for p in points], means)
        best = LRS[int(np.argmax(means))]
        assert sweep["rules"][label]["chosen"] == {"optimizer.lr": best}
        assert index["plan"]["sweep"]["chosen"][label] == {"optimizer.lr": best}
        rule = next(r for r in index["plan"]["rules"] if r["label"] == label)
        assert rule["optimizer"]["lr"] == best
        with cs.open(out / label / "seed0.h5") as rec:  # the final run: held-out seed, chosen lr
            assert rec.config["seed"] == 0
            assert next(r for r in rec.config["study"]["rules"] if r["label"] == label)["optimizer"]["lr"] == best
    assert [(r["label"], r["seed"]) for r in index["runs"]] == [("pc", 0), ("backprop", 0)]
    summary = write_report(out).read_text()
    assert "## Sweep" in summary and (out / "report" / "sweep.png").is_file()

    # --resume: nothing of the sweep (nor the final runs) runs again
    before = (out / sweep["rules"]["pc"]["points"][0]["folder"] / "pc" / "seed10.h5").stat().st_mtime_ns
    started.clear()
    run_study(plan, out, resume=True, progress=lambda title, scheduler: started.append(title))
    assert started == []
    assert (out / sweep["rules"]["pc"]["points"][0]["folder"] / "pc" / "seed10.h5").stat().st_mtime_ns == before
    assert json.loads((out / "sweep.json").read_text())["rules"]["pc"]["chosen"] == sweep["rules"]["pc"]["chosen"]


@pytest.mark.parametrize("old, new, message", [
    ("optimizer.lr =", "optimizer.lrr =", r"sweep\.optimizer\.lrr: unknown key"),
    ("tuning_seeds = [10, 11]", "tuning_seeds = [0, 11]", r"sweep\.tuning_seeds: 0 also in study\.seeds"),
    ("optimizer.lr =", "rules.pcx.optimizer.lr =", r"sweep\.rules\.pcx\.optimizer\.lr: write rules\.LABEL\.KEY"),
    ("optimizer.lr =", "rules.pc.inference.stepz =", r"sweep\.rules\.pc\.inference\.stepz: unknown key"),
    ("optimizer.lr =", "schedule.epochs =", r"sweep\.schedule\.epochs: a sweep tunes the rules' settings"),
    ("tuning_seeds = [10, 11]", "", r"sweep\.tuning_seeds: required key is missing"),
    ("optimizer.lr = [", "kind = 'random'\nsamples = 3\noptimizer.lr = [", None),
])
def test_sweep_mistakes_name_the_key(tmp_path, old, new, message):
    path = write(tmp_path, STUDY.replace(old, new, 1))
    if message is None:
        plan = load_study(path)
        assert len(plan.sweep.points["pc"]) <= 3
        return
    with pytest.raises(ConfigurationError, match=rf"^{tmp_path}/study\.toml: {message}"):
        load_study(path)


def test_random_sweep_draws_log_uniform_rates_per_rule_keys(tmp_path):
    text = STUDY.replace(f"optimizer.lr = {LRS}", "kind = 'random'\nseed = 3\nsamples = 5\n"
                         "optimizer.lr = {min = 1e-4, max = 1e-1}\nrules.pc.inference.step_size = [0.05, 0.1]")
    plan = load_study(write(tmp_path, text))
    assert plan.sweep.points == load_study(tmp_path / "study.toml").sweep.points  # deterministic from seed
    for point in plan.sweep.points["pc"]:
        assert 1e-4 <= dict(point)["optimizer.lr"] <= 1e-1
    assert all(len(point) == 1 for point in plan.sweep.points["backprop"])  # pc's own key is pc's alone
    spec = plan.sweep.specs["pc"][0]
    assert spec.settings["inference"]["step_size"] == dict(plan.sweep.points["pc"][0])["rules.pc.inference.step_size"]
    with pytest.raises(ConfigurationError, match="held out"):
        run_study(plan, tmp_path / "out", seeds=[10])


def test_the_report_says_when_a_choice_sits_at_the_edge_of_the_range():
    from cortexsim.report.sweep import _at_the_edge

    def row(chosen, values):
        return {"chosen": {"optimizer.lr": chosen},
                "points": [{"setting": {"optimizer.lr": v}} for v in values]}

    rules = {"inside": row(1e-2, [1e-3, 1e-2, 1e-1]), "top": row(1e-1, [1e-3, 1e-2, 1e-1]),
             "bottom": row(1e-3, [1e-3, 1e-2, 1e-1]), "two": row(1e-1, [1e-2, 1e-1])}
    assert _at_the_edge(rules) == ["top `optimizer.lr` = 0.1 (the highest tried)",
                                   "bottom `optimizer.lr` = 0.001 (the lowest tried)"]


def test_on_dask_every_point_of_the_sweep_runs_at_once_and_matches_the_serial_sweep(tmp_path, monkeypatch):
    pytest.importorskip("dask.distributed")
    from cortexsim.study import cluster

    plan = load_study(write(tmp_path, STUDY.replace(f"optimizer.lr = {LRS}", "optimizer.lr = [1e-3, 1e-2]")))
    run_study(plan, tmp_path / "serial")
    sent = []
    submit = cluster.run_on_cluster

    def counted(client, attempt, jobs, data_dir, done):
        sent.append(len(jobs))
        return submit(client, attempt, jobs, data_dir, done)

    monkeypatch.setattr(cluster, "run_on_cluster", counted)
    run_study(plan, tmp_path / "dask", workers=2)
    assert sent == [2 * 2 * 2, 2]  # all points x rules x tuning seeds in one batch, then the final runs
    serial, dask = (json.loads((tmp_path / f / "sweep.json").read_text()) for f in ("serial", "dask"))
    assert dask["rules"] == serial["rules"]
    for label in ("pc", "backprop"):
        with cs.open(tmp_path / "serial" / label / "seed0.h5") as a, cs.open(tmp_path / "dask" / label / "seed0.h5") as b:
            np.testing.assert_array_equal(a.metrics["train_loss"], b.metrics["train_loss"])
