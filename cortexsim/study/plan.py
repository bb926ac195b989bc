"""Study files: a TOML description (docs/studies.md) -> a validated plan ->
one recorded run per rule x seed, with an index of what ran.

Everything the file says is checked before the first run; errors name the
file and the key path (``rules[1].inference.steps``).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..data.binarize import BINARIZE_MODES
from ..errors import ConfigurationError
from ..experiments import EXPERIMENTS, settings_of
from ..optim import OPTIMIZERS, SCHEDULES, make_schedule
from .overrides import apply_override
from .sweep import Sweep, override_of, read_sweep
from ..sim.probes import Probe
from ..files import read_toml
from ..inference import Relaxation
from ..report.options import REPORT_OPTIONS, report_options
from ..rules import RULES, Capabilities, Rule, make_rule
from ..model.spec import HierarchySpec
from ..validation import (
    check_bool, check_choice, check_int, check_keys, check_number, invalid, located, settings_keys,
)

__all__ = ["DATASETS", "RunSpec", "StudyPlan", "load_study"]

DATASETS = ("digits", "mnist", "fashion-mnist", "shapes", "dsprites", "patches")
LAYOUT_KEYS = ("height", "width", "modules", "offset", "window", "filter")
_SECTIONS = ("study", "model", "data", "schedule", "optimizer", "rules", "probes", "experiments",
             "outputs", "claims", "sweep")
# What a [[claims]] row can read from a study's runs (cortexsim.report.reproductions).
CLAIM_METRICS = ("test_error", "final_test_error", "log_likelihood", "disentanglement.MIG",
                 "disentanglement.beta_vae", "disentanglement.D", "disentanglement.C",
                 "disentanglement.I")
_CLAIM_KEYS = ("name", "label", "metric", "published", "source", "within", "percent")


@dataclass(frozen=True)
class RunSpec:
    """One rule of a study: what to build for it, and how to call it."""

    label: str
    rule: str
    settings: Mapping[str, Any]
    optimizer: Mapping[str, Any]
    capabilities: Capabilities = field(compare=False)  # read once, when the plan is validated

    def make_rule(self) -> Rule:
        """A fresh rule object (one per run: rules carry run-time state)."""
        return make_rule(self.rule, **self.settings)

    @property
    def supervised(self) -> bool:
        """Whether the rule learns from labels (generative predictive coding does not)."""
        return self.capabilities.supervised


@dataclass(frozen=True)
class StudyPlan:
    """A validated study: model x data x rules x seeds x schedule x probes."""

    path: Path
    name: str
    description: str
    seeds: tuple[int, ...]
    out: Path
    model: HierarchySpec
    data: Mapping[str, Any]
    schedule: Mapping[str, Any]
    rules: tuple[RunSpec, ...]
    probes: tuple[Probe, ...]
    report: bool = False
    source: str = field(repr=False, default="")
    experiments: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    overrides: tuple[str, ...] = ()
    outputs: Mapping[str, Any] = field(default_factory=dict)  # report options of generative studies
    claims: tuple[Mapping[str, Any], ...] = ()  # published numbers the study sets itself against
    sweep: Sweep | None = None  # [sweep]: settings tuned on other seeds before the runs (study.tuning)

    def to_dict(self) -> dict[str, Any]:
        """The resolved plan as plain data (stored in study.json and recordings)."""
        return {
            "file": str(self.path),
            "name": self.name,
            "description": self.description,
            "seeds": list(self.seeds),
            "model": self.model.to_dict(),
            "data": dict(self.data),
            "schedule": dict(self.schedule),
            "rules": [
                {"label": r.label, "rule": r.rule, **r.settings, "optimizer": dict(r.optimizer)}
                for r in self.rules
            ],
            "probes": [vars(p).copy() for p in self.probes],
            "experiments": [{"kind": kind, **settings} for kind, settings in self.experiments],
            "overrides": list(self.overrides),
            "outputs": {key: dict(value) if isinstance(value, Mapping) else value
                        for key, value in self.outputs.items()},
            "claims": [dict(claim) for claim in self.claims],
            **({"sweep": self.sweep.to_dict()} if self.sweep is not None else {}),
        }


def _table(document: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = document.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{key}: expected a table [{key}], got {value!r}")
    return value


_INIT_KEYS = ("weight_init", "init_scale", "feedback_init")


def _model(table: Mapping[str, Any], study_file: Path) -> HierarchySpec:
    if "path" in table:
        # A study may start the model file's weights another way; the areas stay the file's.
        check_keys(table, ("path",) + _INIT_KEYS, "model")
        if not isinstance(table["path"], str):
            raise ConfigurationError(f"model.path: expected a file name, got {table['path']!r}")
        model_file = (study_file.parent / table["path"]).resolve()
        if not model_file.exists():
            raise ConfigurationError(f"model.path: no model file at {model_file}")
        spec = HierarchySpec.from_toml(model_file)
        if not set(_INIT_KEYS) & set(table):
            return spec
        return HierarchySpec.from_dict({**spec.to_dict(), **{k: table[k] for k in _INIT_KEYS if k in table}},
                                       "model")
    if "areas" not in table:
        raise ConfigurationError("model: give either path = 'models/NAME.toml' or [[model.areas]]")
    return HierarchySpec.from_dict(table, "model")


def _data(table: Mapping[str, Any]) -> dict[str, Any]:
    check_keys(table, ("name", "validation", "data_dir", "limit", "binarize", "n", "layout"), "data")
    data = {"name": table.get("name", "digits"), "validation": table.get("validation", 0.1),
            "data_dir": table.get("data_dir"), "limit": table.get("limit", 0)}
    check_choice(data["name"], DATASETS, "data.name")
    if "binarize" in table:  # Bernoulli models: {0, 1} images (cortexsim.data.binarize)
        check_choice(table["binarize"], BINARIZE_MODES, "data.binarize")
        data["binarize"] = table["binarize"]
    if "n" in table:  # generated or sampled datasets: how many images
        if data["name"] not in ("shapes", "dsprites", "patches"):
            raise ConfigurationError(f"data.n: applies to shapes, dsprites and patches, not {data['name']!r}")
        data["n"] = check_int(table["n"], "data.n", minimum=2)
    if "layout" in table:  # patches: the module layout (cortexsim.data.module_patches)
        if data["name"] != "patches":
            raise ConfigurationError(f"data.layout: applies to patches only, not {data['name']!r}")
        layout = table["layout"]
        if not isinstance(layout, Mapping):
            raise ConfigurationError(f"data.layout: expected a table, got {layout!r}")
        check_keys(layout, LAYOUT_KEYS, "data.layout")
        data["layout"] = dict(layout)
    check_number(data["validation"], "data.validation", below=1.0)
    if data["validation"] < 0:
        raise ConfigurationError(f"data.validation: must be >= 0, got {data['validation']!r}")
    check_int(data["limit"], "data.limit")
    if data["data_dir"] is not None and not isinstance(data["data_dir"], str):
        raise ConfigurationError(f"data.data_dir: expected a folder name, got {data['data_dir']!r}")
    return data


def _schedule(table: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("epochs", "batch_size", "checkpoint_every", "backend", "dtype", "learning_rate")
    check_keys(table, keys, "schedule")
    if "learning_rate" in table:  # [schedule.learning_rate]: kind and its settings
        rates = table["learning_rate"]
        if not isinstance(rates, Mapping):
            raise invalid("schedule.learning_rate", f"expected a table (kind = 'step', ...), got {rates!r}")
        kind = rates.get("kind", "constant")
        check_choice(kind, tuple(SCHEDULES), "schedule.learning_rate.kind")
        check_keys(rates, ("kind",) + settings_keys(SCHEDULES[kind]), "schedule.learning_rate")
        make_schedule(**rates)
    schedule = {"epochs": 10, "batch_size": 32, "checkpoint_every": 100, "backend": "numpy",
                "dtype": "float32", **table}
    check_int(schedule["epochs"], "schedule.epochs", minimum=1)
    check_int(schedule["batch_size"], "schedule.batch_size", minimum=1)
    check_int(schedule["checkpoint_every"], "schedule.checkpoint_every")
    check_choice(schedule["backend"], ("numpy", "cupy"), "schedule.backend")
    check_choice(schedule["dtype"], ("float32", "float64"), "schedule.dtype")
    return schedule


def _optimizer(table: Mapping[str, Any], where: str, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The optimizer settings at ``where`` (relative to the current location),
    merged over ``base``; the optimizer's own checks name ``where``'s keys."""
    if not isinstance(table, Mapping):
        with located(where, owner="optimizer"):
            raise invalid("optimizer", f"expected a table of settings, got {table!r}")
    merged = {"name": "adam", "lr": 1e-3} if base is None else dict(base)
    if "name" in table and base is not None and table["name"] != base["name"]:
        merged = {"name": table["name"], "lr": base["lr"]}
    merged.update(table)
    with located(where, owner="optimizer"):
        check_choice(merged["name"], tuple(OPTIMIZERS), "optimizer.name")
        check_keys(table, ("name",) + settings_keys(OPTIMIZERS[merged["name"]]), "optimizer")
        OPTIMIZERS[merged["name"]](**{k: v for k, v in merged.items() if k != "name"})
    return merged


def _rule(table: Any, index: int, optimizer: Mapping[str, Any]) -> RunSpec:
    where = f"rules[{index}]"
    if not isinstance(table, Mapping):
        raise ConfigurationError(f"{where}: expected a [[rules]] table, got {table!r}")
    if "rule" not in table:
        raise ConfigurationError(f"{where}.rule: required key is missing; one of {', '.join(RULES)}")
    check_choice(table["rule"], tuple(RULES), f"{where}.rule")
    # Inside, "rule" is the rule's own name for this table, so the checks
    # below and the rule's (``rule.beta``, ``inference.steps``) name rules[i];
    # hence the key called ``rule`` is checked above, with its full path.
    with located(where, owner="rule"):
        accepted = settings_keys(RULES[table["rule"]])  # a rule's settings: its constructor's arguments
        check_keys(table, ("rule", "label", "optimizer") + accepted, "rule")
        label = table.get("label", table["rule"])
        if not isinstance(label, str) or not label or "/" in label:
            raise invalid("label", f"expected a name without '/', got {label!r}")
        settings = {k: v for k, v in table.items() if k not in ("rule", "label", "optimizer")}
        if "mode" in settings:
            check_choice(settings["mode"], ("discriminative", "generative"), "mode")
        if "inference" in settings:
            check_keys(settings["inference"], tuple(f.name for f in fields(Relaxation)), "inference")
            settings["inference"] = dict(settings["inference"])
        rule_optimizer = _optimizer(table.get("optimizer", {}), "optimizer", optimizer)
        try:
            # the rule's own checks, before anything runs
            rule = make_rule(table["rule"], **settings)
        except TypeError as exc:
            raise invalid("rule", str(exc)) from None
    return RunSpec(label=label, rule=table["rule"], settings=settings, optimizer=rule_optimizer,
                   capabilities=rule.capabilities)


def _claims(table: Any, labels: Sequence[str],
            experiments: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[dict[str, Any], ...]:
    """``[[claims]]``: a published number and where our runs' counterpart is read.

    ``metric`` is one of ``CLAIM_METRICS`` (``disentanglement.*``: the report's
    scores of the code, ``[outputs] disentanglement``) or ``experiment.KIND.KEY`` (a key
    of that experiment's summary); ``published`` is the paper's number (left
    out where the paper states the claim without one); ``within`` an allowed
    gap, when the study holds itself to one; ``percent`` shows a fraction as %.
    """
    if not isinstance(table, list):
        raise invalid("claims", f"expected [[claims]] tables, got {table!r}")
    kinds = [kind for kind, _ in experiments]
    claims = []
    for i, claim in enumerate(table):
        where = f"claims[{i}]"
        check_keys(claim, _CLAIM_KEYS, where)
        for key in ("name", "label", "metric", "source"):
            if not isinstance(claim.get(key), str) or not claim[key]:
                raise invalid(f"{where}.{key}", f"expected a text, got {claim.get(key)!r}")
        check_choice(claim["label"], tuple(labels), f"{where}.label")
        metric = claim["metric"]
        if metric.startswith("experiment."):
            kind = metric.split(".")[1] if metric.count(".") == 2 else ""
            if kind not in kinds:
                raise invalid(f"{where}.metric", f"{metric!r}: write experiment.KIND.KEY with KIND one of "
                              f"this study's experiments ({', '.join(kinds) or 'none'})")
        else:
            check_choice(metric, CLAIM_METRICS, f"{where}.metric")
        for key in ("published", "within"):
            if key in claim:
                check_number(claim[key], f"{where}.{key}")
        if "percent" in claim:
            check_bool(claim["percent"], f"{where}.percent")
        claims.append(dict(claim))
    return tuple(claims)


def _same_task(rules: Sequence[RunSpec]) -> None:
    """A study compares rules on one task: all learn from labels, or none does
    (generative rules such as ``elbo`` model the images alone)."""
    first = rules[0].supervised
    for i, spec in enumerate(rules[1:], start=1):
        if spec.supervised != first:
            how = "learns without labels" if first else "learns from labels"
            other = "learns from them" if first else "learns without them"
            raise ConfigurationError(
                f"rules[{i}].rule: {spec.rule!r} {how}, while rules[0] ({rules[0].label!r}) "
                f"{other}; a study compares rules on one task, so give unsupervised rules "
                f"a study of their own"
            )


def _sweep(document: Mapping[str, Any], path: Path, source: str, plan: StudyPlan) -> Sweep:
    """Read [sweep] and build every point of every rule as a RunSpec, checked
    like the study file with that value written in; errors name ``sweep.KEY``."""
    data = _table(document, "data")
    sweep = read_sweep(document["sweep"], [r.label for r in plan.rules], plan.seeds,
                       plan.rules[0].supervised, data.get("validation", 0.1))
    index = {spec.label: i for i, spec in enumerate(plan.rules)}
    base = {k: v for k, v in document.items() if k != "sweep"}
    specs: dict[str, tuple[RunSpec, ...]] = {}
    for label, points in sweep.points.items():
        built = []
        for point in points:
            variant = copy.deepcopy(base)
            key = ""
            try:
                for key, value in point:
                    apply_override(variant, f"{override_of(key, index)}={_toml(value)}")
                built.append(_plan(variant, path, source).rules[index[label]])
            except ConfigurationError as exc:
                where, _, reason = str(exc).partition(": ")
                for written, _ in point:  # the key whose value the check refused
                    if where.startswith(override_of(written, index)):
                        key = written
                raise ConfigurationError(f"sweep.{key}: {reason or exc}") from None
        specs[label] = tuple(built)
    return replace(sweep, specs=specs)


def _toml(value: Any) -> str:
    """A value as TOML text, for apply_override."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _plan(document: Mapping[str, Any], path: Path, source: str) -> StudyPlan:
    plan = _plan_without_sweep(document, path, source)
    if "sweep" in document:
        plan = replace(plan, sweep=_sweep(document, path, source, plan))
    return plan


def _plan_without_sweep(document: Mapping[str, Any], path: Path, source: str) -> StudyPlan:
    check_keys(document, _SECTIONS, "study file")
    study = _table(document, "study")
    check_keys(study, ("name", "description", "seeds", "out"), "study")
    seeds = study.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds:
        raise ConfigurationError(f"study.seeds: expected a non-empty list of whole numbers, got {seeds!r}")
    for i, seed in enumerate(seeds):
        check_int(seed, f"study.seeds[{i}]")
    model = _model(_table(document, "model"), path)
    optimizer = _optimizer(_table(document, "optimizer"), "optimizer")
    rules_table = document.get("rules")
    if not isinstance(rules_table, list) or not rules_table:
        raise ConfigurationError("rules: expected at least one [[rules]] table")
    rules = tuple(_rule(table, i, optimizer) for i, table in enumerate(rules_table))
    _same_task(rules)
    labels = [r.label for r in rules]
    for i, label in enumerate(labels):
        if labels.index(label) != i:
            raise ConfigurationError(f"rules[{i}].label: {label!r} is used twice; give each rule its own label")
    probes_table = document.get("probes", [])
    if not isinstance(probes_table, list):
        raise ConfigurationError(f"probes: expected [[probes]] tables, got {probes_table!r}")
    probes = tuple(Probe.from_dict(table, f"probes[{i}]") for i, table in enumerate(probes_table))
    for i, probe in enumerate(probes):
        probe.validate(f"probes[{i}]", model)
    experiments_table = document.get("experiments", [])
    if not isinstance(experiments_table, list):
        raise ConfigurationError(f"experiments: expected [[experiments]] tables, got {experiments_table!r}")
    experiments = tuple(settings_of(table, f"experiments[{i}]") for i, table in enumerate(experiments_table))
    for i, (kind, settings) in enumerate(experiments):
        check = getattr(EXPERIMENTS[kind], "validate", None)
        if check is not None:  # the experiment's own checks against the model
            check(settings, model, f"experiments[{i}]")
    outputs = _table(document, "outputs")
    check_keys(outputs, ("out", "report") + tuple(REPORT_OPTIONS), "outputs")
    if "out" in outputs and "out" in study:
        raise ConfigurationError("outputs.out: the output folder is given twice (also as study.out); keep one")
    out = outputs.get("out", study.get("out"))
    if out is not None and not isinstance(out, str):
        raise ConfigurationError(f"outputs.out: expected a folder name, got {out!r}")
    report = outputs.get("report", False)
    if not isinstance(report, bool):
        raise ConfigurationError(f"outputs.report: expected true or false, got {report!r}")
    options = report_options(outputs, rules, _table(document, "data").get("name", "digits"))
    name = study.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"study.name: expected a name, got {name!r}")
    return StudyPlan(
        path=path,
        name=name,
        description=str(study.get("description", "")),
        seeds=tuple(int(s) for s in seeds),
        out=Path(out) if out is not None else Path("runs") / name,
        model=model,
        data=_data(_table(document, "data")),
        schedule=_schedule(_table(document, "schedule")),
        rules=rules,
        probes=probes,
        report=report,
        source=source,
        experiments=experiments,
        outputs=options,
        claims=_claims(document.get("claims", []), labels, experiments),
    )


def load_study(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> StudyPlan:
    """Read and validate a study file; every error names the file and the key.

    ``overrides`` are ``key.path=value`` strings applied to the file's values
    before validation (``cortexsim run --set``), so one study file serves a
    longer schedule or another dataset; they are kept in the plan.
    """
    path = Path(path)
    document, source = read_toml(path, "study file")
    try:
        for assignment in overrides:
            apply_override(document, assignment)
        plan = _plan(document, path, source)
    except ConfigurationError as exc:
        message = str(exc)
        for assignment in overrides:
            key = assignment.partition("=")[0].strip()
            if message.startswith((key + ":", key + ".")):
                message += f" (set on the command line: --set {assignment})"
        raise ConfigurationError(message if message.startswith(str(path)) else f"{path}: {message}") from None
    except (TypeError, ValueError) as exc:  # a value of a type no check foresaw
        raise ConfigurationError(f"{path}: {exc}") from None
    return replace(plan, overrides=tuple(overrides))
