"""The recurrent-VAE part of a study report: a tiny DRAW study on the 8x8
digits run through the command line, its figures, and its numbers recomputed
independently from the checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.image import imread

from cortexsim.cli import main
from cortexsim.inference.importance import recurrent_log_likelihood
from cortexsim.report.recurrent import conceptual_compression
from cortexsim.report.trained_models import held_out, log_likelihood_rows, restore

STUDY = """
[study]
name = "tiny_draw"
seeds = [0]

[outputs]
log_likelihood = {k = 4, images = 40}
report = true

[[model.areas]]
name = "pixels"
size = 64

[[model.areas]]
name = "rnn"
size = 12
cell = "gru"

[[model.areas]]
name = "z"
size = 3
activation = "linear"
stochastic = true

[data]
name = "digits"
validation = 0.0
binarize = "dynamic"

[schedule]
epochs = 1
batch_size = 100
checkpoint_every = 0

[[rules]]
rule = "draw"
label = "draw"
steps = 3

[[rules]]
rule = "draw"
label = "draw_beta4"
steps = 3
beta = 4.0
prior = "learned"
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("draw")
    (root / "study.toml").write_text(STUDY)
    out = root / "out"
    assert main(["run", str(root / "study.toml"), "--out", str(out), "--quiet"]) == 0
    return out


def test_figures_exist_and_are_not_blank(study):
    summary = (study / "report" / "summary.md").read_text()
    assert "## Recurrent VAE" in summary and "## Generative models" not in summary
    for name in ("draw.canvas", "draw.samples", "draw.conceptual", "draw_beta4.conceptual",
                 "all.kl_per_step", "all.distortion_rate"):
        image = imread(study / "report" / "recurrent" / f"{name}.png")
        assert image.ndim == 3 and image[..., :3].std() > 0.02, name
        assert f"recurrent/{name}.png" in summary


def test_log_likelihood_in_the_report_is_recomputed_from_the_checkpoint(study):
    summary = (study / "report" / "summary.md").read_text()
    data = json.loads((study / "study.json").read_text())
    hierarchy, rule = restore(study, data, "draw_beta4", 0)
    x, _ = held_out(data["plan"]["data"], 0)
    expected = recurrent_log_likelihood(hierarchy, x[:40], k=4, steps=3, prior="learned", seed=0,
                                        rows=log_likelihood_rows(64)).mean()
    row = next(line for line in summary.splitlines() if line.startswith("| draw_beta4 | 4.0 |"))
    assert float(row.split("|")[-2]) == pytest.approx(expected, abs=0.006)


def test_the_curve_starts_at_zero_rate_and_spends_every_steps_kl(study):
    data = json.loads((study / "study.json").read_text())
    hierarchy, rule = restore(study, data, "draw", 0)
    x, _ = held_out(data["plan"]["data"], 0)
    result = conceptual_compression(hierarchy, rule, x[:50], shown=4)
    assert result["grid"].shape == (4, 4, 64)
    assert result["rate"][0] == 0.0 and result["rate"][-1] == pytest.approx(result["kl_steps"].sum())
    assert np.all(np.diff(result["rate"]) >= 0)
