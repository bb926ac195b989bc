"""Runs a study's ``[sweep]``: every point x rule x tuning seed to
``OUT/sweep/LABEL/POINT/``, scored on the validation split only; each rule's
best point becomes its setting for the study's own runs on the held-out seeds.

``OUT/sweep.json`` keeps every point's scores and the choice.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CortexsimError
from ..recording import open_recording
from .plan import StudyPlan
from .sweep import point_name

__all__ = ["SWEEP_INDEX", "run_sweep", "score_of"]

SWEEP_INDEX = "sweep.json"


def score_of(metrics: dict[str, Any], metric: str, direction: str) -> float:
    """A run's score: the best epoch of ``metric`` (NaN if never recorded or not finite)."""
    values = np.asarray(metrics.get(metric, ()), dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan")
    return float(values.max() if direction == "max" else values.min())


def _run_score(folder: Path, label: str, seed: int, entry: dict[str, Any], metric: str,
               direction: str) -> float:
    if entry.get("status") != "complete":  # diverged or failed: never the best
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with open_recording(folder / label / f"seed{seed}.h5") as recording:
            return score_of({k: np.array(v) for k, v in recording.metrics.items()}, metric, direction)


def run_sweep(plan: StudyPlan, out: Path, run: Callable[..., dict[str, Any]]) -> StudyPlan:
    """Run ``plan``'s sweep with ``run([(point_plan, folder), ...], seeds)`` (the
    runner's, which sends every point's runs at once where Dask runs them, and
    applies --resume and --overwrite to each); returns the plan whose rules
    carry their chosen settings and no sweep to run."""
    sweep = plan.sweep
    assert sweep is not None
    summary: dict[str, Any] = {"metric": sweep.metric, "direction": sweep.direction, "kind": sweep.kind,
                               "tuning_seeds": list(sweep.tuning_seeds), "final_seeds": list(plan.seeds),
                               "keys": list(sweep.keys), "rules": {}}
    rules, chosen = [], {}
    points = [(spec, point, point_spec, out / "sweep" / spec.label / point_name(point))
              for spec in plan.rules
              for point, point_spec in zip(sweep.points[spec.label], sweep.specs[spec.label])]
    indexes = run([(replace(plan, rules=(point_spec,), sweep=None, report=False,
                            name=f"{plan.name} sweep {spec.label} {point_name(point)}"), folder)
                   for spec, point, point_spec, folder in points], sweep.tuning_seeds)
    for spec in plan.rules:
        rows = []
        for (owner, point, _, folder), index in zip(points, indexes):
            if owner is not spec:
                continue
            scores = {entry["seed"]: _run_score(folder, spec.label, entry["seed"], entry, sweep.metric,
                                                sweep.direction) for entry in index["runs"]}
            values = list(scores.values())
            rows.append({
                "setting": dict(point), "name": point_name(point),
                "folder": str(folder.relative_to(out)),
                "scores": {str(seed): score for seed, score in scores.items()},
                "statuses": {str(e["seed"]): e.get("status") for e in index["runs"]},
                "score": float(np.mean(values)) if values and all(np.isfinite(values)) else float("nan"),
            })
        finite = [i for i, row in enumerate(rows) if np.isfinite(row["score"])]
        if not finite:
            _write(out, summary | {"rules": summary["rules"] | {spec.label: {"points": rows}}})
            raise CortexsimError(f"sweep: no setting of rule {spec.label!r} completed on every tuning seed "
                                 f"(see {out / SWEEP_INDEX})")
        pick = max if sweep.direction == "max" else min
        best = pick(finite, key=lambda i: rows[i]["score"])  # the first of equal scores
        chosen[spec.label] = sweep.points[spec.label][best]
        rules.append(sweep.specs[spec.label][best])
        summary["rules"][spec.label] = {"rule": spec.rule, "chosen": rows[best]["setting"],
                                        "score": rows[best]["score"], "points": rows}
    _write(out, summary)
    return replace(plan, rules=tuple(rules), sweep=replace(sweep, chosen=chosen))


def _write(out: Path, summary: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    temporary = out / (SWEEP_INDEX + ".tmp")
    temporary.write_text(json.dumps(summary, indent=2, default=str, allow_nan=True))
    os.replace(temporary, out / SWEEP_INDEX)
