"""The model: its plain description (``HierarchySpec`` of ``AreaSpec``s) and the
built hierarchy of areas holding arrays on one backend; the nonlinearities,
priors, losses and wiring the areas are made of."""

from .area import Area
from .hierarchy import Hierarchy, ParameterKey, build
from .priors import Prior
from .spec import AreaSpec, HierarchySpec

__all__ = ["Area", "AreaSpec", "Hierarchy", "HierarchySpec", "ParameterKey", "Prior", "build"]
