"""The reproduction ledger reads every claim's number from the runs, not from
anything typed in: its means, sds and gaps equal those recomputed here from
the recordings, and missing runs are said to be missing."""

import json
import re

import numpy as np
import pytest

import cortexsim as cs
from cortexsim import ConfigurationError
from cortexsim.cli import main
from cortexsim.study.ledger import claim_rows, ledger_markdown
from cortexsim.study.plan import load_study
from cortexsim.study.runner import run_study

STUDY = """
[study]
name = "tiny_paper"
seeds = [0, 1, 2]

[outputs]
out = "{out}"

[model]
[[model.areas]]
name = "pixels"
size = 64
[[model.areas]]
name = "hidden"
size = 16
activation = "tanh"
[[model.areas]]
name = "labels"
size = 10
activation = "linear"

[data]
name = "digits"
validation = 0.2
limit = 300

[schedule]
epochs = 4
batch_size = 30

[optimizer]
name = "sgd"
lr = 0.05

[[rules]]
rule = "backprop"
label = "bp"
loss = "cross_entropy"

[[claims]]
name = "Backprop test error"
label = "bp"
metric = "test_error"
published = 5.0
within = 100.0
source = "A paper"

[[claims]]
name = "Backprop final test error"
label = "bp"
metric = "final_test_error"
source = "A paper, no number"
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ledger")
    path = folder / "tiny.toml"
    path.write_text(STUDY.format(out=folder / "runs"))
    run_study(load_study(path), seeds=[0, 1])  # seed 2 is left unrun on purpose
    return path, folder


def _errors(folder, at_best):
    errors = {}
    for seed in (0, 1):
        with cs.open(folder / "runs" / "bp" / f"seed{seed}.h5") as rec:
            test = np.asarray(rec.metrics["test_accuracy"])
            val = np.asarray(rec.metrics["validation_accuracy"])
        index = int(np.argmax(val)) if at_best else len(test) - 1
        errors[seed] = 100 * (1 - test[index])
    return errors


def test_values_are_read_from_the_recordings(study):
    path, folder = study
    best, final = claim_rows(path)
    expected = _errors(folder, at_best=True)
    assert best.values == pytest.approx(expected, rel=1e-12)
    values = list(expected.values())
    assert best.mean == pytest.approx(np.mean(values))
    assert best.sd == pytest.approx(np.std(values, ddof=1))
    assert best.gap == pytest.approx(np.mean(values) - 5.0)
    assert final.values == pytest.approx(_errors(folder, at_best=False), rel=1e-12)
    assert final.gap is None
    assert "seeds 2: no run" in best.missing


def test_markdown_row_and_missing_seed(study):
    path, folder = study
    rows = claim_rows(path)
    text = ledger_markdown(rows)
    mean = np.mean(list(_errors(folder, at_best=True).values()))
    row = next(line for line in text.splitlines() if line.startswith("| Backprop test error"))
    assert f"{mean:.2f} ±" in row and "| 2 |" in row and "yes (±100.0)" in row
    assert "first 300 training images" in row
    assert re.search(r"- Backprop test error: seeds 2: no run", text)


def test_log_likelihood_claims_read_the_report_cache(study, tmp_path):
    path, folder = study
    text = path.read_text().replace('metric = "final_test_error"', 'metric = "log_likelihood"')
    other = tmp_path / "ll.toml"
    other.write_text(text)
    for seed, value in ((0, -90.0), (1, -92.0)):
        cache = folder / "runs" / "bp" / f"seed{seed}.generative.json"
        cache.write_text(json.dumps({"log_likelihood": {"settings": {"k": 500, "images": 10000, "seed": seed},
                                                         "value": value}}))
    row = claim_rows(other)[1]
    assert row.values == {0: -90.0, 1: -92.0}
    assert "L_500 on 10,000 test images" in row.protocol


def test_a_study_never_run_says_so(tmp_path):
    path = tmp_path / "never.toml"
    path.write_text(STUDY.format(out=tmp_path / "nothing"))
    rows = claim_rows(path)
    assert all(not row.values and row.missing == "not run yet" for row in rows)
    assert "| not run |" in ledger_markdown(rows)


@pytest.mark.parametrize("old, new, message", [
    ('label = "bp"\nmetric = "test_error"', 'label = "pb"\nmetric = "test_error"', r"claims\[0\]\.label: unknown value 'pb'"),
    ('metric = "test_error"', 'metric = "test_eror"', r"claims\[0\]\.metric: unknown value 'test_eror'"),
    ('metric = "test_error"', 'metric = "experiment.end_stopping.x"', r"claims\[0\]\.metric: .*experiment\.KIND\.KEY"),
    ("published = 5.0", 'published = "five"', r"claims\[0\]\.published"),
    ('source = "A paper"', 'sauce = "A paper"', r"claims\[0\]\.sauce: unknown key"),
])
def test_claim_mistakes_name_the_key(tmp_path, old, new, message):
    path = tmp_path / "bad.toml"
    assert old in STUDY
    path.write_text(STUDY.replace(old, new, 1).format(out=tmp_path / "r"))
    with pytest.raises(ConfigurationError, match=message):
        load_study(path)


def test_cli_writes_the_ledger(study, tmp_path, capsys):
    path, _ = study
    out = tmp_path / "reproductions.md"
    assert main(["ledger", "--studies", str(path.parent), "--out", str(out)]) == 0
    assert "| Backprop test error |" in out.read_text()
    assert main(["ledger", "--studies", str(tmp_path / "empty"), "--out", str(out)]) == 2


def test_disentanglement_claims_read_the_report_cache(study, tmp_path):
    path, folder = study
    text = path.read_text().replace('metric = "final_test_error"', 'metric = "disentanglement.beta_vae"\npercent = true')
    other = tmp_path / "dis.toml"
    other.write_text(text)
    for seed, value in ((0, 0.75), (1, 0.85)):
        cache = folder / "runs" / "bp" / f"seed{seed}.generative.json"
        cache.write_text(json.dumps({"disentanglement": {"settings": {}, "value": {"beta_vae": value, "MIG": 0.1}}}))
    row = claim_rows(other)[1]
    assert row.values == pytest.approx({0: 75.0, 1: 85.0})


def test_a_study_whose_runs_are_elsewhere_keeps_its_rows_and_says_so(study, tmp_path):
    from cortexsim.study.ledger import write_ledger

    path, _ = study
    studies = tmp_path / "studies"
    studies.mkdir()
    (studies / "here.toml").write_text(path.read_text())  # its runs are here
    (studies / "away.toml").write_text(STUDY.format(out=tmp_path / "elsewhere"))
    ledger = tmp_path / "reproductions.md"
    write_ledger(studies, ledger)
    text = ledger.read_text()
    away = f"`cortexsim run {studies / 'away.toml'} --resume`"
    assert text.count(f"| not run | 0 | — | — | {away} |") == 2  # nothing to keep yet
    # the rows as a machine holding away's recordings wrote them
    previous = text.replace(f"| not run | 0 | — | — | {away} |", f"| 4.00 ± 1.00 | 3 | -1.00 | — | {away} |")
    ledger.write_text(previous)
    text = write_ledger(studies, ledger).read_text()
    assert text.count(f"| 4.00 ± 1.00 | 3 | -1.00 | — | {away} |") == 2
    assert "Rows kept from the ledger as last generated" in text and f"- `{studies / 'away.toml'}`" in text
    here = [line for line in text.splitlines() if line.endswith(f"`cortexsim run {studies / 'here.toml'} --resume` |")]
    assert len(here) == 2 and all("not run" not in line for line in here)  # recomputed from its runs
    ledger.write_text(previous)
    assert main(["ledger", "--studies", str(studies), "--out", str(ledger), "--fresh"]) == 0
    assert ledger.read_text().count(f"| not run | 0 | — | — | {away} |") == 2
