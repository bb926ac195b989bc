"""The experiments' part of a study report: one figure and a few lines per kind."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import plots
from ..errors import CortexsimError
from . import EXPERIMENTS
from .base import ExperimentResult, load_result


def experiment_sections(study: dict[str, Any], out: Path, runs: Sequence[Any], folder: Path) -> list[str]:
    """Markdown sections (with saved figures) for every experiment kind of the study.

    Results are read from ``LABEL/seedS.KIND.h5`` of the complete runs (also
    those left out of the accuracy aggregates for want of a test metric); a
    kind with no result yet is listed as such.
    """
    kinds = [e["kind"] for e in study.get("plan", {}).get("experiments", [])]
    lines: list[str] = []
    for kind in dict.fromkeys(kinds):
        module = EXPERIMENTS.get(kind)
        if module is None:
            lines += [f"## Experiment `{kind}`", "", "Unknown to this version of cortexsim.", ""]
            continue
        results: dict[str, list[ExperimentResult]] = {}
        for run in runs:
            path = out / run.label / f"seed{run.seed}.{kind}.h5"
            # A result is saved only after training completed; the run's own
            # metrics (an accuracy, which generative predictive coding lacks) do not matter.
            if run.status == "complete" and path.exists():
                try:
                    results.setdefault(run.label, []).append(load_result(path))
                except CortexsimError:
                    continue
        title = getattr(module, "TITLE", kind)
        lines += [f"## {title}", ""]
        if not results:
            lines += ["No complete run has this experiment's results yet.", ""]
            continue
        lines += list(module.summary(results)) + [""]
        figure = module.figure(results)
        plots.save(figure, folder / f"{kind}.png")
        lines += [f"![{title}]({kind}.png)", ""]
    return lines
