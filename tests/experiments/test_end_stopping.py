"""End-stopping experiment: bar geometry, the silenced-feedback control, and a
planted model whose level 2 predicts long horizontal bars."""

import numpy as np
import pytest

import cortexsim as cs
from cortexsim.data.module_patches import stimulus_modules
from cortexsim.experiments import EXPERIMENTS, load_result, save_result
from cortexsim.experiments.end_stopping import bars, oriented_bars, run

LAYOUT = {"height": 16, "width": 16, "modules": 3, "offset": 5, "window": 5.0, "filter": "dog"}
FAST = {"lengths": (2, 4, 8, 12, 16, 20, 26), "steps": 150, "step_size": 0.1, "short_max": 12}


def template(canvas: np.ndarray) -> np.ndarray:
    """The first module's view of a canvas, unit norm."""
    field = stimulus_modules(canvas[None], **LAYOUT)[0, :256]
    return field / np.linalg.norm(field)


def planted(level2_weight: float, vertical: bool = False) -> cs.Hierarchy:
    """One unit per module tuned to a horizontal bar through the middle rows
    (and, with ``vertical``, a second one tuned to a vertical bar through the
    middle columns); one level-2 unit predicting the horizontal units of all
    three modules equally."""
    per = 2 if vertical else 1
    model = {
        "areas": [
            {"name": "image", "size": 768},
            {"name": "level1", "size": 3 * per, "modules": 3, "shared": True, "activation": "linear",
             "precision": 1.0, "prior": {"kind": "cauchy", "scale": 1.0, "weight": 0.01}},
            {"name": "level2", "size": 1, "activation": "linear",
             "prior": {"kind": "cauchy", "scale": 1.0, "weight": 0.01}},
        ]
    }
    h = cs.build(model, dtype="float64", seed=0)
    horizontal, upright = np.zeros((16, 26)), np.zeros((16, 26))
    horizontal[7:9, :] = 1.0
    upright[:, 2:4] = 1.0  # the first module covers columns 0 .. 15: its middle columns
    upright = np.roll(upright, 5, axis=1)
    fields = [template(horizontal), template(upright)][:per]
    W = np.zeros((3 * per, 768))
    for m in range(3):
        for j, field in enumerate(fields):
            W[m * per + j, m * 256:(m + 1) * 256] = field
    predicts = np.zeros((1, 3 * per))
    predicts[0, ::per] = level2_weight
    h.load_parameters({("level1", "W_fb"): W, ("level1", "b_fb"): np.zeros(768),
                       ("level2", "W_fb"): predicts, ("level2", "b_fb"): np.zeros(3 * per)})
    return h


def test_bars_are_centred_and_complete():
    canvas, params = bars(16, 26, [2, 6, 26], thickness=2)
    assert canvas.shape == (15 * 2 * 3, 16, 26)
    for image, (length, top, polarity) in zip(canvas, params):
        rows, cols = np.nonzero(image)
        assert set(rows) == {int(top), int(top) + 1}
        assert cols.size == 2 * length and np.all(image[rows, cols] == polarity)
        assert abs((cols.min() + cols.max()) / 2 - 12.5) <= 0.5  # centred on the crop


def test_oriented_bars_geometry():
    canvas, params = oriented_bars(16, 26, 16, 2, angles=[0, 90, 45], offsets=[-2, 0, 3])
    assert canvas.shape == (3 * 3 * 2, 16, 26)
    flat = canvas[(params[:, 0] == 0) & (params[:, 1] == 0) & (params[:, 2] == 1)][0]
    rows, cols = np.nonzero(flat)
    assert set(rows) == {7, 8} and cols.size == 2 * 16 and abs(cols.mean() - 12.5) < 1e-9
    upright = canvas[(params[:, 0] == 90) & (params[:, 1] == 3) & (params[:, 2] == -1)][0]
    rows, cols = np.nonzero(upright)
    assert set(cols) == {9, 10} and np.all(upright[rows, cols] == -1.0)  # 3 px left of centre (y down)
    diagonal = canvas[(params[:, 0] == 45) & (params[:, 1] == 0) & (params[:, 2] == 1)][0]
    rows, cols = np.nonzero(diagonal)
    np.testing.assert_allclose(np.corrcoef(rows, cols)[0, 1], 1.0, atol=0.05)


def test_units_are_measured_at_their_preferred_orientation():
    """A unit tuned to vertical bars is left out of the end-stopping numbers:
    horizontal bars through it drive it by their ends alone."""
    result = run(planted(level2_weight=1.0, vertical=True), None, seed=0, data={"layout": LAYOUT}, **FAST)
    np.testing.assert_array_equal(result.arrays["preferred_orientation"], [0.0, 90.0])
    np.testing.assert_array_equal(result.arrays["measured"], [True, False])
    s = result.summary
    assert s["units"] == 1 and s["units_responsive"] == 2, s
    assert s["fraction_end_stopped_feedback"] == 1.0 and s["fraction_end_stopped_no_feedback"] == 0.0, s
    # The vertical unit answers short horizontal bars more than long ones, feedback or not.
    assert result.arrays["index_no_feedback"][1] > 1.2, result.arrays["index_no_feedback"]
    assert s["fraction_end_stopped_no_feedback_all_orientations"] == 0.5, s


def test_planted_feedback_gives_end_stopping_that_silencing_removes():
    h = planted(level2_weight=1.0)
    before = {k: np.array(v) for k, v in h.parameters_to_numpy().items()}
    result = run(h, None, seed=0, data={"layout": LAYOUT}, **FAST)
    s = result.summary
    assert s["units"] == 1
    # Level 2 explains the middle module away when the bar spans all three.
    assert s["mean_index_feedback"] > 1.5, s
    # Silenced, nothing predicts the middle module: a longer bar drives it as much or more.
    assert s["mean_index_no_feedback"] < 1.05, s
    assert s["fraction_end_stopped_feedback"] == 1.0 and s["fraction_end_stopped_no_feedback"] == 0.0
    # Extending a patch-filling bar into the neighbours lowers the error only with feedback.
    assert s["median_surround_feedback"] > 1.2 and s["median_surround_no_feedback"] < 1.05, s
    for key, value in h.parameters_to_numpy().items():  # the model is left as found
        np.testing.assert_array_equal(value, before[key], err_msg=str(key))


def test_without_a_prediction_both_conditions_agree():
    """Level 2 with zero weights predicts nothing: silencing it changes nothing."""
    result = run(planted(level2_weight=0.0), None, seed=0, data={"layout": LAYOUT}, **FAST)
    np.testing.assert_allclose(result.arrays["index_feedback"], result.arrays["index_no_feedback"], rtol=1e-9)
    np.testing.assert_allclose(result.arrays["curves_feedback"], result.arrays["curves_no_feedback"], rtol=1e-9)
    np.testing.assert_allclose(result.arrays["surround_feedback"], result.arrays["surround_no_feedback"], rtol=1e-9)


def test_result_round_trip_summary_and_figure(tmp_path):
    from matplotlib.image import imread

    from cortexsim import plots

    result = run(planted(level2_weight=1.0), None, seed=0, data={"layout": LAYOUT}, **FAST)
    path = save_result(result, tmp_path / "seed0.end_stopping.h5")
    back = load_result(path)
    assert back.kind == "end_stopping" and back.summary == result.summary
    for name, array in result.arrays.items():
        np.testing.assert_array_equal(back.arrays[name], array)
    module = EXPERIMENTS["end_stopping"]
    lines = module.summary({"planted": [back, back]})
    assert lines[2].startswith("| planted | 2 | 2 / 2 | 100 % ± 0 | 0 % ± 0 |"), lines[2]
    plots.save(module.figure({"planted": [back]}), tmp_path / "es.png")
    image = imread(tmp_path / "es.png")
    assert image.shape[0] > 200 and float(image[..., :3].std()) > 0.05


def test_study_validation_names_the_area(tmp_path):
    from cortexsim import ConfigurationError
    from cortexsim.study.plan import load_study

    text = (tmp_path / "s.toml")
    text.write_text("""
[study]
name = "es"
[model]
[[model.areas]]
name = "image"
size = 768
[[model.areas]]
name = "level1"
size = 3
modules = 3
[[model.areas]]
name = "level2"
size = 1
[data]
name = "patches"
n = 200
[schedule]
epochs = 1
[[rules]]
rule = "predictive_coding"
mode = "generative"
[[experiments]]
kind = "end_stopping"
area = "levl1"
""")
    with pytest.raises(ConfigurationError, match=r"s\.toml: experiments\[0\]\.area: no area 'levl1'"):
        load_study(text)
    text.write_text(text.read_text().replace('area = "levl1"', 'lenghts = [2, 4]'))
    with pytest.raises(ConfigurationError, match=r"experiments\[0\]\.lenghts: unknown key.*did you mean 'lengths'"):
        load_study(text)
    for bad, message in (("orientations = 1", r"experiments\[0\]\.orientations"),
                         ("tolerance = 120.0", r"experiments\[0\]\.tolerance: degrees from horizontal")):
        text.write_text(text.read_text().replace("lenghts = [2, 4]", bad))
        with pytest.raises(ConfigurationError, match=message):
            load_study(text)
        text.write_text(text.read_text().replace(bad, "lenghts = [2, 4]"))


def test_a_study_runs_its_experiments_and_reports_them(tmp_path, capsys):
    """Generative PC on module patches, then both experiments, through the CLI."""
    from cortexsim.cli import main
    from cortexsim.experiments import load_result

    study = tmp_path / "rb.toml"
    study.write_text("""
[study]
name = "tiny_rb"
seeds = [0]
[outputs]
report = true
[model]
weight_init = "normal"
init_scale = 0.02
[[model.areas]]
name = "image"
size = 768
[[model.areas]]
name = "level1"
size = 6
modules = 3
shared = true
activation = "linear"
prior = { kind = "cauchy", scale = 1.0, weight = 1.0 }
[[model.areas]]
name = "level2"
size = 4
activation = "linear"
[data]
name = "patches"
n = 300
validation = 0.0
[schedule]
epochs = 1
batch_size = 50
[optimizer]
name = "adam"
lr = 3e-3
weight_decay = 1e-2
[[rules]]
rule = "predictive_coding"
label = "pc"
mode = "generative"
[rules.inference]
steps = 10
step_size = 0.1
init = "zeros"
[[experiments]]
kind = "receptive_fields"
[[experiments]]
kind = "end_stopping"
lengths = [2, 8, 16, 26]
steps = 30
step_size = 0.1
""")
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--quiet"]) == 0
    for kind in ("receptive_fields", "end_stopping"):
        result = load_result(out / "pc" / f"seed0.{kind}.h5")
        assert result.kind == kind
    assert load_result(out / "pc" / "seed0.receptive_fields.h5").arrays["fields"].shape == (2, 16, 16)
    summary = (out / "report" / "summary.md").read_text()
    assert "## Receptive fields" in summary and "## End-stopping (Rao & Ballard 1999)" in summary
    assert "excluded" not in summary and "Test accuracy per rule" not in summary  # no labels, no accuracy
    assert "1 complete and included" in summary
    for figure in ("receptive_fields.png", "end_stopping.png"):
        assert (out / "report" / figure).stat().st_size > 10_000
