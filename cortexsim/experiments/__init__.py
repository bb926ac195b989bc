"""In-silico experiments on trained models: present stimuli, read responses.

Each experiment is a module with

- ``run(hierarchy, rule, *, seed, **settings) -> ExperimentResult``: the
  experiment itself, leaving the model's weights as it found them;
- ``figure(results) -> Figure``: its figure from ``{label: [result per seed]}``;
- ``summary(results) -> list[str]``: Markdown lines for a report;
- optionally ``validate(settings, model, where)``, run when the study is read, against
  the model's description (``HierarchySpec``) or a built ``Hierarchy``.

``run`` may take ``data``: the study's ``[data]`` section, passed by the
runner (stimuli must match the layout the model was trained on).

A study names them in ``[[experiments]]`` tables (``kind`` plus the settings
of ``run``); they run on every complete run and are saved as
``LABEL/seedS.KIND.h5`` (:func:`save_result`).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from ..validation import check_choice, check_keys, invalid, located, settings_keys
from .base import ExperimentResult, load_result, save_result

EXPERIMENTS: dict[str, ModuleType] = {}

__all__ = ["EXPERIMENTS", "ExperimentResult", "load_result", "register", "save_result", "settings_of"]


def register(name: str, module: ModuleType) -> None:
    """Make ``module`` available to study files as ``kind = name``."""
    EXPERIMENTS[name] = module


def settings_of(table: Any, where: str) -> tuple[str, dict[str, Any]]:
    """Validate one ``[[experiments]]`` table; returns ``(kind, settings)``.

    Errors name ``where`` (``experiments[0]``), resolved against any
    enclosing ``located`` block (cortexsim.validation)."""
    with located(where, owner="experiment"):
        if not isinstance(table, dict):
            raise invalid("experiment", f"expected an [[experiments]] table, got {table!r}")
        if "kind" not in table:
            raise invalid("experiment.kind",
                          f"required key is missing; one of {', '.join(EXPERIMENTS)}")
        check_choice(table["kind"], tuple(EXPERIMENTS), "experiment.kind")
        # the settings are run's keyword-only arguments; the runner passes seed and data
        accepted = settings_keys(EXPERIMENTS[table["kind"]].run, keyword_only=True,
                                 exclude=("seed", "data"))
        check_keys(table, ("kind",) + accepted, "experiment")
    return table["kind"], {k: v for k, v in table.items() if k != "kind"}


def _register_builtin() -> None:
    from . import end_stopping, oddball, receptive_fields

    register("end_stopping", end_stopping)
    register("oddball", oddball)
    register("receptive_fields", receptive_fields)


_register_builtin()
