"""Study files: validation names the file and the key; a valid plan runs every
rule x seed; mutated files never give a traceback."""

import copy
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cortexsim import ConfigurationError, CortexsimError
from cortexsim.cli import main
from cortexsim.study.plan import load_study

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "studies" / "quickstart.toml"

TINY = """
[study]
name = "tiny"
seeds = [0, 1]

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
validation = 0.1
limit = 200

[schedule]
epochs = 2
batch_size = 50

[optimizer]
name = "adam"
lr = 0.01

[[rules]]
rule = "predictive_coding"
label = "pc"
[rules.inference]
steps = 5

[[rules]]
rule = "backprop"

[[probes]]
quantity = "alignment"
target = "all"

[[probes]]
quantity = "energy"
"""


def write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_quickstart_is_a_valid_plan():
    plan = load_study(QUICKSTART)
    assert plan.name == "quickstart" and plan.seeds == (0, 1, 2)
    assert [r.label for r in plan.rules] == ["pc", "pc_fixed_prediction", "fa", "dfa", "dtp", "ddtp", "backprop"]


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("seeds = [0, 1]", "seedz = [0, 1]", r"study\.seedz: unknown key; .*\(did you mean 'seeds'\?\)"),
        ("seeds = [0, 1]", "seeds = [0, -1]", r"study\.seeds\[1\]: expected a whole number >= 0, got -1"),
        ("seeds = [0, 1]", "seeds = []", r"study\.seeds: expected a non-empty list"),
        ("size = 8", "size = 0", r"model\.areas\[1\]\.size: expected a whole number >= 1, got 0"),
        ('name = "digits"', 'name = "digit"', r"data\.name: unknown value 'digit'; .*\(did you mean 'digits'\?\)"),
        ("validation = 0.1", "validation = 1.5", r"data\.validation: must be < 1\.0, got 1\.5"),
        ("epochs = 2", 'epochs = "two"', r"schedule\.epochs: expected a whole number >= 1, got 'two'"),
        ("batch_size = 50", "batch_sise = 50", r"schedule\.batch_sise: unknown key.*\(did you mean 'batch_size'\?\)"),
        ('name = "adam"', 'name = "adma"', r"optimizer\.name: unknown value 'adma'.*\(did you mean 'adam'\?\)"),
        ("lr = 0.01", "lr = -1", r"optimizer\.lr: must be > 0, got -1"),
        ('rule = "backprop"', 'rule = "backprob"', r"rules\[1\]\.rule: unknown value 'backprob'.*\(did you mean 'backprop'\?\)"),
        ('rule = "backprop"', 'rule = "backprop"\nloss = "mae"', r"rules\[1\]\.loss: unknown loss 'mae'; allowed: mse, cross_entropy \(did you mean 'mse'\?\)"),
        ('rule = "backprop"', 'rule = "backprop"\nfixed_prediction = true', r"rules\[1\]\.fixed_prediction: unknown key; allowed: rule, label, optimizer, loss"),
        ('rule = "backprop"', 'rule = "wake_sleep"', r"rules\[1\]\.rule: 'wake_sleep' learns without labels"),
        ("steps = 5", "steps = -1", r"rules\[0\]\.inference\.steps: expected a whole number >= 0, got -1"),
        ("steps = 5", "stepz = 5", r"rules\[0\]\.inference\.stepz: unknown key.*\(did you mean 'steps'\?\)"),
        ("steps = 5", 'steps = 5\nsolver = "rk4"', r"rules\[0\]\.inference\.solver: unknown value 'rk4'; allowed: euler, heun, adaptive"),
        ("steps = 5", "steps = 5\nrtol = 0", r"rules\[0\]\.inference\.rtol: must be > 0, got 0"),
        ('label = "pc"', 'label = "backprop"', r"rules\[1\]\.label: 'backprop' is used twice"),
        ('target = "all"', 'target = "hiden"', r"probes\[0\]\.target: unknown value 'hiden'.*\(did you mean 'hidden'\?\)"),
        ('quantity = "energy"', 'quantity = "enrgy"', r"probes\[1\]\.quantity: unknown value 'enrgy'"),
        ("[optimizer]", "[optimiser]", r"study file\.optimiser: unknown key.*\(did you mean 'optimizer'\?\)"),
        ("[data]", '[outputs]\nreport = "yes"\n[data]', r"outputs\.report: expected true or false, got 'yes'"),
        ("[data]", '[outputs]\nrepot = true\n[data]', r"outputs\.repot: unknown key.*\(did you mean 'report'\?\)"),
        ("batch_size = 50", 'batch_size = 50\nlearning_rate = {kind = "stpe"}', r"schedule\.learning_rate\.kind: unknown value 'stpe'.*\(did you mean 'step'\?\)"),
        ("batch_size = 50", 'batch_size = 50\nlearning_rate = {kind = "step", evry = 2}', r"schedule\.learning_rate\.evry: unknown key.*\(did you mean 'every'\?\)"),
        ("batch_size = 50", 'batch_size = 50\nlearning_rate = {kind = "exponential", gamma = -1}', r"schedule\.learning_rate\.gamma: must be > 0"),
        ('name = "adam"', 'name = "rmsprop"\ncentred = true', r"optimizer\.centred: unknown key.*\(did you mean 'centered'\?\)"),
    ],
)
def test_each_mistake_names_the_file_and_the_key(tmp_path, old, new, message):
    assert old in TINY
    path = write(tmp_path, TINY.replace(old, new, 1))
    with pytest.raises(ConfigurationError, match=rf"^{tmp_path}/study\.toml: {message}"):
        load_study(path)


def test_missing_files_and_bad_toml(tmp_path):
    with pytest.raises(ConfigurationError, match=r"nowhere\.toml: no such study file"):
        load_study(tmp_path / "nowhere.toml")
    with pytest.raises(ConfigurationError, match=r"study\.toml: not valid TOML"):
        load_study(write(tmp_path, "[study\nname="))
    text = TINY.replace("[model]\n", '[model]\npath = "missing.toml"\n', 1)
    text = text[: text.index("[[model.areas]]")] + text[text.index("[data]"):]
    with pytest.raises(ConfigurationError, match=r"model\.path: no model file at .*missing\.toml"):
        load_study(write(tmp_path, text))


def test_model_by_path_relative_to_the_study_file(tmp_path):
    text = TINY[: TINY.index("[model]")] + '[model]\npath = "../models/pc_mlp_mnist.toml"\n' + TINY[TINY.index("[data]"):]
    folder = tmp_path / "studies"
    folder.mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "pc_mlp_mnist.toml").write_text((ROOT / "models" / "pc_mlp_mnist.toml").read_text())
    plan = load_study(write(folder, text.replace('target = "all"', 'target = "all"')))
    assert plan.model.sizes == (784, 256, 256, 10)
    assert plan.model.weight_init == "glorot_uniform"
    # the study may start the file's weights another way; the areas stay the file's
    plan = load_study(write(folder, text.replace('[model]\n', '[model]\nweight_init = "orthogonal"\n', 1)))
    assert plan.model.sizes == (784, 256, 256, 10) and plan.model.weight_init == "orthogonal"
    with pytest.raises(ConfigurationError, match=r"model\.weight_init: unknown value 'orthogonall'"):
        load_study(write(folder, text.replace('[model]\n', '[model]\nweight_init = "orthogonall"\n', 1)))
    with pytest.raises(ConfigurationError, match=r"model\.areas: unknown key"):
        load_study(write(folder, text.replace('[model]\n', '[model]\nareas = []\n', 1)))


def test_cli_exit_code_2_without_traceback(tmp_path, capsys):
    path = write(tmp_path, TINY.replace("epochs = 2", "epochs = 0"))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "schedule.epochs: expected a whole number >= 1, got 0" in err and "Traceback" not in err


def test_run_writes_every_rule_and_seed_and_resume_skips_them(tmp_path, capsys):
    path = write(tmp_path, TINY)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    index = json.loads((out / "study.json").read_text())
    assert [(r["label"], r["seed"], r["status"]) for r in index["runs"]] == [
        ("pc", 0, "complete"), ("pc", 1, "complete"), ("backprop", 0, "complete"), ("backprop", 1, "complete"),
    ]
    assert (out / "study.toml").read_text() == TINY
    import cortexsim as cs

    with cs.open(out / "pc" / "seed0.h5") as rec:
        assert {"all.alignment", "energy"} <= set(rec.probes)
        assert rec.config["label"] == "pc" and rec.config["seed"] == 0
        assert len(rec.metrics["validation_accuracy"]) == 2
    with cs.open(out / "backprop" / "seed1.h5") as rec:
        assert "energy" not in rec.probes  # backprop has no relaxation: the probe is skipped
    # identical initial weights and data per seed: the first batch's feedforward loss agrees
    with cs.open(out / "pc" / "seed0.h5") as a, cs.open(out / "backprop" / "seed0.h5") as b:
        np.testing.assert_allclose(a.metrics["train_loss"][0], b.metrics["train_loss"][0], rtol=0.5)
    before = (out / "pc" / "seed0.h5").stat().st_mtime_ns
    assert main(["run", str(path), "--out", str(out), "--quiet", "--resume"]) == 0
    assert (out / "pc" / "seed0.h5").stat().st_mtime_ns == before


def test_resume_reruns_a_complete_run_whose_recording_was_damaged_since(tmp_path, capsys):
    import cortexsim as cs

    path = write(tmp_path, TINY.replace("seeds = [0, 1]", "seeds = [0]"))
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    recording = out / "pc" / "seed0.h5"
    with cs.open(recording) as rec:
        want = {name: np.array(v) for name, v in rec.metrics.items() if name != "seconds"}
    raw = recording.read_bytes()
    recording.write_bytes(raw[: len(raw) // 2])  # a copy cut short
    assert main(["run", str(path), "--out", str(out), "--quiet", "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"{recording}: the recording is damaged" in err and "kept aside as seed0.h5.damaged" in err
    assert (out / "pc" / "seed0.h5.damaged").read_bytes() == raw[: len(raw) // 2]  # kept, not deleted
    with cs.open(recording) as rec:  # run again from the beginning: the same numbers
        for name, values in want.items():
            np.testing.assert_array_equal(rec.metrics[name], values, err_msg=name)
    assert main(["run", str(path), "--out", str(out), "--quiet", "--resume"]) == 0  # now intact: not rerun
    assert "damaged" not in capsys.readouterr().err


def test_cli_resume_continues_a_killed_run_bit_identically(tmp_path):
    path = write(tmp_path, TINY.replace("seeds = [0, 1]", "seeds = [0]").replace("epochs = 2", "epochs = 3"))
    reference = tmp_path / "reference"
    assert main(["run", str(path), "--out", str(reference), "--quiet"]) == 0
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    # Turn the finished pc run back into one killed after its first epoch's checkpoint.
    import cortexsim as cs
    from cortexsim.sim.checkpoint import load_checkpoint, save_checkpoint
    from cortexsim.recording.writer import _rewrite, partial_path

    recording = out / "pc" / "seed0.h5"
    checkpoint = out / "pc" / "seed0.ckpt.npz"
    with cs.open(recording) as rec:
        cursors = {name: int(np.sum(p.epoch < 1)) for name, p in rec.probes.items()}
    recording.rename(partial_path(recording))
    _rewrite(partial_path(recording), cursors, 1)
    state, _ = load_checkpoint(checkpoint)
    # Replay the first epoch alone to get the checkpoint of that moment.
    short = tmp_path / "short"
    assert main(["run", str(write(tmp_path, TINY.replace("seeds = [0, 1]", "seeds = [0]").replace("epochs = 2", "epochs = 1"), "short.toml")), "--out", str(short), "--quiet"]) == 0
    state, extra = load_checkpoint(short / "pc" / "seed0.ckpt.npz")
    extra = {"cursors": cursors, "metric_rows": 1}
    save_checkpoint(checkpoint, state, extra)
    assert main(["run", str(path), "--out", str(out), "--quiet", "--resume"]) == 0
    with cs.open(reference / "pc" / "seed0.h5") as ref, cs.open(recording) as got:
        for name, probe in ref.probes.items():
            np.testing.assert_array_equal(got[name].to_numpy(), probe.to_numpy(), err_msg=name)
        for name, values in ref.metrics.items():
            if name == "seconds":  # wall time: measured, never reproduced
                continue
            np.testing.assert_array_equal(got.metrics[name], values, err_msg=name)


DOCUMENT = tomllib.loads(TINY)


def _mutations():
    leaves = st.one_of(
        st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=6),
        st.lists(st.integers(-2, 3), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    )
    return st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(["set", "delete", "rename"]), leaves), min_size=1, max_size=4)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


def _mutate(document, mutations):
    doc = copy.deepcopy(document)
    for pick, action, value in mutations:
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = paths[pick % len(paths)]
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        if action == "set":
            parent[key] = value
        elif action == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[str(key) + "x"] = parent.pop(key)
    return doc


def _to_toml(value, prefix=""):
    """A tiny TOML writer for the mutated documents (inline tables throughout)."""
    def scalar(v):
        if v is None:
            return '"None"'
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int,)):
            return str(v)
        if isinstance(v, float):
            return "nan" if v != v else ("inf" if v == float("inf") else "-inf" if v == float("-inf") else repr(v))
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(str(k))} = {scalar(x)}" for k, x in v.items()) + "}"
        raise TypeError(v)
    return "\n".join(f"{json.dumps(str(k))} = {scalar(v)}" for k, v in value.items()) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=_mutations())
def test_mutated_study_files_never_give_a_traceback(tmp_path, mutations):
    document = _mutate(DOCUMENT, mutations)
    path = tmp_path / "mutated.toml"
    path.write_text(_to_toml(document))
    try:
        plan = load_study(path)
    except CortexsimError as exc:
        assert str(exc).startswith(str(path))
    else:
        assert plan.rules and plan.seeds


def test_run_then_report_end_to_end_through_the_cli(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(write(tmp_path, TINY)), "--out", str(out), "--quiet", "--seeds", "3,4"]) == 0
    assert main(["report", str(out)]) == 0
    report = out / "report"
    for name in ("learning_curves.png", "alignment.png", "energy.png", "summary.md"):
        assert (report / name).stat().st_size > 1000, name
    summary = (report / "summary.md").read_text()
    assert "| pc |" in summary and "| backprop |" in summary
    index = json.loads((out / "study.json").read_text())
    assert sorted({r["seed"] for r in index["runs"]}) == [3, 4]
    assert main(["compare", str(out), str(out)]) == 0
    assert "backprop" in capsys.readouterr().out


def test_an_existing_study_is_not_overwritten_by_accident(tmp_path, capsys):
    path = write(tmp_path, TINY.replace("seeds = [0, 1]", "seeds = [0]").replace("epochs = 2", "epochs = 1"))
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "pc/seed0.h5 exists already: continue the study with --resume" in err
    assert main(["run", str(path), "--out", str(out), "--quiet", "--overwrite"]) == 0


def test_parallel_runs_on_dask_match_the_serial_ones(tmp_path):
    pytest.importorskip("dask.distributed")
    path = write(tmp_path, TINY)
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    assert main(["run", str(path), "--out", str(serial), "--quiet"]) == 0
    assert main(["run", str(path), "--out", str(parallel), "--quiet", "--workers", "2"]) == 0
    index = json.loads((parallel / "study.json").read_text())
    assert [r["status"] for r in index["runs"]] == ["complete"] * 4
    import cortexsim as cs

    for run in index["runs"]:
        with cs.open(serial / run["recording"]) as a, cs.open(parallel / run["recording"]) as b:
            for name, values in a.metrics.items():
                if name == "seconds":  # wall time: measured, never reproduced
                    continue
                np.testing.assert_allclose(b.metrics[name], values, rtol=1e-5, err_msg=name)


def test_command_line_overrides_replace_values_and_are_validated(tmp_path):
    path = write(tmp_path, TINY)
    plan = load_study(path, overrides=["schedule.epochs=7", "data.name=mnist", "rules[0].inference.steps=3",
                                       "optimizer.lr=1e-3", "study.seeds=[4, 5, 6]"])
    assert plan.schedule["epochs"] == 7 and plan.data["name"] == "mnist" and plan.seeds == (4, 5, 6)
    assert plan.rules[0].settings["inference"]["steps"] == 3
    assert plan.rules[1].optimizer["lr"] == 1e-3
    assert plan.to_dict()["overrides"][0] == "schedule.epochs=7"
    with pytest.raises(ConfigurationError, match=r"study\.toml: schedule\.epochs: expected a whole number >= 1, "
                                                 r"got 0 \(set on the command line: --set schedule\.epochs=0\)"):
        load_study(path, overrides=["schedule.epochs=0"])
    with pytest.raises(ConfigurationError, match=r"schedule\.epocs: unknown key.*did you mean 'epochs'"):
        load_study(path, overrides=["schedule.epocs=3"])
    with pytest.raises(ConfigurationError, match=r"--set 'rules\[5\]\.label=x': rules has 2 entries"):
        load_study(path, overrides=["rules[5].label=x"])
    with pytest.raises(ConfigurationError, match=r"--set 'epochs': expected KEY=VALUE"):
        load_study(path, overrides=["epochs"])
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet", "--set", "schedule.epochs=1",
                 "--set", "study.seeds=[3]"]) == 0
    index = json.loads((out / "study.json").read_text())
    assert {r["seed"] for r in index["runs"]} == {3}


VAE_STUDY = """
[study]
name = "tiny_vae"
seeds = [0]

[model]
[[model.areas]]
name = "pixels"
size = 64
[[model.areas]]
name = "hidden"
size = 16
feedback_activation = "tanh"
[[model.areas]]
name = "latent"
size = 4
activation = "linear"
stochastic = true

[data]
name = "digits"
validation = 0.1
limit = 300
binarize = "dynamic"

[schedule]
epochs = 2
batch_size = 50

[optimizer]
name = "adam"
lr = 0.01

[[rules]]
rule = "elbo"
label = "vae"

[[rules]]
rule = "elbo"
label = "ladder_iwae"
k = 3
posterior = "ladder"
warmup = 5

[[probes]]
quantity = "kl"
target = "latent"

[[probes]]
quantity = "metric"
target = "reconstruction"

[[probes]]
quantity = "prediction"
target = "pixels"
samples = 2
"""


def test_an_unsupervised_study_runs_the_elbo_on_binarized_digits(tmp_path):
    import cortexsim as cs

    out = tmp_path / "out"
    assert main(["run", str(write(tmp_path, VAE_STUDY)), "--out", str(out), "--quiet"]) == 0
    index = json.loads((out / "study.json").read_text())
    assert [(r["label"], r["status"]) for r in index["runs"]] == [("vae", "complete"), ("ladder_iwae", "complete")]
    with cs.open(out / "vae" / "seed0.h5") as rec:
        assert {"latent.kl", "reconstruction.metric", "pixels.prediction"} <= set(rec.probes)
        assert rec["latent.kl"].shape == (12, 4) and np.all(rec["latent.kl"].to_numpy() >= 0)
        for name in ("train_loss", "energy", "validation_loss", "test_loss"):
            values = np.asarray(rec.metrics[name])
            assert values.shape == (2,) and np.all(np.isfinite(values)), name
        assert "test_accuracy" not in rec.metrics  # no labels for a generative rule
        # measured: 41.1 -> 35.6 nats per held-out image (44.4 at p = 1/2 per pixel)
        assert rec.metrics["test_loss"][-1] < rec.metrics["test_loss"][0] < 60


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('label = "ladder_iwae"', 'label = "ladder_iwae"\nloss = "mse"',
         r"rules\[1\]\.loss: unknown key; allowed: rule, label, optimizer, beta, warmup"),
        ("k = 3", "k = 0", r"rules\[1\]\.k: expected a whole number >= 1, got 0"),
        ('posterior = "ladder"', 'posterior = "laddr"', r"rules\[1\]\.posterior: unknown value 'laddr'.*\(did you mean 'ladder'\?\)"),
        ('binarize = "dynamic"', 'binarize = "dynamc"', r"data\.binarize: unknown value 'dynamc'.*\(did you mean 'dynamic'\?\)"),
        ('rule = "elbo"\nlabel = "vae"', 'rule = "backprop"\nlabel = "vae"',
         r"rules\[1\]\.rule: 'elbo' learns without labels, while rules\[0\] \('vae'\) learns from them"),
        ("stochastic = true", "stochastic = 1", r"model\.areas\[2\]\.stochastic: expected true or false, got 1"),
    ],
)
def test_unsupervised_study_mistakes_name_the_key(tmp_path, old, new, message):
    assert old in VAE_STUDY
    path = write(tmp_path, VAE_STUDY.replace(old, new, 1))
    with pytest.raises(ConfigurationError, match=rf"^{tmp_path}/study\.toml: {message}"):
        load_study(path)


def test_the_vae_mnist_study_is_a_valid_plan():
    plan = load_study(ROOT / "studies" / "vae_mnist.toml")
    assert [r.label for r in plan.rules] == ["vae", "iwae_k5", "wake_sleep", "rws_k5"]
    assert [r.rule for r in plan.rules] == ["elbo", "elbo", "reweighted_wake_sleep", "reweighted_wake_sleep"]
    assert plan.data["binarize"] == "dynamic"
    assert plan.model.sizes == (784, 200, 200, 50) and plan.model.areas[-1].stochastic


def test_the_relaxation_solver_is_a_study_key(tmp_path):
    path = write(tmp_path, TINY.replace("steps = 5", 'steps = 5\nsolver = "adaptive"\nrtol = 1e-4', 1))
    plan = load_study(path)
    inference = plan.rules[0].settings["inference"]
    assert inference["solver"] == "adaptive" and inference["rtol"] == 1e-4
