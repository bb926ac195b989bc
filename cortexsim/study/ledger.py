"""The reproduction ledger: every published number a study sets itself
against (``[[claims]]``, docs/studies.md), beside ours from its runs.

``cortexsim ledger`` reads each study file of ``studies/papers/``, finds its
runs in the study's output folder and writes ``docs/reproductions.md``: per
claim, the paper's number, our protocol, our number as mean ± sd over the
complete seeds, the gap and the command that reproduces it. Nothing is
typed in by hand: a claim whose runs are missing says so.

What a claim's ``metric`` reads, per seed:

- ``test_error``: 100 - test accuracy (%) at the run's best validation epoch
  (the final epoch without a validation set);
- ``final_test_error``: 100 - test accuracy (%) at the last epoch;
- ``log_likelihood``: the importance-weighted ``log p(x)`` the study's report
  computed and kept in ``LABEL/seedS.generative.json`` (``[outputs]
  log_likelihood``; its ``k`` and number of images are shown);
- ``disentanglement.KEY`` (``MIG``, ``beta_vae``, ``D``, ``C``, ``I``): the
  score of the code the report computed on the shapes and kept in the same
  file (``[outputs] disentanglement``);
- ``experiment.KIND.KEY``: ``KEY`` of the summary of the ``KIND`` experiment
  saved beside the run (``LABEL/seedS.KIND.h5``), as a percentage with
  ``percent = true``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.learning_curves import best_epoch
from ..errors import CortexsimError
from ..experiments.base import load_result
from ..report.folder import RunData, read_study_folder
from .plan import StudyPlan, load_study

__all__ = ["ClaimRow", "claim_rows", "ledger_markdown", "write_ledger"]

COMMAND = "cortexsim ledger"


@dataclass
class ClaimRow:
    """One claim of one study, with our values per seed."""

    study: StudyPlan
    claim: Mapping[str, Any]
    values: dict[int, float]  # seed -> our number
    protocol: str
    missing: str = ""  # why some or all seeds have no value

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.values.values()))) if self.values else float("nan")

    @property
    def sd(self) -> float:
        """Sample standard deviation over seeds (0 for one seed)."""
        values = list(self.values.values())
        return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0

    @property
    def gap(self) -> float | None:
        published = self.claim.get("published")
        return None if published is None or not self.values else self.mean - float(published)


def _test_error(run: RunData, at_best: bool) -> float:
    test = np.asarray(run.metrics["test_accuracy"], dtype=np.float64)
    validation = run.metrics.get("validation_accuracy")
    index = len(test) - 1
    if at_best and validation is not None and len(validation):
        index = best_epoch(np.asarray(validation)[: len(test)])
    return 100.0 * (1.0 - float(test[index]))


def _report_cache(out: Path, run: RunData, key: str) -> dict[str, Any]:
    """The entry ``key`` the report kept for this run (``LABEL/seedS.generative.json``)."""
    path = out / run.label / f"seed{run.seed}.generative.json"
    try:
        return dict(json.loads(path.read_text())[key])
    except (OSError, ValueError, KeyError):
        raise LookupError(f"no {key.replace('_', '-')} in {path} (run `cortexsim report {out}`)") from None


def _value(out: Path, run: RunData, metric: str, percent: bool) -> tuple[float, dict[str, Any]]:
    if metric in ("test_error", "final_test_error"):
        if "test_accuracy" not in run.metrics:
            raise LookupError(f"{run.recording}: no test accuracy")
        return _test_error(run, at_best=metric == "test_error"), {}
    if metric == "log_likelihood":
        entry = _report_cache(out, run, "log_likelihood")
        return float(entry["value"]), dict(entry["settings"])
    if metric.startswith("disentanglement."):
        value = float(_report_cache(out, run, "disentanglement")["value"][metric.split(".")[1]])
        return (100.0 * value if percent else value), {}
    _, kind, key = metric.split(".")
    path = out / run.label / f"seed{run.seed}.{kind}.h5"
    if not path.exists():
        raise LookupError(f"no {kind} result at {path}")
    value = float(load_result(path).summary[key])
    return (100.0 * value if percent else value), {}


def _protocol(plan: StudyPlan, metric: str, settings: Sequence[Mapping[str, Any]]) -> str:
    schedule = plan.schedule
    parts = [f"{schedule['epochs']} epochs, batch {schedule['batch_size']}"]
    if plan.data.get("limit"):
        parts.append(f"first {plan.data['limit']:,} training images")
    if metric == "log_likelihood" and settings:
        ks = sorted({int(s["k"]) for s in settings})
        images = sorted({int(s["images"]) for s in settings})
        parts.append(f"L_{'/'.join(map(str, ks))} on {'/'.join(f'{n:,}' for n in images)} test images")
    elif metric in ("test_error", "final_test_error"):
        parts.append("at the best validation epoch" if metric == "test_error" else "at the last epoch")
    return "; ".join(parts)


def claim_rows(study_file: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> list[ClaimRow]:
    """The claims of one study file, each with our values from the study's runs
    (in ``out``, default the study's own output folder)."""
    plan = load_study(study_file)
    out = Path(out) if out is not None else plan.out
    try:
        _, runs = read_study_folder(out)
        problem = ""
    except CortexsimError as exc:
        runs, problem = [], f"not run yet ({exc})" if out.exists() else "not run yet"
    rows = []
    for claim in plan.claims:
        values: dict[int, float] = {}
        settings: list[dict[str, Any]] = []
        missing = [problem] if problem else []
        for run in runs:
            if run.label != claim["label"] or run.seed not in plan.seeds:
                continue
            if not run.included:
                missing.append(f"seed {run.seed}: {run.problem}")
                continue
            try:
                value, used = _value(out, run, claim["metric"], bool(claim.get("percent")))
            except (LookupError, KeyError, CortexsimError) as exc:
                missing.append(f"seed {run.seed}: {exc}")
                continue
            values[run.seed] = value
            if used:
                settings.append(used)
        absent = [seed for seed in plan.seeds if seed not in values and not any(
            m.startswith(f"seed {seed}:") for m in missing)]
        if absent and not problem:
            missing.append(f"seeds {', '.join(map(str, absent))}: no run")
        rows.append(ClaimRow(plan, claim, values, _protocol(plan, claim["metric"], settings),
                             "; ".join(missing)))
    return rows


def _number(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _study_path(row: ClaimRow, root: Path) -> Path:
    try:
        return row.study.path.resolve().relative_to(root.resolve())
    except ValueError:
        return row.study.path


def _command(study: Path) -> str:
    return f"`cortexsim run {study} --resume`"


def ledger_markdown(rows: Sequence[ClaimRow], root: Path = Path("."),
                    kept: Mapping[Path, Sequence[str]] | None = None) -> str:
    """The ledger as Markdown: one table row per claim. ``kept`` maps a study
    file whose runs are not here to its rows of the previous ledger, used in
    place of its "not run" rows and listed as kept."""
    kept = kept or {}
    lines = [
        "# Reproductions",
        "",
        f"Generated by `{COMMAND}` from the recordings of the studies in `studies/papers/`; "
        "do not edit by hand. Each study file's header says which parts of the paper's "
        "protocol it keeps and which it shortens, and why.",
        "",
        "Ours: mean ± sample sd over the complete seeds of the study (n). Gap: ours minus "
        "the paper's. Within: the gap the study holds itself to, where it sets one. "
        "Test errors are measured on all 10,000 test images.",
        "",
        "| claim | paper | published | our protocol | ours | n | gap | within | command |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | --- | --- |",
    ]
    notes = []
    shown: set[Path] = set()
    for row in rows:
        study = _study_path(row, root)
        if study in kept:  # its previous rows, in the place of its first claim
            if study not in shown:
                lines += kept[study]
                shown.add(study)
            continue
        claim = row.claim
        within = claim.get("within")
        verdict = "—"
        if within is not None and row.gap is not None:
            verdict = f"{'yes' if abs(row.gap) <= float(within) else 'no'} (±{within})"
        ours = f"{_number(row.mean)} ± {_number(row.sd)}" if row.values else "not run"
        lines.append(
            f"| {_cell(claim['name'])} | {_cell(claim['source'])} | {_number(claim.get('published'))} "
            f"| {_cell(row.protocol)} | {ours} | {len(row.values)} | {_number(row.gap)} | {verdict} "
            f"| {_command(study)} |"
        )
        if row.missing:
            notes.append(f"- {_cell(claim['name'])}: {row.missing}")
    if notes:
        lines += ["", "Missing values:", ""] + notes
    if kept:
        lines += ["", "Rows kept from the ledger as last generated, since these studies' recordings are "
                  "not in their output folders where it was regenerated (run them, or regenerate where "
                  "they are, to recompute):", ""]
        lines += [f"- `{study}`" for study in kept]
    return "\n".join(lines) + "\n"


def _previous_rows(ledger: Path, studies: Sequence[Path]) -> dict[Path, list[str]]:
    """The table rows of an existing ledger that belong to each of ``studies``."""
    if not ledger.exists():
        return {}
    table = [line for line in ledger.read_text().splitlines() if line.startswith("| ")]
    found = {study: [line for line in table if line.rstrip().endswith(f"| {_command(study)} |")]
             for study in studies}
    return {study: rows for study, rows in found.items() if rows}


def write_ledger(studies: str | os.PathLike[str] = "studies/papers",
                 out: str | os.PathLike[str] = "docs/reproductions.md", keep: bool = True) -> Path:
    """Read every ``*.toml`` study in ``studies`` and write the ledger to ``out``.

    With ``keep``, a study whose output folder does not exist here keeps its
    rows of the ledger already at ``out`` (recordings are large and often live
    on another machine), and the ledger lists it as kept; without, its rows
    say "not run"."""
    folder = Path(studies)
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise CortexsimError(f"{folder}: no study files (*.toml) to read claims from")
    rows = [row for path in files for row in claim_rows(path)]
    path = Path(out)
    root = Path(".")
    absent = sorted({_study_path(row, root) for row in rows if not row.study.out.exists()})
    kept = _previous_rows(path, absent) if keep else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(ledger_markdown(rows, root, kept))
    os.replace(temporary, path)
    return path
