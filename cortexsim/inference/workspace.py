"""Scratch memory for the relaxation loops: named, per-area arrays allocated on
first use and reused on every later batch of the same shape.

The fast relaxation (``predictive_coding.py``) writes every intermediate and
returned array into a ``Workspace`` instead of allocating per batch. The
caller that runs inference batch after batch keeps one and passes it as
``workspace=``; without one, the relaxation uses the workspace of the
hierarchy (``Workspace.of``), created on first use and kept as long as the
hierarchy lives. Either way the arrays of a returned ``State`` stay valid
until the same relaxation runs again with that workspace.
"""

from __future__ import annotations

import weakref
from typing import Any

__all__ = ["Workspace"]


class Workspace:
    """Named, per-area scratch arrays on one backend.

    Parameters
    ----------
    backend : Backend
        Where the arrays live, in its dtype.
    """

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self._arrays: dict[tuple[str, int, tuple[int, ...]], Any] = {}

    def array(self, name: str, index: int, shape: tuple[int, ...]) -> Any:
        """The array kept for ``name`` on area ``index`` with ``shape``, created
        (uninitialised) the first time it is asked for.

        Parameters
        ----------
        name : str
            What the array holds, e.g. ``"pc.mu"``.
        index : int
            The area it belongs to.
        shape : tuple of int
            Its shape; another shape (a smaller last batch) is another array.
        """
        key = (name, index, tuple(shape))
        array = self._arrays.get(key)
        if array is None:
            array = self._arrays[key] = self.backend.empty(key[2])
        return array

    def check(self, hierarchy: Any) -> None:
        """Refuse a workspace made for another backend or dtype than ``hierarchy``'s."""
        mine, theirs = self.backend, hierarchy.backend
        if (mine.name, mine.dtype_name) != (theirs.name, theirs.dtype_name):
            raise ValueError(
                f"workspace: its arrays are on {mine!r}, the hierarchy's on {theirs!r}; "
                "make the workspace with Workspace(hierarchy.backend)"
            )

    def clear(self) -> None:
        """Drop every array (they are made again on next use)."""
        self._arrays.clear()

    def __len__(self) -> int:
        return len(self._arrays)

    def __repr__(self) -> str:
        return f"Workspace({self.backend!r}, {len(self)} arrays)"

    @classmethod
    def of(cls, hierarchy: Any) -> Workspace:
        """The workspace the relaxation uses for ``hierarchy`` when given none:
        one per hierarchy, made on first use and released with the hierarchy."""
        workspace = _PER_HIERARCHY.get(hierarchy)
        if workspace is None:
            workspace = _PER_HIERARCHY[hierarchy] = cls(hierarchy.backend)
        return workspace


# Keyed weakly, so a hierarchy's default workspace goes when the hierarchy does.
_PER_HIERARCHY: weakref.WeakKeyDictionary[Any, Workspace] = weakref.WeakKeyDictionary()
