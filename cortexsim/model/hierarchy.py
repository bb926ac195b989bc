"""Hierarchy: the ordered areas of a model on one backend, built from a description.

Initial weights are drawn on the host from a seeded ``numpy.random.Generator``
(one independent stream per area) and then copied to the backend, so NumPy,
CuPy and the strict stand-in start from identical parameters.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from .area import PARAMETER_NAMES, Area
from ..backend import Backend, get_backend
from ..errors import ConfigurationError, did_you_mean
from .recurrent import above_recurrent_shapes, initial_recurrent, recurrent_shapes
from .spec import HierarchySpec
from ..validation import check_int
from .wiring import project_gradient, structure_initial

__all__ = ["Hierarchy", "build", "ParameterKey", "parameter_keys"]

ParameterKey = tuple[str, str]  # (area name, parameter name), e.g. ("area1", "W_ff")


def _draw(rng: np.random.Generator, spec: HierarchySpec, fan_in: int, fan_out: int) -> np.ndarray:
    if spec.weight_init == "normal":
        return rng.normal(0.0, spec.init_scale, size=(fan_in, fan_out))
    if spec.weight_init == "glorot_normal":
        std = spec.init_scale * math.sqrt(2.0 / (fan_in + fan_out))
        return rng.normal(0.0, std, size=(fan_in, fan_out))
    if spec.weight_init == "orthogonal":
        # The uniform draw made orthogonal (Lee et al. 2015's code): all singular values 1.
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        u, _, vt = np.linalg.svd(rng.uniform(-limit, limit, size=(fan_in, fan_out)), full_matrices=False)
        return spec.init_scale * (u @ vt)
    limit = spec.init_scale * math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


def initial_parameters(spec: HierarchySpec, seed: int) -> list[dict[str, np.ndarray]]:
    """Host arrays of every area's starting parameters, in float64."""
    streams = np.random.SeedSequence(seed).spawn(len(spec.areas))
    parameters: list[dict[str, np.ndarray]] = [{}]
    for index in range(1, len(spec.areas)):
        below, size = spec.areas[index - 1].size, spec.areas[index].size
        rng = np.random.default_rng(streams[index])
        W_ff = _draw(rng, spec, below, size)
        W_fb_random = _draw(rng, spec, size, below)
        if spec.feedback_init == "transpose":
            W_fb = W_ff.T.copy()
        elif spec.feedback_init == "zeros":
            W_fb = np.zeros((size, below))
        else:
            W_fb = W_fb_random
        area = {"W_ff": W_ff, "b_ff": np.zeros(size), "W_fb": W_fb, "b_fb": np.zeros(below)}
        modules, shared = spec.areas[index].modules, spec.areas[index].shared
        if modules > 1:
            area = {name: structure_initial(value, modules, shared) for name, value in area.items()}
        # Log-variance heads of variational models (docs/math.md, "Variational areas")
        # start at zero: every Gaussian starts at unit variance whatever the scale of
        # its input (random heads on raw data start at variances like exp(+-30)), and
        # no draw is taken, so the other weights equal those of a deterministic stack.
        if spec.areas[index].cell is not None:  # its own shapes (model/recurrent.py)
            area = initial_recurrent(recurrent_shapes(spec.areas[index], below),
                                     lambda i, o: _draw(rng, spec, i, o))
        elif spec.areas[index - 1].cell is not None:
            shapes = above_recurrent_shapes(size, spec.areas[index - 1])
            area["W_fb"], area["b_fb"] = _draw(rng, spec, *shapes["W_fb"]), np.zeros(shapes["b_fb"])
        if spec.areas[index].stochastic:
            area["W_ff_logvar"], area["b_ff_logvar"] = np.zeros((below, size)), np.zeros(size)
        if index >= 2 and spec.areas[index - 1].stochastic:
            area["W_fb_logvar"], area["b_fb_logvar"] = np.zeros((size, below)), np.zeros(below)
        parameters.append(area)
    return parameters


def parameter_keys(spec: HierarchySpec) -> list[ParameterKey]:
    """The (area, parameter) keys ``build(spec)`` creates, in ``parameters()``
    order, read from the description alone (no weights drawn), so settings can
    be checked against a model before it is built."""
    keys: list[ParameterKey] = []
    for index in range(1, len(spec.areas)):
        area = spec.areas[index]
        names = ["W_ff", "b_ff", "W_fb", "b_fb"]
        if area.cell is not None:
            names = list(recurrent_shapes(area, spec.areas[index - 1].size))
        if area.stochastic:
            names += ["W_ff_logvar", "b_ff_logvar"]
        if index >= 2 and spec.areas[index - 1].stochastic:
            names += ["W_fb_logvar", "b_fb_logvar"]
        keys += [(area.name, name) for name in names]
    return keys


class Hierarchy:
    """The built model: areas holding arrays on one backend.

    Use ``cortexsim.build(spec, backend=..., dtype=..., seed=...)`` to make one.
    Areas are indexed bottom first (``hierarchy[0]`` is the data) or by name.
    """

    def __init__(self, spec: HierarchySpec, backend: Backend, seed: int) -> None:
        self.spec = spec
        self.backend = backend
        self.seed = seed
        host = initial_parameters(spec, seed)
        self.areas = [
            Area(
                area_spec,
                index,
                backend,
                {name: backend.asarray(value) for name, value in host[index].items()},
            )
            for index, area_spec in enumerate(spec.areas)
        ]
        self._buffers: dict[tuple[str, int, tuple[int, ...]], Any] = {}

    # -- access ---------------------------------------------------------
    def __len__(self) -> int:
        return len(self.areas)

    def __iter__(self) -> Iterator[Area]:
        return iter(self.areas)

    def __getitem__(self, key: int | str) -> Area:
        if isinstance(key, str):
            for area in self.areas:
                if area.name == key:
                    return area
            names = [a.name for a in self.areas]
            raise KeyError(
                f"no area named {key!r}; areas: {', '.join(names)}{did_you_mean(key, names)}"
            )
        return self.areas[key]

    @property
    def top(self) -> Area:
        """The highest area."""
        return self.areas[-1]

    def parameters(self) -> dict[ParameterKey, Any]:
        """Every weight and bias array, keyed by (area name, parameter name)."""
        return {
            (area.name, name): value
            for area in self.areas
            for name, value in area.parameters().items()
        }

    def parameters_to_numpy(self) -> dict[ParameterKey, np.ndarray]:
        """Host copies of every parameter."""
        return {key: self.backend.to_numpy(value) for key, value in self.parameters().items()}

    def load_parameters(self, values: Mapping[ParameterKey, Any]) -> None:
        """Overwrite parameters from host or backend arrays, checking names and shapes.

        Parameters
        ----------
        values : mapping of (area name, parameter name) to array
            A subset of ``parameters()``; each array must have the shape the
            area's wiring implies.
        """
        current = self.parameters()
        names = {area.name for area in self.areas[1:]}
        for key, value in values.items():
            shape = tuple(np.shape(value) if not hasattr(value, "shape") else value.shape)
            if key not in current:
                if key[0] in names and key[1] not in PARAMETER_NAMES:
                    continue  # a rule's own parameter, restored before the rule recreates it
                raise ConfigurationError(
                    f"parameter {key!r}: no such parameter; this hierarchy has "
                    f"{', '.join(map(str, current))}"
                )
            expected = tuple(current[key].shape)
            if shape != expected:
                area = self[key[0]]
                raise ConfigurationError(
                    f"parameter {key[1]} of area {key[0]!r}: shape {shape} does not match "
                    f"the wiring {self.areas[area.index - 1].name!r} ({self.areas[area.index - 1].size} "
                    f"units) -> {area.name!r} ({area.size} units), which needs {expected}"
                )
        for (area_name, name), value in values.items():
            host = value if isinstance(value, np.ndarray) else self.backend.to_numpy(value)
            if name in PARAMETER_NAMES:
                setattr(self[area_name], name, self.backend.asarray(host))
            else:
                self[area_name].add_parameter(name, self.backend.asarray(host))

    # -- scratch memory for the inference and learning loops -------------
    def project(self, key: ParameterKey, grad: Any) -> Any:
        """``grad`` of parameter ``key`` made to respect the area's modular wiring
        (``cortexsim.model.wiring``); returned unchanged for fully connected areas."""
        area_name, parameter = key
        spec = self[area_name].spec
        if spec.modules == 1 or parameter not in PARAMETER_NAMES:
            return grad
        return project_gradient(self.backend, grad, spec.modules, spec.shared)

    def buffer(self, name: str, index: int, shape: tuple[int, ...]) -> Any:
        """A reusable scratch array, one per (name, area index, shape).

        Inference and rules write their intermediate and returned arrays here
        instead of allocating per batch; a result stays valid until the same
        computation runs again on this hierarchy.
        """
        key = (name, index, shape)
        array = self._buffers.get(key)
        if array is None:
            array = self._buffers[key] = self.backend.empty(shape)
        return array

    def __repr__(self) -> str:
        sizes = "-".join(str(a.size) for a in self.areas)
        return f"Hierarchy({sizes}, backend={self.backend.name!r}, dtype={self.backend.dtype_name!r}, seed={self.seed})"


def build(
    spec: HierarchySpec | Mapping[str, Any],
    backend: str | Backend = "numpy",
    dtype: str = "float32",
    seed: int = 0,
) -> Hierarchy:
    """Build a hierarchy from its description on a backend.

    Parameters
    ----------
    spec : HierarchySpec or mapping
        The model description (a mapping is read with ``HierarchySpec.from_dict``).
    backend : str or Backend
        ``"numpy"`` (default), ``"cupy"`` or ``"array_api_strict"``.
    dtype : str
        ``"float32"`` (default) or ``"float64"``.
    seed : int
        Seed of the host generator that draws the initial weights.
    """
    if isinstance(spec, Mapping):
        spec = HierarchySpec.from_dict(spec)
    elif not isinstance(spec, HierarchySpec):
        raise ConfigurationError(f"model: expected a HierarchySpec or a table, got {spec!r}")
    return Hierarchy(spec, get_backend(backend, dtype), check_int(seed, "seed"))
