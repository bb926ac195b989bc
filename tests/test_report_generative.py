"""The generative part of a study report: a tiny β sweep on the procedural shapes,
run through the command line, then its figures, tables and numbers checked
against an independent recomputation from the checkpoints."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.image import imread

import cortexsim as cs
from cortexsim.sim.checkpoint import load_checkpoint
from cortexsim.cli import main
from cortexsim.data import load
from cortexsim.errors import ConfigurationError
from cortexsim.inference import log_likelihood_estimate
from cortexsim.inference.variational import decode, forward, sigmoid
from cortexsim.study.plan import load_study
from cortexsim.report.trained_models import held_out, posterior, posterior_means
from vae_reference import draw_noise, negative_bound

LABELS = ("beta1", "beta4")
K, IMAGES, N = 20, 50, 500

STUDY = """
[study]
name = "tiny_beta_vae"
seeds = [0]

[outputs]
log_likelihood = {k = 20, images = 50}
disentanglement = {images = 300, train_votes = 40, test_votes = 20, pairs = 4}
report = true

[[model.areas]]
name = "pixels"
size = 4096

[[model.areas]]
name = "h1"
size = 16
activation = "relu"
feedback_activation = "tanh"

[[model.areas]]
name = "z"
size = 4
activation = "linear"
stochastic = true

[data]
name = "shapes"
n = 500                 # 400 training and 100 test images
validation = 0.0

[schedule]
epochs = 1
batch_size = 50
checkpoint_every = 0

[[rules]]
rule = "elbo"
label = "beta1"

[[rules]]
rule = "elbo"
label = "beta4"
beta = 4.0
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The tiny study run by ``cortexsim run`` (which writes the report)."""
    root = tmp_path_factory.mktemp("beta_vae")
    path = root / "study.toml"
    path.write_text(STUDY)
    out = root / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    return out


def _summary(out):
    return (out / "report" / "summary.md").read_text()


def _table(text, heading):
    """Rows (lists of cells) of the first Markdown table after ``heading``."""
    rest = text[text.index(heading):].splitlines()
    start = next(i for i, line in enumerate(rest) if line.startswith("|"))
    rows = []
    for line in rest[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_figures_exist_and_are_not_blank(study):
    folder = study / "report" / "generative"
    for label in LABELS:
        for what in ("samples", "reconstructions", "traversals", "kl_per_unit"):
            image = imread(folder / f"{label}_{what}.png")
            assert image.ndim == 3 and image[..., :3].std() > 0.02, (label, what)
            assert f"generative/{label}_{what}.png" in _summary(study)
    image = imread(folder / "disentanglement_vs_beta.png")
    assert image[..., :3].std() > 0.02


def test_disentanglement_table_has_a_row_per_label(study):
    rows = _table(_summary(study), "### Disentanglement")
    assert [row[0] for row in rows] == list(LABELS)
    assert [row[1] for row in rows] == ["1", "4"]  # β from the rule settings
    for row in rows:
        mig = float(row[3].split("±")[0])
        accuracy = float(row[4].split("±")[0])
        assert 0.0 <= mig <= 1.0 and 0.0 <= accuracy <= 100.0


def test_generative_study_has_no_accuracy_table(study):
    text = _summary(study)
    assert "## Test accuracy per rule" not in text
    assert "excluded" not in text and "2 complete and included" in text


def test_log_likelihood_equals_an_independent_recomputation(study):
    rows = {row[0]: row for row in _table(_summary(study), "## Generative models")}
    x = load("shapes", n=N).x_test[:IMAGES]
    plan = load_study(study / "study.toml")
    for label in LABELS:
        model = cs.build(plan.model, dtype="float32", seed=0)
        state, _ = load_checkpoint(study / label / "seed0.ckpt.npz")
        model.load_parameters(state["parameters"])
        # The importance-weighted bound written out in NumPy (tests/vae_reference.py),
        # in float64, on the noise the estimate draws: a generator seeded 0, one
        # (k * images, n_l) standard normal per stochastic area, bottom first.
        params = {key: value.astype(np.float64) for key, value in model.parameters_to_numpy().items()}
        noise = draw_noise(plan.model, np.random.default_rng(0), K * IMAGES)
        expected = -negative_bound(plan.model, params, x.astype(np.float64), noise, kl="sampled", k=K)
        assert float(np.mean(log_likelihood_estimate(model, x, k=K, seed=0))) == pytest.approx(expected, abs=1e-3)
        shown = float(rows[label][5].split("±")[0])
        assert shown == pytest.approx(expected, abs=0.006), label
        cached = json.loads((study / label / "seed0.generative.json").read_text())
        assert cached["log_likelihood"]["settings"] == {"k": K, "images": IMAGES, "seed": 0}
        assert cached["log_likelihood"]["value"] == pytest.approx(expected, abs=1e-3)


def test_cached_numbers_are_not_recomputed(study):
    from cortexsim.report.trained_models import cached

    def fail():
        raise AssertionError("recomputed despite the cache")

    settings = {"k": K, "images": IMAGES, "seed": 0}
    stored = json.loads((study / "beta1" / "seed0.generative.json").read_text())
    assert cached(study, "beta1", 0, "log_likelihood", settings, fail) == stored["log_likelihood"]["value"]
    assert set(stored["disentanglement"]["value"]) == {"MIG", "beta_vae", "D", "C", "I"}
    calls = []
    value = cached(study, "beta1", 0, "log_likelihood", {**settings, "k": K + 1}, lambda: calls.append(1) or 1.5)
    assert value == 1.5 and calls == [1]  # other settings: computed again


@pytest.mark.parametrize("data, shape", [
    ({"name": "digits", "binarize": "dynamic"}, (8, 8)),
    ({"name": "shapes", "n": 40}, (64, 64)),
])
def test_held_out_images_are_those_the_runner_evaluates(data, shape):
    from cortexsim.study.runner import _data

    data = {"validation": 0.1, "data_dir": None, "limit": 0, **data}
    x, found = held_out(data, seed=3)
    assert found == shape
    np.testing.assert_array_equal(x, _data(SimpleNamespace(data=data), 3, None)[4])


def test_decode_is_the_generative_half_of_forward():
    model = cs.build({"areas": [{"name": "x", "size": 12}, {"name": "h", "size": 5, "activation": "tanh",
                                 "feedback_activation": "tanh"},
                                {"name": "z", "size": 3, "stochastic": True}]}, seed=1)
    x = (np.random.default_rng(0).random((7, 12)) > 0.5).astype(np.float32)
    noise = [None, None, np.random.default_rng(1).standard_normal((7, 3)).astype(np.float32)]
    p = forward(model, x, noise)
    np.testing.assert_allclose(decode(model, p.z[2]), sigmoid(np, p.out), rtol=1e-6)


@pytest.mark.parametrize("kind", ["bottom_up", "ladder"])
def test_posterior_means_are_those_of_forward(kind):
    model = cs.build({"areas": [{"name": "x", "size": 12},
                                {"name": "z1", "size": 4, "stochastic": True},
                                {"name": "h", "size": 5, "activation": "tanh", "feedback_activation": "tanh"},
                                {"name": "z2", "size": 3, "stochastic": True}]}, seed=2)
    rule = cs.rules.RULES["elbo"](posterior=kind)
    x = (np.random.default_rng(0).random((9, 12)) > 0.5).astype(np.float32)
    np.testing.assert_allclose(posterior_means(model, x), posterior(model, rule, x)["mean"], rtol=1e-6)


@pytest.mark.parametrize(
    "setting, message",
    [
        ("log_likelihood = {k = 0}", r"outputs\.log_likelihood\.k: expected a whole number >= 1, got 0"),
        ("log_likelihood = {kk = 5}", r"outputs\.log_likelihood\.kk: unknown key; allowed: k, images"),
        ("log_likelihood = 5", r"outputs\.log_likelihood: expected a table of settings, got 5"),
        ("disentanglement = {pairs = 0}", r"outputs\.disentanglement\.pairs: expected a whole number >= 1"),
    ],
)
def test_report_options_are_validated(tmp_path, setting, message):
    path = tmp_path / "study.toml"
    line = setting.split(" =")[0]
    text = re.sub(rf"^{line} = .*$", setting, STUDY, count=1, flags=re.MULTILINE)
    assert setting in text
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=f"study.toml: {message}"):
        load_study(path)


def test_log_likelihood_needs_variational_rules(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text("[outputs]\nlog_likelihood = true\n[model]\n[[model.areas]]\nname = 'x'\nsize = 64\n"
                    "[[model.areas]]\nname = 'y'\nsize = 10\n[[rules]]\nrule = 'backprop'\n")
    with pytest.raises(ConfigurationError, match=r"outputs\.log_likelihood: .* rules\[0\] \('backprop'\)"):
        load_study(path)


def test_disentanglement_needs_factors(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(STUDY.replace('name = "shapes"\nn = 500', 'name = "digits"'))
    with pytest.raises(ConfigurationError, match=r"outputs\.disentanglement: .* not 'digits'"):
        load_study(path)
    path.write_text(re.sub(r"^disentanglement = .*$", "disentanglement = false", path.read_text(), flags=re.MULTILINE))
    assert load_study(path).to_dict()["outputs"]["disentanglement"] is False


def test_plan_keeps_the_report_options(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(STUDY)
    outputs = load_study(path).to_dict()["outputs"]
    assert outputs == {"log_likelihood": {"k": 20, "images": 50},
                       "disentanglement": {"images": 300, "train_votes": 40, "test_votes": 20, "pairs": 4}}


def test_the_beta_vae_study_file_is_valid():
    from pathlib import Path

    plan = load_study(Path(__file__).resolve().parents[1] / "studies" / "beta_vae_shapes.toml")
    assert [r.label for r in plan.rules] == ["beta1", "beta4", "beta8"]
    assert [r.settings["beta"] for r in plan.rules] == [1.0, 4.0, 8.0]
    assert {r.settings["likelihood"] for r in plan.rules} == {"bernoulli"}
    assert plan.model.sizes == (4096, 256, 256, 10) and plan.data["name"] == "shapes"
    assert "binarize" not in plan.data  # the shapes are binary already
    assert set(np.unique(load("shapes", n=50).x_train)) <= {0.0, 1.0}


TWO_LEVELS = """
[study]
name = "tiny_hierarchy"
seeds = [0]

[outputs]
refinement = {steps = 30, step_size = 0.05, samples = 4, k = 10, images = 60}
report = true

[[model.areas]]
name = "pixels"
size = 64

[[model.areas]]
name = "h1"
size = 16
activation = "tanh"
feedback_activation = "tanh"

[[model.areas]]
name = "z1"
size = 6
activation = "linear"
stochastic = true

[[model.areas]]
name = "z2"
size = 3
activation = "linear"
stochastic = true

[data]
name = "digits"
binarize = "static"
validation = 0.0

[schedule]
epochs = 3
batch_size = 32
checkpoint_every = 0

[[rules]]
rule = "elbo"
label = "vae"

[[rules]]
rule = "generative_hybrid"
label = "hybrid"
steps = 3
"""


def test_every_level_and_the_amortization_gap_are_reported(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(TWO_LEVELS)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 0
    text = _summary(out)
    main_rows = {row[0]: row for row in _table(text, "## Generative models")}
    levels = {row[0]: row for row in _table(text, "### Every stochastic level")}
    gaps = {row[0]: row for row in _table(text, "### The amortization gap closed by iterative inference")}
    assert set(levels) == set(gaps) == {"vae", "hybrid"}
    value = lambda cell: float(cell.split("±")[0])  # noqa: E731
    for label in ("vae", "hybrid"):
        kl_z1, active_z1, kl_z2, active_z2 = (value(c) for c in levels[label][2:6])
        assert kl_z1 > 0 and kl_z2 >= 0 and 0 <= active_z1 <= 6 and 0 <= active_z2 <= 3
        assert kl_z2 == pytest.approx(value(main_rows[label][5]), abs=0.011)  # the top area's KL, both tables
        amortized, refined, closed, iw_amortized, iw_refined = (value(c) for c in gaps[label][2:7])
        assert closed == pytest.approx(refined - amortized, abs=0.011)
        assert refined > amortized, gaps[label]  # 30 ascent steps raise each image's bound
        assert iw_amortized > amortized and iw_refined > refined - 0.5, gaps[label]
    cached = json.loads((out / "vae" / "seed0.generative.json").read_text())
    assert cached["amortization_gap"]["settings"] == {
        "steps": 30, "step_size": 0.05, "samples": 4, "k": 10, "images": 60, "seed": 0}
