"""Probes: declarations of what to record and when ("record X every Y").

A probe names a quantity of a target (an area, a parameter, a metric), how
often to take it (every N batches or epochs, optionally every k relaxation
steps inside inference) and how many samples of the batch to keep. Rules and
inference know nothing of probes: a probe reads the ``State``, the gradients
and the hierarchy that the scheduler hands to its slots.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..model.hierarchy import Hierarchy, parameter_keys
from ..model.spec import HierarchySpec
from ..inference import State
from ..rules import Capabilities
from ..validation import check_choice, check_int, check_keys, invalid, located

__all__ = ["Probe", "QUANTITIES", "METRICS", "VARIATIONAL", "row_shape", "row_value", "alignment", "pathway",
           "unsupported"]

QUANTITIES = ("activity", "error", "prediction", "weights", "update", "alignment", "energy", "metric", "kl")
METRICS = ("loss", "energy", "steps", "reconstruction", "kl")
VARIATIONAL = ("reconstruction", "kl")  # metrics only variational rules (elbo) have
UNITS = {
    "activity": "activity",
    "error": "precision-weighted prediction error",
    "prediction": "activity",
    "weights": "weight",
    "update": "gradient (descent direction)",
    "alignment": "cosine, degrees",
    "energy": "free energy per sample",
    "metric": "",
    "kl": "nats per datum",
}
PER_SAMPLE = ("activity", "error", "prediction")


@dataclass(frozen=True)
class Probe:
    """What to record, of what, and how often.

    Parameters
    ----------
    quantity : str
        One of ``QUANTITIES``.
    target : str
        An area name (activity, error, prediction, alignment; ``"all"`` for the
        overall alignment), ``"area.parameter"`` (weights, update, e.g.
        ``"area1.W_ff"``), or a metric name (``loss``, ``energy``, ``steps``).
        Unused for ``energy``. ``kl``: a stochastic area, whose KL term per
        latent unit (mean over the batch) is recorded (variational rules); the
        metrics ``reconstruction`` (``-log p(x|z)``) and ``kl`` (all areas) are per datum.
    every : int
        Record every this many batches or epochs (>= 1).
    every_unit : str
        ``"batch"`` or ``"epoch"`` (the row of the epoch's last batch, taken
        before its update like a batch row).
    samples : int
        Rows of the batch kept per record, for per-sample quantities.
    inference_every : int
        Record every this many relaxation steps inside inference instead of
        once after it (activity and error only; 0 = after inference). Rows
        carry the relaxation step in ``inference_step``.
    name : str
        Dataset name in the recording; defaults to ``"target.quantity"``.
    """

    quantity: str
    target: str = ""
    every: int = 1
    every_unit: str = "batch"
    samples: int = 16
    inference_every: int = 0
    name: str = ""

    KEYS = ("quantity", "target", "every", "every_unit", "samples", "inference_every", "name")

    def __post_init__(self) -> None:
        if not self.name:
            default = self.quantity if not self.target else f"{self.target}.{self.quantity}"
            object.__setattr__(self, "name", default)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "probe") -> Probe:
        """Build from a plain mapping (a TOML table), naming ``where`` in errors."""
        with located(where, owner="probe"):
            check_keys(data, cls.KEYS, "probe")
            if "quantity" not in data:
                raise invalid("probe.quantity", "required key is missing")
            probe = cls(**data)
            probe.validate()
        return probe

    def validate(self, where: str = "probe", hierarchy: Hierarchy | HierarchySpec | None = None) -> None:
        """Check the fields, and the target against a model when given (built,
        or its description: a study checks probes before building anything);
        errors name ``where`` (``probes[0]``), resolved against any enclosing
        ``located`` block (cortexsim.validation)."""
        with located(where, owner="probe"):
            self._validate(hierarchy)

    def _validate(self, hierarchy: Hierarchy | HierarchySpec | None) -> None:
        check_choice(self.quantity, QUANTITIES, "probe.quantity")
        check_int(self.every, "probe.every", minimum=1)
        check_choice(self.every_unit, ("batch", "epoch"), "probe.every_unit")
        check_int(self.samples, "probe.samples", minimum=1)
        check_int(self.inference_every, "probe.inference_every")
        if self.inference_every and self.quantity not in ("activity", "error"):
            raise invalid(
                "probe.inference_every",
                f"only activity and error probes record inside inference; "
                f"{self.quantity!r} is taken once per batch",
            )
        if self.quantity == "metric":
            check_choice(self.target, METRICS, "probe.target")
        if hierarchy is None:
            return
        spec = hierarchy if isinstance(hierarchy, HierarchySpec) else hierarchy.spec
        names = [area.name for area in spec.areas]
        if self.quantity in PER_SAMPLE:
            check_choice(self.target, names, "probe.target")
        elif self.quantity == "alignment":
            sides = ("recognition", "generative")
            check_choice(self.target, names[1:] + ["all", *sides]
                         + [f"{n}.{side}" for n in names[1:] for side in sides], "probe.target")
        elif self.quantity in ("weights", "update"):
            # a built model also has the parameters its rule added (DDTP's Q_fb)
            keys = parameter_keys(spec) if hierarchy is spec else hierarchy.parameters()
            parameters = [f"{a}.{p}" for a, p in keys]
            check_choice(self.target, parameters, "probe.target")
        elif self.quantity == "kl":
            stochastic = [area.name for area in spec.areas if area.stochastic]
            if self.target in names and self.target not in stochastic:
                raise invalid(
                    "probe.target",
                    f"area {self.target!r} is not stochastic, so it has no KL term; "
                    f"stochastic areas: {', '.join(stochastic) or 'none'}",
                )
            check_choice(self.target, stochastic, "probe.target")

    def to_json(self) -> str:
        """The declaration as JSON (stored with the recording)."""
        return json.dumps(asdict(self))


def unsupported(
    probe: Probe, rule_name: str, capabilities: Capabilities, learned: list[tuple[str, str]],
    hierarchy: Hierarchy,
) -> tuple[str, str] | None:
    """Why a rule cannot fill ``probe``, read from its declared capabilities:
    ``(field, reason)``, or None when it can. The recorder refuses such a probe;
    a study leaves it out for that rule."""
    traced = probe.quantity == "energy" or (
        probe.quantity == "metric" and probe.target in ("energy", "steps"))
    if traced and not capabilities.relaxes:
        return "", f"rule {rule_name!r} has no relaxation, so it has no energy trace"
    if probe.quantity == "alignment" and capabilities.setting not in ("discriminative", "variational"):
        return "", (
            f"alignment compares a rule's updates with backprop's (discriminative rules) or with "
            f"the ELBO's gradient (variational rules); rule {rule_name!r} in the "
            f"{capabilities.setting} setting has neither reference"
        )
    if capabilities.setting != "variational" and (
        probe.quantity == "kl" or (probe.quantity == "metric" and probe.target in VARIATIONAL)
    ):
        return "", (
            f"rule {rule_name!r} has no KL or reconstruction terms; only variational rules "
            f"(elbo) record them"
        )
    if probe.inference_every and not capabilities.relaxes:
        return ".inference_every", f"rule {rule_name!r} has no relaxation to record inside"
    top, bottom = hierarchy.areas[-1].name, hierarchy.areas[0].name
    if probe.quantity in ("error", "prediction"):
        if capabilities.predicts_data and probe.target == top:
            return ".target", (
                f"{top!r} is the top of a generative hierarchy; it has a prior, not a "
                f"prediction from above, so it has no {probe.quantity}"
            )
        if not capabilities.predicts_data and probe.target == bottom:
            return ".target", (
                f"{bottom!r} is the clamped input; rule {rule_name!r} predicts nothing "
                f"there (only generative mode does)"
            )
    if probe.quantity == "update":
        names = [f"{a}.{p}" for a, p in learned]
        if probe.target not in names:
            return ".target", (
                f"rule {rule_name!r} does not learn {probe.target!r}; it updates {', '.join(names)}"
            )
    return None


def _area_index(hierarchy: Hierarchy, name: str) -> int:
    return hierarchy[name].index


def row_shape(probe: Probe, hierarchy: Hierarchy, inference_steps: int) -> tuple[int, ...]:
    """Shape of one recorded row of ``probe``."""
    if probe.quantity in PER_SAMPLE:
        return (probe.samples, hierarchy[probe.target].size)
    if probe.quantity in ("weights", "update"):
        area, parameter = probe.target.split(".")
        return tuple(getattr(hierarchy[area], parameter).shape)
    if probe.quantity == "alignment":
        return (2,)
    if probe.quantity == "kl":
        return (hierarchy[probe.target].size,)
    if probe.quantity == "energy":
        return (inference_steps + 1,)
    return ()


def dims(probe: Probe) -> list[str]:
    """Axis names of the recorded dataset, time first."""
    if probe.quantity in PER_SAMPLE:
        return ["time", "sample", "unit"]
    if probe.quantity in ("weights", "update"):
        return ["time", "unit"] if probe.target.split(".")[1].startswith("b") else ["time", "row", "column"]
    if probe.quantity == "alignment":
        return ["time", "cosine_angle"]
    if probe.quantity == "kl":
        return ["time", "unit"]
    if probe.quantity == "energy":
        return ["time", "relaxation_step"]
    return ["time"]


def per_sample(state: State, hierarchy: Hierarchy, quantity: str, l: int) -> Any:
    """Activity, error or prediction of area ``l`` in ``state`` (batch, n)."""
    area = hierarchy.areas[l]
    eps = state.eps[l] if state.eps is not None and l < len(state.eps) else None
    if quantity == "activity":
        return state.mu[l]
    if quantity == "error":
        return eps if eps is not None else state.errors[l]
    if state.predictions is not None:
        return state.predictions[l]
    if eps is None:  # no error is kept for this area: its prediction is the sweep's
        return state.sweep.h[l]
    return state.mu[l] - eps * (1.0 / area.precision)


def row_value(probe: Probe, hierarchy: Hierarchy, state: State, gradients: Any, aligned: Any) -> Any:
    """The value ``probe`` records for one batch (a backend array or a scalar)."""
    q = probe.quantity
    if q in PER_SAMPLE:
        value = per_sample(state, hierarchy, q, _area_index(hierarchy, probe.target))
        # Clip the stop: the array API leaves out-of-bounds slice stops unspecified.
        return value[: min(probe.samples, value.shape[0]), ...]
    if q == "weights":
        area, parameter = probe.target.split(".")
        return getattr(hierarchy[area], parameter)
    if q == "update":
        area, parameter = probe.target.split(".")
        return gradients[(area, parameter)]
    if q == "alignment":
        return aligned[probe.target]
    if q == "energy":
        return state.energy
    if q == "kl":
        return state.kl_units[_area_index(hierarchy, probe.target)]
    if probe.target == "loss":
        return state.loss
    if probe.target == "reconstruction":
        return state.reconstruction
    if probe.target == "kl":
        return sum(term for term in state.kl if term is not None)
    if probe.target == "energy":
        return state.energy[-1]
    return state.steps


def pathway(parameter: str) -> str:
    """``"recognition"`` for a feedforward parameter (``W_ff``, ``b_ff_logvar``,
    ...), ``"generative"`` for every other (feedback) one."""
    return "recognition" if "_ff" in parameter else "generative"


def alignment(hierarchy: Hierarchy, rule_gradients: Any, reference: Any) -> dict[str, Any]:
    """Cosine and angle (degrees) between a rule's update and the reference
    update (backprop's, or the ELBO's gradient for a variational rule), per
    area (weights and biases together), per area and pathway
    (``"AREA.recognition"``, ``"AREA.generative"``), per pathway over all
    areas, and over all.

    Returns a dict target -> backend array ``[cosine, angle]``.
    """
    be = hierarchy.backend
    xp = be.xp
    dots: dict[str, Any] = {}
    for (area, parameter), ref in reference.items():
        mine = rule_gradients.get((area, parameter))
        if mine is None:
            continue
        terms = (xp.sum(mine * ref), xp.sum(mine * mine), xp.sum(ref * ref))
        side = pathway(parameter)
        for key in (area, f"{area}.{side}", side, "all"):
            previous = dots.get(key, (0.0, 0.0, 0.0))
            dots[key] = tuple(p + t for p, t in zip(previous, terms))
    dots.setdefault("all", (0.0, 0.0, 0.0))
    result = {}
    for name, (dot, mine2, ref2) in dots.items():
        cosine = dot / (xp.sqrt(mine2 * ref2) + 1e-30)
        cosine = xp.clip(cosine, -1.0, 1.0)
        result[name] = xp.stack([cosine, xp.acos(cosine) * (180.0 / math.pi)])
    return result
