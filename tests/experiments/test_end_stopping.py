"""End-stopping experiment: bar geometry, the selection of units by the Gabor
fit of their generative fields, the silenced-feedback control, and a planted
model whose level 2 predicts long horizontal bars."""

import numpy as np
import pytest

import cortexsim as cs
from cortexsim.data.module_patches import stimulus_modules
from cortexsim.experiments import EXPERIMENTS, load_result, save_result
from cortexsim.analysis import gabor2d
from cortexsim.experiments.end_stopping import bars, field_selection, run

LAYOUT = {"height": 16, "width": 16, "modules": 3, "offset": 5, "window": 5.0, "filter": "dog"}
FAST = {"lengths": (2, 4, 8, 12, 16, 20, 26), "steps": 150, "step_size": 0.1, "short_max": 12}


def template(canvas: np.ndarray) -> np.ndarray:
    """The first module's view of a canvas, unit norm."""
    field = stimulus_modules(canvas[None], **LAYOUT)[0, :256]
    return field / np.linalg.norm(field)


def planted(level2_weight: float, vertical: bool = False, noise: bool = False) -> cs.Hierarchy:
    """One unit per module tuned to a horizontal bar through the middle rows
    (with ``vertical``, a second one tuned to a vertical bar through the middle
    columns; with ``noise``, one more whose field is white noise); one level-2
    unit predicting the horizontal units of all three modules equally."""
    horizontal, upright = np.zeros((16, 26)), np.zeros((16, 26))
    horizontal[7:9, :] = 1.0
    upright[:, 2:4] = 1.0  # the first module covers columns 0 .. 15: its middle columns
    upright = np.roll(upright, 5, axis=1)
    fields = [template(horizontal)]
    if vertical:
        fields.append(template(upright))
    if noise:
        white = np.random.default_rng(3).normal(size=256)
        fields.append(white / np.linalg.norm(white))
    per = len(fields)
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
    W = np.zeros((3 * per, 768))
    for m in range(3):
        for j, field in enumerate(fields):
            W[m * per + j, m * 256:(m + 1) * 256] = field
    predicts = np.zeros((1, 3 * per))
    predicts[0, ::per] = level2_weight
    h.load_parameters({("level1", "W_fb"): W, ("level1", "b_fb"): np.zeros(768),
                       ("level2", "W_fb"): predicts, ("level2", "b_fb"): np.zeros(3 * per)})
    return h


def axial_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Degrees between two orientations (period 180)."""
    d = np.mod(np.asarray(a) - np.asarray(b), 180.0)
    return np.minimum(d, 180.0 - d)


def test_field_selection_recovers_known_orientations_and_rejects_poor_fits():
    """Gabor fields of known stripe orientation (written with their own
    formula, not the fit's) come back within 2 degrees; those within the
    tolerance of horizontal are selected. White noise, and horizontal stripes
    buried in noise, fail the R^2 criterion and are not selected."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:16, 0:16].astype(float)
    stripes = np.array([0.0, 8.0, 14.0, 25.0, 45.0, 90.0, 130.0, 172.0])
    fields = []
    for angle in stripes:
        a = np.radians(angle)
        along = (x - 7.3) * np.cos(a) + (y - 8.1) * np.sin(a)      # along the stripes
        across = -(x - 7.3) * np.sin(a) + (y - 8.1) * np.cos(a)    # across them
        envelope = np.exp(-along**2 / (2 * 3.5**2) - across**2 / (2 * 2.5**2))
        fields.append(envelope * np.cos(2 * np.pi * 0.15 * across + 0.7) + 0.01 * rng.normal(size=(16, 16)))
    buried = gabor2d((16, 16), 7.5, 7.5, 2.5, 3.5, np.pi / 2, 0.15)  # horizontal stripes
    buried = buried + 1.5 * buried.std() * rng.normal(size=(16, 16))
    fields += [rng.normal(size=(16, 16)), buried]
    chosen = field_selection(np.array(fields), gabor_r2=0.8, tolerance=15.0)
    good = slice(0, len(stripes))
    assert np.all(chosen["r2"][good] > 0.95), chosen["r2"]
    assert np.all(axial_distance(chosen["orientation"][good], stripes) < 2.0), chosen["orientation"]
    np.testing.assert_array_equal(chosen["well_fit"], [True] * len(stripes) + [False, False])
    np.testing.assert_array_equal(chosen["selected"], [True, True, True, False, False, False, False, True,
                                                       False, False])
    assert chosen["r2"][-1] < 0.8 and axial_distance(chosen["orientation"][-1], 0.0) < 15.0, chosen
    # a stricter tolerance drops the 14-degree field
    assert not field_selection(np.array(fields[2:3]), gabor_r2=0.8, tolerance=10.0)["selected"][0]


def test_bars_are_centred_and_complete():
    canvas, params = bars(16, 26, [2, 6, 26], thickness=2)
    assert canvas.shape == (15 * 2 * 3, 16, 26)
    for image, (length, top, polarity) in zip(canvas, params):
        rows, cols = np.nonzero(image)
        assert set(rows) == {int(top), int(top) + 1}
        assert cols.size == 2 * length and np.all(image[rows, cols] == polarity)
        assert abs((cols.min() + cols.max()) / 2 - 12.5) <= 0.5  # centred on the crop


def test_units_are_selected_by_their_generative_fields():
    """The units measured are chosen from their fields alone: the vertical
    unit is well fit but off horizontal, the noise unit fits poorly; both are
    left out and counted, and the all-units figures count them."""
    result = run(planted(level2_weight=1.0, vertical=True, noise=True), None, seed=0,
                 data={"layout": LAYOUT}, **(FAST | {"lengths": (4, 12, 26)}))
    assert np.all(axial_distance(result.arrays["field_orientation"][:2], [0.0, 90.0]) < 2.0), result.arrays
    assert result.arrays["field_r2"][2] < 0.8 < result.arrays["field_r2"][:2].min(), result.arrays["field_r2"]
    np.testing.assert_array_equal(result.arrays["selected"], [True, False, False])
    s = result.summary
    assert (s["units_total"], s["units_selected"], s["units_off_horizontal"], s["units_poor_fit"]) == (3, 1, 1, 1), s
    assert s["fraction_end_stopped_feedback"] == 1.0 and s["fraction_end_stopped_no_feedback"] == 0.0, s
    # The vertical unit answers short horizontal bars more than long ones, feedback or not.
    assert result.arrays["index_no_feedback"][1] > 1.2, result.arrays["index_no_feedback"]
    assert s["units_responsive"] >= 2 and s["fraction_end_stopped_no_feedback_all_units"] > 0.0, s


def test_the_selection_does_not_depend_on_the_feedback():
    """Same level-1 fields, level 2 predicting or silent: the same units are selected."""
    quick = {"lengths": (2, 12, 26), "steps": 10, "step_size": 0.1, "short_max": 12}
    kept = [run(planted(level2_weight=w, vertical=True), None, seed=0, data={"layout": LAYOUT},
                **quick).arrays["selected"] for w in (0.0, 1.0)]
    np.testing.assert_array_equal(kept[0], [True, False])
    np.testing.assert_array_equal(kept[0], kept[1])


def test_planted_feedback_gives_end_stopping_that_silencing_removes():
    h = planted(level2_weight=1.0)
    before = {k: np.array(v) for k, v in h.parameters_to_numpy().items()}
    result = run(h, None, seed=0, data={"layout": LAYOUT}, **FAST)
    s = result.summary
    assert s["units_selected"] == 1
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
    assert lines[2].startswith("| planted | selected by field | 2 | 2 | 100 % ± 0 | 0 % ± 0 |"), lines[2]
    assert lines[3].startswith("| planted | all responsive | 2 | 2 | 100 % ± 0 | 0 % ± 0 |"), lines[3]
    assert "planted: of 2 middle-module units, 0 have a field the Gabor fits poorly" in lines[5], lines[5]
    assert "summed over seeds: planted: 2 of 2 with feedback, 0 of 2 without." in lines[5], lines[5]
    empty = load_result(path)  # a seed without a selected unit is left out of the mean, and said so
    empty.summary["fraction_end_stopped_feedback"] = float("nan")
    row = module.summary({"planted": [back, empty]})[2]
    assert row.startswith("| planted | selected by field | 2 | 2 | 100 % ± 0 (1 of 2 seeds) | 0 % ± 0 |"), row
    plots.save(module.figure({"planted": [back]}), tmp_path / "es.png")
    image = imread(tmp_path / "es.png")
    assert image.shape[0] > 200 and float(image[..., :3].std()) > 0.05


def test_the_paper_study_is_the_tuning_study_on_fresh_seeds():
    """studies/papers/rao_ballard_1999.toml reports on seeds never used to choose
    settings, with the tuning study's model, data, rule and experiments, and
    its claims read keys the experiment's summary has."""
    from pathlib import Path

    from cortexsim.study.plan import load_study

    root = Path(__file__).resolve().parents[2]
    tuning = load_study(root / "studies" / "rao_ballard_1999.toml")
    paper = load_study(root / "studies" / "papers" / "rao_ballard_1999.toml")
    assert not set(tuning.seeds) & set(paper.seeds), (tuning.seeds, paper.seeds)
    assert (paper.model, paper.data, paper.rules, paper.experiments) == \
        (tuning.model, tuning.data, tuning.rules, tuning.experiments)
    keys = run(planted(level2_weight=1.0), None, seed=0, data={"layout": LAYOUT},
               lengths=(2, 12, 26), steps=5).summary
    metrics = [claim["metric"] for claim in paper.claims]
    assert len(metrics) == 4 and all(m.startswith("experiment.end_stopping.") for m in metrics), metrics
    assert {m.rsplit(".", 1)[1] for m in metrics} <= set(keys), metrics


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
    for bad, message in (("gabor_r2 = 1.5", r"experiments\[0\]\.gabor_r2: the least R\^2"),
                         ("gabor_r2 = \"high\"", r"experiments\[0\]\.gabor_r2: expected a number"),
                         ("tolerance = 120.0", r"experiments\[0\]\.tolerance: degrees from horizontal"),
                         ("orientations = 12", r"experiments\[0\]\.orientations: unknown key")):
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
