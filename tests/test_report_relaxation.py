"""The study report's relaxation section: how many batches met the tolerance,
read back from the recordings of a tiny digits study, for the rules that
relax with a tolerance and for no other."""

import re

import cortexsim as cs
from cortexsim.report.summary import write_report
from cortexsim.study.plan import load_study
from cortexsim.study.runner import run_study

STUDY = """
[study]
name = "relax"
seeds = [1]

[model]
areas = [{name = "px", size = 64}, {name = "h", size = 12, activation = "tanh"},
         {name = "out", size = 10, activation = "linear"}]

[data]
name = "digits"
limit = 64

[schedule]
epochs = 2
batch_size = 32

[[rules]]
rule = "predictive_coding"
label = "never"
inference = {steps = 3, step_size = 0.1, tolerance = 1e-30}

[[rules]]
rule = "predictive_coding"
label = "at_once"
inference = {steps = 50, step_size = 0.1, tolerance = 1e30}

[[rules]]
rule = "predictive_coding"
label = "fixed_t"
inference = {steps = 4}
"""


def test_the_report_shows_the_converged_fraction_of_each_tolerance(tmp_path):
    path = tmp_path / "relax.toml"
    path.write_text(STUDY)
    run_study(load_study(path), tmp_path / "out")
    with cs.open(tmp_path / "out" / "never" / "seed1.h5") as rec:
        assert list(rec.metrics["converged_fraction"]) == [0.0, 0.0]
        assert list(rec.metrics["mean_relaxation_steps"]) == [3.0, 3.0]
    text = (write_report(tmp_path / "out")).read_text()
    section = text.split("## Relaxation to a tolerance")[1].split("\n## ")[0]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| (\w+) \| (.*) \|$", section, re.M)}
    assert rows["never"] == "1 | 0.00 | 0.00 | 0.00 | 3.0 | 3.0"
    assert rows["at_once"] == "1 | 100.00 | 100.00 | 100.00 | 1.0 | 1.0"
    assert "fixed_t" not in rows
