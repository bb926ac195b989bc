"""The report's sweep section: each rule's chosen setting and the whole sweep
as a figure, from ``OUT/sweep.json`` (written by ``cortexsim.study.tuning``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import plots
from ..files import read_json
from ..plots.sweep import sweep_scores

__all__ = ["sweep_sections"]


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _score(value: Any, metric: str) -> str:
    if value is None or not np.isfinite(value):
        return "—"
    return f"{100.0 * value:.2f} %" if metric.endswith("accuracy") else f"{value:.4g}"


def _at_the_edge(rules: dict[str, Any]) -> list[str]:
    """``"LABEL `KEY` = V (the highest tried)"`` for every numeric key whose chosen
    value is the smallest or largest of at least three values swept."""
    found = []
    for label, row in rules.items():
        for key, value in row.get("chosen", {}).items():
            tried = {p["setting"].get(key) for p in row.get("points", [])}
            if len(tried) < 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in tried):
                continue
            if value == max(tried):
                found.append(f"{label} `{key}` = {_value(value)} (the highest tried)")
            elif value == min(tried):
                found.append(f"{label} `{key}` = {_value(value)} (the lowest tried)")
    return found


def sweep_sections(out: Path, folder: Path, name: str) -> list[str]:
    """Markdown lines of the sweep (nothing when the study had none); draws ``sweep.png``."""
    path = out / "sweep.json"
    if not path.is_file():
        (folder / "sweep.png").unlink(missing_ok=True)
        return []
    sweep = read_json(path, "sweep index")
    rules = sweep.get("rules", {})
    metric = sweep.get("metric", "score")
    lines = [
        "## Sweep",
        "",
        f"Each rule's setting was chosen by the mean best-epoch `{metric}` "
        f"({sweep.get('direction', 'max')}) over tuning seeds {sweep.get('tuning_seeds')}, on the "
        f"validation split only; the runs above use it on the held-out seeds {sweep.get('final_seeds')}. "
        f"Every point's scores: `sweep.json`; its runs: `sweep/LABEL/POINT/`.",
        "",
        "| rule label | learning rule | points | chosen setting | validation score |",
        "| --- | --- | ---: | --- | ---: |",
    ]
    for label, row in rules.items():
        chosen = ", ".join(f"`{k}` = {_value(v)}" for k, v in row.get("chosen", {}).items()) or "—"
        lines.append(f"| {label} | {row.get('rule', '')} | {len(row.get('points', []))} | {chosen} "
                     f"| {_score(row.get('score'), metric)} |")
    edges = _at_the_edge(rules)
    if edges:
        lines += ["", "At the edge of the swept range (a better setting may lie beyond it; widen the "
                  "range to find out): " + "; ".join(edges) + "."]
    points = {label: [(p["setting"], p["score"]) for p in row.get("points", [])] for label, row in rules.items()}
    points = {label: rows for label, rows in points.items() if rows}
    if points:
        fig = sweep_scores(points, plots.rule_colors(list(points)), metric,
                           sweep.get("direction", "max"), prefix=f"{name}: ")
        plots.save(fig, folder / "sweep.png")
        lines += ["", "![Sweep](sweep.png)"]
    return lines + [""]
