"""``[sweep]``: the settings a study tunes before its final runs (docs/studies.md).

A sweep is a grid (every combination of the listed values) or ``kind =
"random"`` (``samples`` draws from lists and ``{min, max}`` ranges, with its
own ``seed``) over the keys that make a rule's settings: ``optimizer.*``
(every rule) and ``rules.LABEL.*`` (that rule alone). Each rule gets its own
points: the combinations of the global keys and of its own. Here the table
is read into points; ``plan`` turns each into a validated ``RunSpec`` and
``tuning`` runs and scores them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..validation import check_choice, check_int, check_number, invalid

__all__ = ["Sweep", "point_name", "read_sweep"]

_SETTINGS = ("kind", "seed", "samples", "tuning_seeds", "metric", "direction")
_RANGE_KEYS = ("min", "max", "scale")

Point = tuple[tuple[str, Any], ...]  # (key as written in [sweep], value), in the file's order


@dataclass(frozen=True)
class Sweep:
    """A validated ``[sweep]``: per rule label, its points and their run specs."""

    kind: str
    tuning_seeds: tuple[int, ...]
    metric: str
    direction: str  # "max" or "min"
    keys: tuple[str, ...]
    points: Mapping[str, tuple[Point, ...]]
    specs: Mapping[str, tuple[Any, ...]] = field(default_factory=dict, compare=False, repr=False)
    chosen: Mapping[str, Point] = field(default_factory=dict)  # filled in once the sweep has run

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "tuning_seeds": list(self.tuning_seeds), "metric": self.metric,
            "direction": self.direction, "keys": list(self.keys),
            "points": {label: len(points) for label, points in self.points.items()},
            "chosen": {label: dict(point) for label, point in self.chosen.items()},
        }


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted TOML keys become nested tables; a leaf is a list or a ``{min, max}`` range."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and not ({"min", "max"} & set(value)):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _scale(key: str, value: Mapping[str, Any]) -> str:
    # learning rates span decades: drawn log-uniformly unless the file says otherwise
    return value.get("scale", "log" if key.rsplit(".", 1)[-1] in ("lr", "step_size") else "linear")


def _values(key: str, value: Any, kind: str) -> Any:
    where = f"sweep.{key}"
    if isinstance(value, list):
        if not value:
            raise invalid(where, "expected a non-empty list of values")
        return value
    if isinstance(value, Mapping):
        if kind != "random":
            raise invalid(where, "a {min, max} range is drawn from by kind = 'random'; a grid lists its values")
        for part in value:
            if part not in _RANGE_KEYS:
                raise invalid(f"{where}.{part}", f"unknown key; allowed: {', '.join(_RANGE_KEYS)}")
        for part in ("min", "max"):
            if part not in value:
                raise invalid(f"{where}.{part}", "required key of a range is missing")
            check_number(value[part], f"{where}.{part}")
        if value["max"] <= value["min"]:
            raise invalid(where, f"max must be above min, got {value['min']!r} .. {value['max']!r}")
        check_choice(_scale(key, value), ("log", "linear"), f"{where}.scale")
        if _scale(key, value) == "log" and value["min"] <= 0:
            raise invalid(f"{where}.min", f"a log-uniform range needs min > 0, got {value['min']!r}")
        return dict(value)
    raise invalid(where, f"expected a list of values or a {{min, max}} range, got {value!r}")


def _draw(key: str, values: Any, rng: np.random.Generator) -> Any:
    if isinstance(values, list):
        return values[int(rng.integers(len(values)))]
    low, high = values["min"], values["max"]
    if _scale(key, values) == "log":
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    if isinstance(low, int) and isinstance(high, int):
        return int(rng.integers(low, high + 1))
    return float(rng.uniform(low, high))


def read_sweep(table: Any, labels: Sequence[str], seeds: Sequence[int], supervised: bool,
               validation: float) -> Sweep:
    """The ``[sweep]`` table as points per rule label (not yet checked against the study)."""
    if not isinstance(table, Mapping):
        raise invalid("sweep", f"expected a table [sweep], got {table!r}")
    kind = table.get("kind", "grid")
    check_choice(kind, ("grid", "random"), "sweep.kind")
    if "tuning_seeds" not in table:
        raise invalid("sweep.tuning_seeds", "required key is missing: the seeds the settings are tuned on, "
                      "apart from study.seeds")
    tuning = table["tuning_seeds"]
    if not isinstance(tuning, list) or not tuning:
        raise invalid("sweep.tuning_seeds", f"expected a non-empty list of whole numbers, got {tuning!r}")
    for i, seed in enumerate(tuning):
        check_int(seed, f"sweep.tuning_seeds[{i}]")
    check_held_out(seeds, tuning)
    if validation <= 0:
        raise invalid("sweep", "settings are scored on the validation split, but data.validation is 0")
    metric = table.get("metric", "validation_accuracy" if supervised else "validation_loss")
    if not isinstance(metric, str) or not metric.startswith("validation_"):
        raise invalid("sweep.metric", f"expected a metric of the validation split (validation_accuracy, "
                      f"validation_loss), got {metric!r}")
    direction = table.get("direction", "min" if metric.endswith(("loss", "error")) else "max")
    check_choice(direction, ("max", "min"), "sweep.direction")
    if kind == "random":
        check_int(table.get("seed", 0), "sweep.seed")
        check_int(table.get("samples"), "sweep.samples", minimum=1)
    else:
        for key in ("seed", "samples"):
            if key in table:
                raise invalid(f"sweep.{key}", "applies to kind = 'random' only")
    grid = _flatten({k: v for k, v in table.items() if k not in _SETTINGS})
    if not grid:
        raise invalid("sweep", "no setting to sweep: give e.g. optimizer.lr = [1e-3, 3e-3]")
    values = {key: _values(key, value, kind) for key, value in grid.items()}
    for key in values:
        parts = key.split(".")
        if parts[0] == "rules":
            if len(parts) < 3 or parts[1] not in labels:
                raise invalid(f"sweep.{key}", f"write rules.LABEL.KEY with LABEL one of {', '.join(labels)}")
        elif parts[0] != "optimizer":
            raise invalid(f"sweep.{key}", "a sweep tunes the rules' settings: optimizer.KEY (every rule) "
                          "or rules.LABEL.KEY (one rule)")
    points: dict[str, tuple[Point, ...]] = {}
    if kind == "random":
        rng = np.random.default_rng(table.get("seed", 0))
        draws = [tuple((key, _draw(key, v, rng)) for key, v in values.items()) for _ in range(table["samples"])]
    else:
        draws = [tuple(zip(values, combination)) for combination in itertools.product(*values.values())]
    for label in labels:
        own = [tuple((k, v) for k, v in draw if _applies(k, label)) for draw in draws]
        points[label] = tuple(dict.fromkeys(own))  # a point that differs only in other rules' keys once
    return Sweep(kind=kind, tuning_seeds=tuple(int(s) for s in tuning), metric=metric, direction=direction,
                 keys=tuple(values), points=points)


def _applies(key: str, label: str) -> bool:
    return not key.startswith("rules.") or key.split(".")[1] == label


def check_held_out(seeds: Sequence[int], tuning: Sequence[int], where: str = "study.seeds") -> None:
    """The final seeds (``where``: study.seeds or --seeds) are held out: none may be a tuning seed."""
    shared = sorted(set(int(s) for s in seeds) & set(int(s) for s in tuning))
    if shared:
        raise invalid("sweep.tuning_seeds", f"{', '.join(map(str, shared))} also in {where}; the final "
                      f"seeds are held out from tuning, so give the two lists no seed in common")


def override_of(key: str, label_index: Mapping[str, int]) -> str:
    """The ``--set`` key path of a sweep key (``rules.pc.lr`` -> ``rules[0].lr``)."""
    parts = key.split(".")
    if parts[0] == "rules":
        return f"rules[{label_index[parts[1]]}]." + ".".join(parts[2:])
    return key


def point_name(point: Point) -> str:
    """A folder name from a setting: ``optimizer.lr=0.001,inference.steps=20``."""
    parts = []
    for key, value in point:
        short = ".".join(key.split(".")[2:]) if key.startswith("rules.") else key
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        parts.append(f"{short}={text}")
    name = ",".join(parts) or "default"
    return "".join(c if c.isalnum() or c in "._=,-+" else "_" for c in name)
