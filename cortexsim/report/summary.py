"""Study reports: figures and a Markdown summary from a study folder's recordings.

``write_report(OUT)`` reads ``OUT/study.json`` (docs/studies.md) and the
recordings it names (``folder.read_study_folder``), and writes ``OUT/report/``:
``summary.md``, ``learning_curves.png`` and, when some run recorded them,
``alignment.png`` and ``energy.png``. ``compare_table([OUT, ...])`` sets several studies' rules
against their backprop baseline. Only complete runs enter the aggregates; the
others are listed with the reason they were left out.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import plots
from ..analysis.learning_curves import FINAL_EPOCH, best_epoch, summary_table
from ..experiments.report import experiment_sections
from .generative import generative_sections
from .recurrent import recurrent_sections
from .sweep import sweep_sections
from .folder import RunData, read_study_folder
from .trained_models import variational_labels

__all__ = ["compare_table", "write_report"]

FIGURES = ("learning_curves.png", "alignment.png", "energy.png")


def _labels(runs: Sequence[RunData]) -> list[str]:
    return list(dict.fromkeys(run.label for run in runs))


def _summary_rows(runs: Sequence[RunData]) -> list[dict[str, Any]]:
    """summary_table over the included runs, one row per label (study order), with its rule."""
    # Unsupervised runs (test_loss, no accuracy) have their own section (report_generative).
    runs = [r for r in runs if r.supervised and ("test_accuracy" in r.metrics or "test_loss" not in r.metrics)]
    results: dict[str, list[dict[str, Any]]] = {label: [] for label in _labels(runs)}
    rules = {}
    for run in runs:
        rules.setdefault(run.label, run.rule)
        if run.included:
            m = run.metrics
            results[run.label].append(
                {
                    "test": m["test_accuracy"],
                    "validation": m.get("validation_accuracy"),
                    "epoch": m.get("epoch"),
                }
            )
    rows = summary_table(results)
    for row in rows:
        row["rule"] = rules[row["label"]]
        times = [_seconds(run) for run in runs if run.included and run.label == row["label"]]
        row["seconds_mean"] = float(np.mean(times)) if times else float("nan")
    return rows


def _seconds(run: RunData) -> float:
    """Wall time of a run: the sum of its epochs' ``seconds`` (NaN if not recorded)."""
    seconds = run.metrics.get("seconds")
    return float(np.sum(seconds)) if seconds is not None and len(seconds) else float("nan")


def _pct(value: float) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{100.0 * value:.2f}"


def _pm(mean: float, sd: float) -> str:
    return "—" if not np.isfinite(mean) else f"{_pct(mean)} ± {_pct(sd)}"


def _num(value: Any, digits: int = 4) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.{digits}g}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _last(metrics: dict[str, np.ndarray], name: str) -> float | None:
    values = metrics.get(name)
    return float(values[-1]) if values is not None and len(values) else None


def _run_row(run: RunData) -> str:
    m = run.metrics
    epochs = len(m.get("epoch", ()))
    best, at_best = "—", "—"
    validation, test = m.get("validation_accuracy"), m.get("test_accuracy")
    if (
        validation is not None
        and test is not None
        and len(validation)
        and np.any(np.isfinite(validation))
    ):
        index = best_epoch(validation[: len(test)])
        epoch = m.get("epoch")
        best = (
            str(int(epoch[index])) if epoch is not None and len(epoch) > index else str(index + 1)
        )
        at_best = _pct(float(test[index]))
    note = "" if run.included else f"excluded: {run.problem}"
    cells = [
        run.label,
        run.rule,
        str(run.seed),
        run.status,
        str(epochs),
        _num(_last(m, "train_loss")),
        _pct(_last(m, "validation_accuracy")),
        _pct(_last(m, "test_accuracy")),
        best,
        at_best,
        _num(_seconds(run), 3),
        f"`{run.recording}`",
        note,
    ]
    return "| " + " | ".join(cells) + " |"


def _figures(runs: Sequence[RunData], folder: Path, name: str) -> list[tuple[str, str]]:
    """Draw and save the figures; returns (file name, caption) of those written."""
    included = [run for run in runs if run.included]
    colors = plots.rule_colors(_labels(runs))
    written = []
    metrics = {label: [r.metrics for r in included if r.label == label] for label in _labels(runs)}
    metrics = {label: seeds for label, seeds in metrics.items() if seeds}
    if metrics:
        fig = plots.learning_curves(metrics, colors, prefix=f"{name}: ")
        plots.save(fig, folder / "learning_curves.png")
        written.append(("learning_curves.png", "Learning curves"))
    aligned = {
        label: [r.alignment for r in included if r.label == label and r.alignment]
        for label in _labels(runs)
    }
    aligned = {label: seeds for label, seeds in aligned.items() if seeds}
    if aligned:  # variational (unsupervised) rules are compared with the ELBO's gradient
        reference = "backprop" if any(r.supervised for r in included if r.alignment) else "the ELBO gradient"
        fig = plots.alignment(aligned, colors, prefix=f"{name}: ", reference=reference)
        plots.save(fig, folder / "alignment.png")
        written.append(("alignment.png", f"Alignment with {reference}"))
    energy = {
        label: [r.energy for r in included if r.label == label and r.energy is not None]
        for label in _labels(runs)
    }
    energy = {label: seeds for label, seeds in energy.items() if seeds}
    if energy:
        fig = plots.energy(energy, colors, prefix=f"{name}: ")
        plots.save(fig, folder / "energy.png")
        written.append(("energy.png", "Energy during inference"))
    for stale in set(FIGURES) - {file for file, _ in written}:
        (folder / stale).unlink(missing_ok=True)  # left by an earlier report of this folder
    return written


def _relaxation_section(runs: Sequence[RunData]) -> list[str]:
    """Rules that relax to a tolerance: how many batches met it before the cap
    (``converged_fraction``) and the steps taken (``mean_relaxation_steps``),
    per label over its complete seeds; nothing when no run relaxed with one."""
    lines = []
    for label in _labels(runs):
        seeds = [r.metrics for r in runs if r.included and r.label == label
                 and "converged_fraction" in r.metrics and len(r.metrics["converged_fraction"])]
        if not seeds:
            continue
        fraction = np.array([np.mean(m["converged_fraction"]) for m in seeds])
        last = np.array([m["converged_fraction"][-1] for m in seeds])
        first_steps = np.array([m["mean_relaxation_steps"][0] for m in seeds])
        last_steps = np.array([m["mean_relaxation_steps"][-1] for m in seeds])
        lines.append(f"| {label} | {len(seeds)} | {_pct(float(fraction.mean()))} | {_pct(float(last.mean()))} "
                     f"| {_pct(float(last.min()))} | {first_steps.mean():.1f} | {last_steps.mean():.1f} |")
    if not lines:
        return []
    return [
        "## Relaxation to a tolerance",
        "",
        "Batches whose relaxation met its tolerance before the step cap, and the steps it took "
        "(`/metrics/converged_fraction`, `/metrics/mean_relaxation_steps`; means over complete seeds).",
        "",
        "| rule label | seeds | converged, all epochs (%) | converged, last epoch (%) "
        "| converged, last epoch, lowest seed (%) | mean steps, first epoch | mean steps, last epoch |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *lines,
        "",
    ]


HOW = """\
## How the numbers were computed

Every number above can be regenerated from the recordings (`cortexsim.open(path).metrics`,
the `/metrics/*` datasets of each HDF5 file):

- **Test accuracy at the best validation epoch**: for each complete run, the first epoch
  with the highest `validation_accuracy` is chosen and `test_accuracy` at that epoch is
  taken; the table gives the mean and the sample standard deviation (ddof = 1; 0 for a
  single seed) over that rule's complete seeds, in percent. A rule without a validation
  curve uses its final epoch instead (said in the table).
- **Final-epoch test accuracy**: `test_accuracy[-1]`, mean ± sample sd over seeds.
- **Best epoch**: mean over seeds of the 1-based epoch number (`/metrics/epoch`) chosen above.
- **Wall time**: the sum of a run's `/metrics/seconds` (training and evaluation per epoch,
  on whatever else the machine was doing at the time); the summary gives the mean over seeds.
- **Relaxation to a tolerance**: per run, the mean over epochs of `converged_fraction` (each
  epoch's share of batches whose energy changed by less than the tolerance before the cap),
  its last epoch, and `mean_relaxation_steps` in the first and the last epoch; then means over seeds.
- **Per-run table**: the last row of each metric; runs whose status is not `complete`
  (running, diverged, failed) show what their recording holds so far and are left out of
  every aggregate and figure.
- **Figures**: lines are means over complete seeds; shaded bands are 95 % Student t
  intervals of the mean (`cortexsim.analysis.mean_and_interval`). Alignment is column 0
  (cosine) of each `alignment` probe's rows against the batch counter `step` (the reference is
  backprop's gradient for supervised rules, the negative ELBO's gradient of the batch, 16
  samples, for variational ones: `sim.recorder.ELBOGradient`), averaged per
  seed in windows of batches (at most 100 windows; the figure title gives the width). Energy is the
  `energy` probe's rows averaged over the batches of the first and of the last recorded
  epoch of each run, then over seeds.

```python
import cortexsim, numpy as np
m = cortexsim.open("OUT/LABEL/seedS.h5").metrics
i = np.argmax(m["validation_accuracy"])      # first best epoch
print(m["epoch"][i], m["test_accuracy"][i])
```
"""


def write_report(out_dir: str | os.PathLike[str]) -> Path:
    """Write ``OUT/report/`` (summary.md and figures) for the study in ``out_dir``;
    returns the path of ``summary.md``."""
    out = Path(out_dir)
    study, runs = read_study_folder(out)
    name = str(study.get("name") or out.name)
    folder = out / "report"
    folder.mkdir(parents=True, exist_ok=True)
    figures = _figures(runs, folder, name)
    rows = _summary_rows(runs)

    lines = [f"# Study report: {name}", ""]
    if study.get("description"):
        lines += [str(study["description"]), ""]
    done = sum(run.included for run in runs)
    lines += [
        f"Study `{name}`: {_count(len(_labels(runs)), 'rule')}, {_count(len(runs), 'run')}, "
        f"{done} complete and included in the aggregates.",
        "",
    ]
    unsupervised = bool(runs) and not any(run.supervised for run in runs)
    if rows or not (variational_labels(study) or unsupervised):  # generative studies have no accuracy
        lines += [
            "## Test accuracy per rule",
            "",
            "| rule label | learning rule | seeds | test accuracy at best validation epoch (%) "
            "| final-epoch test accuracy (%) | best epoch (mean) | wall time per run (s) |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
    notes = []
    for row in rows:
        if row["seeds"] == 0:
            lines.append(f"| {row['label']} | {row['rule']} | 0 | — | — | — | — |")
            notes.append(f"- `{row['label']}`: no complete run.")
            continue
        best = _pm(row["best_test_mean"], row["best_test_sd"])
        if row["selection"] == FINAL_EPOCH:
            best += " (final epoch)"
            notes.append(f"- `{row['label']}`: {row['note']}.")
        final = _pm(row["final_test_mean"], row["final_test_sd"])
        lines.append(
            f"| {row['label']} | {row['rule']} | {row['seeds']} | {best} "
            f"| {final} | {row['best_epoch_mean']:.1f} | {_num(row['seconds_mean'], 3)} |"
        )
    excluded = [run for run in runs if not run.included]
    if excluded:
        which = ", ".join(f"`{r.label}` seed {r.seed} ({r.problem})" for r in excluded)
        notes.append(f"- Left out of the aggregates and figures: {which}.")
    lines += [""] + (notes + [""] if notes else [])
    lines += sweep_sections(out, folder, name)
    lines += _relaxation_section(runs)
    lines += generative_sections(study, out, runs, folder)
    lines += recurrent_sections(study, out, runs, folder)
    lines += [
        "## Runs",
        "",
        "| label | rule | seed | status | epochs | final train loss "
        "| final validation accuracy (%) | final test accuracy (%) | best validation epoch "
        "| test accuracy at that epoch (%) | wall time (s) | recording | note |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    lines += [_run_row(run) for run in runs]
    lines += [""] + experiment_sections(study, out, runs, folder)
    lines += ["## Figures", ""]
    if figures:
        for file, caption in figures:
            lines += [f"### {caption}", "", f"![{caption}]({file})", ""]
    else:
        lines += ["No complete run to plot.", ""]
    lines.append(HOW)
    summary = folder / "summary.md"
    summary.write_text("\n".join(lines))
    return summary


def _is_backprop(row: dict[str, Any]) -> bool:
    return row["label"] == "backprop" or row["rule"] == "backprop"


def compare_table(out_dirs: Sequence[str | os.PathLike[str]]) -> str:
    """A Markdown table of every study's rules against that study's backprop run.

    Per study and rule label: complete seeds, test accuracy at the best validation
    epoch (mean ± sample sd over seeds, %), and its difference in percentage points
    to the mean of the study's backprop rule (the label ``backprop`` or else the
    first label whose rule is ``backprop``); "n/a" where a study has none.
    """
    lines = [
        "| study | rule label | learning rule | seeds | test accuracy (%) "
        "| difference to backprop (pp) |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for out in out_dirs:
        study, runs = read_study_folder(out)
        name = str(study.get("name") or Path(out).name)
        rows = [row for row in _summary_rows(runs) if row["seeds"] > 0]
        reference = sorted(
            (r for r in rows if _is_backprop(r)), key=lambda r: r["label"] != "backprop"
        )
        bp = reference[0] if reference else None
        for row in rows:
            if bp is None:
                diff = "n/a (no backprop)"
            elif row is bp:
                diff = "reference"
            else:
                diff = f"{100.0 * (row['best_test_mean'] - bp['best_test_mean']):+.2f}"
            best = _pm(row["best_test_mean"], row["best_test_sd"])
            if row["selection"] == FINAL_EPOCH:
                best += " (final epoch)"
            lines.append(
                f"| {name} | {row['label']} | {row['rule']} | {row['seeds']} | {best} | {diff} |"
            )
    lines += [
        "",
        "Test accuracy at each run's best validation epoch, mean ± sample sd over complete seeds; "
        "the difference is the rule's mean minus backprop's mean in the same study.",
    ]
    return "\n".join(lines) + "\n"

