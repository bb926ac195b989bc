"""The plain description of a model: sizes, activations, precisions, priors and
initialisation, with no arrays. Immutable and validated where the user wrote it;
``cortexsim.build`` turns it into a ``Hierarchy`` on a backend.

Area 0 is the data. Area ``l >= 1`` receives the area below through its
recognition weights and predicts the area below through its generative weights.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from ..files import read_toml
from .cells import get_cell
from .nonlinear import get_activation
from .priors import Prior
from ..validation import check_choice, check_int, check_keys, check_number

_NAME = re.compile(r"[A-Za-z0-9_-]+")

__all__ = ["AreaSpec", "HierarchySpec", "WEIGHT_INITS", "FEEDBACK_INITS"]

WEIGHT_INITS = ("glorot_uniform", "glorot_normal", "normal", "orthogonal")
FEEDBACK_INITS = ("random", "transpose", "zeros")


@dataclass(frozen=True)
class AreaSpec:
    """One cortical area.

    Parameters
    ----------
    name : str
        Unique name, used in errors, parameters and recordings.
    size : int
        Number of units (> 0).
    activation : str
        Recognition nonlinearity f: ``mu_hat = f(mu_below @ W_ff + b_ff)``.
        Ignored on area 0 (the data).
    feedback_activation : str
        Generative nonlinearity phi: ``pred_below = phi(mu) @ W_fb + b_fb``.
    precision : float
        Inverse variance weighting this area's prediction errors (> 0).
    prior : Prior or None
        Prior over this area's activities (generative mode puts a standard
        Gaussian on the top area when none is given).
    stochastic : bool
        A Gaussian latent area of a variational model (docs/math.md,
        "Variational areas"): the recognition path gives the mean and a
        log-variance head (``W_ff_logvar``, ``b_ff_logvar``), and the area
        above predicts a log-variance for it (``W_fb_logvar``, ``b_fb_logvar``).
        Not allowed on area 0 (the data).
    modules : int
        Split the area into this many modules, each connected only to its own
        equal block of the area below (block-diagonal ``W_ff`` and ``W_fb``;
        ``cortexsim.model.wiring``). 1 (default): fully connected.
    shared : bool
        With ``modules > 1``: every module uses the same weights and biases.
    cell : str or None
        ``"lstm"`` or ``"gru"``: a recurrent area (``model/cells.py``) whose
        recognition path is an encoder cell and generative path a decoder cell,
        run for several steps by the recurrent VAE (``inference/recurrent.py``,
        docs/math.md, "Recurrent areas"). None (default): a feedforward area.
    read, write : int
        With a ``cell`` on area 1: DRAW's Gaussian attention (``model/attention.py``),
        an ``N x N`` read glimpse and written patch of the square image below
        (``N >= 2``); 0 (default) reads and writes the whole image.
    """

    name: str
    size: int
    activation: str = "tanh"
    feedback_activation: str = "linear"
    precision: float = 1.0
    prior: Prior | None = None
    stochastic: bool = False
    modules: int = 1
    shared: bool = False
    cell: str | None = None
    read: int = 0
    write: int = 0

    KEYS = ("name", "size", "activation", "feedback_activation", "precision", "prior", "stochastic",
            "modules", "shared", "cell", "read", "write")

    def validate(self, where: str) -> None:
        """Raise ``ConfigurationError`` naming ``where`` if a field is invalid."""
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ConfigurationError(
                f"{where}.name: expected a name of letters, digits, '_' or '-' (it is used in "
                f"parameter keys and recording paths), got {self.name!r}"
            )
        check_int(self.size, f"{where}.size", minimum=1)
        get_activation(self.activation, f"{where}.activation")
        get_activation(self.feedback_activation, f"{where}.feedback_activation")
        check_number(self.precision, f"{where}.precision", positive=True)
        if not isinstance(self.stochastic, bool):
            raise ConfigurationError(f"{where}.stochastic: expected true or false, got {self.stochastic!r}")
        check_int(self.modules, f"{where}.modules", minimum=1)
        if self.size % self.modules:
            raise ConfigurationError(
                f"{where}.modules: {self.size} units cannot be split into {self.modules} equal modules"
            )
        if not isinstance(self.shared, bool):
            raise ConfigurationError(f"{where}.shared: expected true or false, got {self.shared!r}")
        if self.prior is not None:
            self.prior.validate(f"{where}.prior")
        if self.cell is not None:
            get_cell(self.cell, f"{where}.cell")
            if self.stochastic or self.modules > 1:
                key = "stochastic" if self.stochastic else "modules"
                raise ConfigurationError(f"{where}.{key}: a recurrent area (cell = {self.cell!r}) is "
                                         f"deterministic and fully connected")
        for key in ("read", "write"):
            size = check_int(getattr(self, key), f"{where}.{key}", minimum=0)
            if size and self.cell is None:
                raise ConfigurationError(f"{where}.{key}: attention belongs to a recurrent area; "
                                         f"set cell = 'lstm' or 'gru' on it")
            if size == 1:
                raise ConfigurationError(f"{where}.{key}: a glimpse needs N >= 2 (0: the whole image)")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "area") -> AreaSpec:
        """Build from a plain mapping, naming ``where`` in errors."""
        check_keys(data, cls.KEYS, where)
        for key in ("name", "size"):
            if key not in data:
                raise ConfigurationError(f"{where}.{key}: required key is missing")
        values = dict(data)
        prior = values.get("prior")
        if isinstance(prior, Mapping):
            check_keys(prior, ("kind", "mean", "scale", "weight"), f"{where}.prior")
            values["prior"] = Prior(**prior)
        elif prior is not None and not isinstance(prior, Prior):
            raise ConfigurationError(f"{where}.prior: expected a table, got {prior!r}")
        return cls(**values)


@dataclass(frozen=True)
class HierarchySpec:
    """A stack of areas, bottom (data) first, and how its weights start.

    Parameters
    ----------
    areas : tuple of AreaSpec
        At least two: the data area and one latent area.
    weight_init : str
        ``"glorot_uniform"`` (default), ``"glorot_normal"``, ``"normal"``
        (standard deviation ``init_scale``) or ``"orthogonal"`` (a Glorot-uniform
        draw replaced by the nearest matrix with orthonormal rows or columns,
        ``U V^T`` of its SVD, as in Lee et al.'s DTP code; times ``init_scale``).
    init_scale : float
        Gain on the Glorot limit, or the standard deviation for ``"normal"``.
    feedback_init : str
        Generative weights start ``"random"`` (independent draw), as the
        ``"transpose"`` of the recognition weights, or as ``"zeros"``.
    name : str
        What the model is called.
    reference : str
        The paper the model comes from, for named models in ``models/``.
    """

    areas: tuple[AreaSpec, ...]
    weight_init: str = "glorot_uniform"
    init_scale: float = 1.0
    feedback_init: str = "random"
    name: str = "hierarchy"
    reference: str = ""

    KEYS = ("areas", "weight_init", "init_scale", "feedback_init", "name", "reference")

    def __post_init__(self) -> None:
        object.__setattr__(self, "areas", tuple(self.areas))
        self.validate()

    def validate(self, where: str = "model") -> None:
        """Raise ``ConfigurationError`` naming the offending field."""
        if len(self.areas) < 2:
            raise ConfigurationError(
                f"{where}.areas: a hierarchy needs at least 2 areas (the data and "
                f"one latent area), got {len(self.areas)}"
            )
        seen: dict[str, int] = {}
        for index, area in enumerate(self.areas):
            if not isinstance(area, AreaSpec):
                raise ConfigurationError(f"{where}.areas[{index}]: expected an area, got {area!r}")
            area.validate(f"{where}.areas[{index}]")
            if area.name in seen:
                raise ConfigurationError(
                    f"{where}.areas[{index}].name: {area.name!r} is already the name "
                    f"of areas[{seen[area.name]}]; area names must be unique"
                )
            seen[area.name] = index
            if index == 0 and area.cell is not None:
                raise ConfigurationError(f"{where}.areas[0].cell: area 0 is the data; it has no cell")
            if area.read or area.write:
                side = round(self.areas[0].size ** 0.5)
                if index != 1 or side * side != self.areas[0].size:
                    key = "read" if area.read else "write"
                    raise ConfigurationError(
                        f"{where}.areas[{index}].{key}: attention reads and writes a square image "
                        f"in area 0 from area 1; here area {index} over {self.areas[0].size} pixels")
            if area.modules > 1 and (index == 0 or self.areas[index - 1].size % area.modules):
                below = "there is no area below area 0" if index == 0 else (
                    f"the {self.areas[index - 1].size} units below cannot be split into {area.modules} blocks")
                raise ConfigurationError(f"{where}.areas[{index}].modules: {below}")
        if self.areas[0].stochastic:
            raise ConfigurationError(
                f"{where}.areas[0].stochastic: area 0 is the data, which is observed, not a "
                "stochastic latent area"
            )
        check_choice(self.weight_init, WEIGHT_INITS, f"{where}.weight_init")
        check_choice(self.feedback_init, FEEDBACK_INITS, f"{where}.feedback_init")
        check_number(self.init_scale, f"{where}.init_scale", positive=True)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Units per area, bottom first."""
        return tuple(area.size for area in self.areas)

    @classmethod
    def from_sizes(
        cls,
        sizes: Sequence[int],
        activation: str = "tanh",
        output_activation: str = "linear",
        **options: Any,
    ) -> HierarchySpec:
        """A plain stack: ``sizes[0]`` data units, hidden areas with ``activation``,
        the top area with ``output_activation``; areas named area0, area1, ..."""
        last = len(sizes) - 1
        areas = tuple(
            AreaSpec(
                name=f"area{i}",
                size=size,
                activation=output_activation if i == last else activation,
            )
            for i, size in enumerate(sizes)
        )
        return cls(areas=areas, **options)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "model") -> HierarchySpec:
        """Build from a plain mapping (a TOML table), naming ``where`` in errors."""
        check_keys(data, cls.KEYS, where)
        if "areas" not in data:
            raise ConfigurationError(f"{where}.areas: required key is missing")
        areas = data["areas"]
        if isinstance(areas, (str, bytes)) or not isinstance(areas, Sequence):
            raise ConfigurationError(f"{where}.areas: expected a list of areas, got {areas!r}")
        values = dict(data)
        values["areas"] = tuple(
            AreaSpec.from_dict(area, f"{where}.areas[{i}]") for i, area in enumerate(areas)
        )
        return cls(**values)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> HierarchySpec:
        """Read a model description from a TOML file (its ``[model]`` table, or
        the whole file); errors name the file and the key."""
        path = Path(path)
        document, _ = read_toml(path, "model file")
        table = document.get("model", document)
        try:
            return cls.from_dict(table, "model")
        except ConfigurationError as exc:
            raise ConfigurationError(f"{path}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The description as plain data (round-trips through ``from_dict``)."""
        data = asdict(self)
        for area in data["areas"]:
            if area["prior"] is None:
                del area["prior"]
            if not area["stochastic"]:
                del area["stochastic"]
            for key, default in (("cell", None), ("read", 0), ("write", 0)):
                if area[key] == default:
                    del area[key]
        return data

