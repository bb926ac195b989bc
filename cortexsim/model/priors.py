"""Priors on area activities: energy (negative log density up to a constant)
and its gradient, per sample.

``gaussian``  E = 0.5 |mu - mean|^2 / scale^2 (the default on a generative top area)
``laplace``   E = sum |mu - mean| / scale (sparse; Olshausen & Field 1996)
``cauchy``    E = sum log(1 + ((mu - mean) / scale)^2) (sparse; Rao & Ballard 1999)

each multiplied by ``weight`` (Rao & Ballard's alpha; 1 by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backend import Backend
from ..errors import ConfigurationError, did_you_mean
from ..validation import check_number

__all__ = ["Prior", "PRIOR_KINDS"]

PRIOR_KINDS = ("gaussian", "laplace", "cauchy")


@dataclass(frozen=True)
class Prior:
    """A factorized prior over one area's activities.

    Parameters
    ----------
    kind : str
        ``"gaussian"``, ``"laplace"`` or ``"cauchy"``.
    mean : float
        Location of the prior.
    scale : float
        Standard deviation (Gaussian) or scale (Laplace, Cauchy); > 0.
    weight : float
        Strength of the prior relative to the prediction errors: the energy
        is multiplied by it (> 0; Rao & Ballard's alpha).
    """

    kind: str = "gaussian"
    mean: float = 0.0
    scale: float = 1.0
    weight: float = 1.0

    def validate(self, where: str) -> None:
        """Raise ``ConfigurationError`` naming ``where`` if a field is invalid."""
        if self.kind not in PRIOR_KINDS:
            raise ConfigurationError(
                f"{where}.kind: unknown prior {self.kind!r}; allowed: "
                f"{', '.join(PRIOR_KINDS)}{did_you_mean(self.kind, PRIOR_KINDS)}"
            )
        check_number(self.mean, f"{where}.mean")
        check_number(self.scale, f"{where}.scale", positive=True)
        check_number(self.weight, f"{where}.weight", positive=True)

    def energy(self, be: Backend, mu: Any) -> Any:
        """Summed prior energy of a batch, as a 0-d array (divide by batch for a mean)."""
        xp = be.xp
        z = (mu - self.mean) / self.scale
        if self.kind == "gaussian":
            energy = 0.5 * xp.sum(z * z)
        elif self.kind == "laplace":
            energy = xp.sum(xp.abs(z))
        else:
            energy = xp.sum(xp.log1p(z * z))
        return energy * self.weight if self.weight != 1.0 else energy

    def gradient(self, be: Backend, mu: Any, out: Any) -> Any:
        """Write dE/dmu (shape of ``mu``) into ``out`` and return it."""
        xp = be.xp
        s = self.scale
        if self.kind == "gaussian":
            be.subtract(mu, self.mean, out=out)
            out *= 1.0 / (s * s)
        elif self.kind == "laplace":
            out[...] = xp.sign(mu - self.mean) / s
        else:
            d = mu - self.mean
            out[...] = 2.0 * d / (s * s + d * d)
        if self.weight != 1.0:
            out *= self.weight
        return out
