"""Predictive-coding inference as an ODE, integrated by higher-order solvers.

Relaxation is gradient flow on the free energy of ``predictive_coding.py``,

    d mu_l / dt = -dF/dmu_l          on every latent area l

(discriminative mode: l = 1 .. L-1, x and y clamped; generative mode:
l = 1 .. L, x clamped). ``relax_discriminative`` / ``relax_generative`` take
forward-Euler steps of it, ``mu <- mu + h v(mu)`` with ``v = -dF/dmu`` and
``h = step_size``; this module integrates the same flow (Innocenti et al. 2024,
JPC) with

``heun``      the explicit trapezoid rule, second order, fixed step ``h``:
              ``k1 = v(mu)``, ``k2 = v(mu + h k1)``, ``mu <- mu + h (k1 + k2) / 2``.
``adaptive``  Bogacki & Shampine's (1989) embedded 3(2) pair with the last
              stage reused as the next step's first (FSAL), and the step size
              chosen by the local error estimate: a step is accepted when
              ``RMS(err / (atol + rtol max(|mu|, |mu_new|))) <= 1`` over every
              latent activity of the batch, and the next step is
              ``h * clip(0.9 err^(-1/3), 0.2, 5)`` (no growth right after a
              rejection); a rejected step is retried with the smaller ``h``.
              A step that raises the energy is rejected too (and ``h``
              halved): the exact flow never does, and at loose tolerances the
              error estimate lets stiff modes oscillate at the edge of the
              stability region, which keeps F above its minimum.

The vector field is written once per mode (``_Discriminative``,
``_Generative``): ``point(mu)`` evaluates predictions, errors and energy,
``velocity(point)`` the backward products of -dF/dmu. Both solvers return the
``State`` the Euler functions return, with ``evaluations`` counting the
gradients computed; ``steps`` counts accepted steps and ``energy`` holds F
per sample at the start and after each of them. The arrays are fresh (no
workspace is written), so a returned state stays valid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import DivergenceError
from ..model.hierarchy import Hierarchy
from ..model.losses import Loss
from ..model.priors import Prior
from .state import State, Sweep
from .workspace import Workspace

# predictive_coding.py dispatches here, so this module imports nothing from it
# (nor from reference.py, which does): the settings arrive as a ``Relaxation``
# and the few shared pieces below are restated.
Relaxation = Any
Observer = Callable[[int, Any], None]
_STANDARD_GAUSSIAN = Prior("gaussian", 0.0, 1.0)

__all__ = ["solve_discriminative", "solve_generative"]

# Bogacki & Shampine 3(2): nodes 0, 1/2, 3/4; third-order weights; the error
# weights are the third-order minus the second-order (FSAL) weights.
_B3 = (2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0)
_E = (-5.0 / 72.0, 1.0 / 12.0, 1.0 / 9.0, -1.0 / 8.0)
_SAFETY, _SHRINK, _GROW = 0.9, 0.2, 5.0
_MAX_REJECTIONS = 50


@dataclass(frozen=True)
class _Snapshot:
    """What ``observe`` reads: ``activity(l)`` and ``error(l)`` of the step observed
    (the interface of ``predictive_coding._Snapshot``)."""

    activity: Callable[[int], Any]
    error: Callable[[int], Any]


def _feedforward(hierarchy: Hierarchy, x: Any) -> Sweep:
    """The recognition sweep in fresh arrays (the fast sweep's are scratch buffers)."""
    be = hierarchy.backend
    a: list[Any] = [None]
    h: list[Any] = [x]
    for area in hierarchy.areas[1:]:
        a.append(h[-1] @ area.W_ff + area.b_ff)
        h.append(area.activation(be, a[-1]))
    return Sweep(a=a, h=h)


def _prior(hierarchy: Hierarchy, l: int) -> Prior | None:
    """The prior of area ``l``; the top area's defaults to a standard Gaussian."""
    area = hierarchy.areas[l]
    if area.prior is None and l == len(hierarchy.areas) - 1:
        return _STANDARD_GAUSSIAN
    return area.prior


class _Point:
    """Everything evaluated at one value of the activities (attributes set by the field)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


def _combine(h: float, terms: Sequence[tuple[float, list[Any]]]) -> list[Any]:
    """``h sum_i c_i k_i`` area by area, for stages ``k_i`` (lists of arrays)."""
    (c0, k0), rest = terms[0], terms[1:]
    return [sum(((h * c) * k[l] for c, k in rest), (h * c0) * k0[l]) for l in range(len(k0))]


def _weigh(pi: float, x: Any) -> Any:
    """``pi * x``, skipped for the common precision 1."""
    return x if pi == 1.0 else pi * x


def _axpy(u: list[Any], h: float, terms: Sequence[tuple[float, list[Any]]]) -> list[Any]:
    """``u + h sum_i c_i k_i`` area by area."""
    return [base + step for base, step in zip(u, _combine(h, terms))]


class _Discriminative:
    """F and dF/dmu with the input and the target clamped (Whittington & Bogacz 2017).

    ``u`` is the list of latent activities mu_1 .. mu_{L-1}."""

    mode = "discriminative"

    def __init__(self, hierarchy: Hierarchy, x: Any, y: Any, loss: Loss) -> None:
        self.be, self.xp = hierarchy.backend, hierarchy.backend.xp
        self.areas = hierarchy.areas
        self.top = len(self.areas) - 1
        self.x, self.y, self.loss = x, y, loss
        loss.check_output(self.areas[self.top].activation, self.areas[self.top].name)
        self.sweep = _feedforward(hierarchy, x)
        # area 1's prediction depends on the clamped input alone
        self.fprime1 = self._fprime(1, self.sweep.a[1], self.sweep.h[1])
        self.weight_t = [None, None] + [self.xp.matrix_transpose(area.W_ff) for area in self.areas[2:]]
        a_top, h_top = self.sweep.a[self.top], self.sweep.h[self.top]
        self.sweep_loss = loss.evaluate(self.be, a_top, h_top, self._fprime(self.top, a_top, h_top), y,
                                        self.xp.empty_like(a_top))

    def _fprime(self, l: int, a: Any, pred: Any) -> Any:
        activation = self.areas[l].activation
        return activation.derivative(self.be, a, pred, self.xp.empty_like(a))

    def start(self, init: str) -> list[Any]:
        origin = self.sweep.h[1:self.top]
        xp = self.xp
        return [xp.asarray(h, copy=True) if init == "feedforward" else xp.zeros_like(h) for h in origin]

    def point(self, u: list[Any]) -> _Point:
        areas, top, xp = self.areas, self.top, self.xp
        mu = [self.x] + list(u) + [self.y]
        a, pred, fprime = [None, self.sweep.a[1]], [None, self.sweep.h[1]], [None, self.fprime1]
        for l in range(2, top + 1):
            a.append(mu[l - 1] @ areas[l].W_ff + areas[l].b_ff)
            pred.append(areas[l].activation(self.be, a[l]))
            fprime.append(self._fprime(l, a[l], pred[l]))
        eps = [None] + [_weigh(areas[l].precision, mu[l] - pred[l]) for l in range(1, top)] + [None]
        # the top area's loss, and its output error -dloss/da_L into g_L
        g: list[Any] = [None] * top + [xp.empty_like(a[top])]
        top_loss = self.loss.evaluate(self.be, a[top], pred[top], fprime[top], self.y, g[top])
        g[top] = _weigh(areas[top].precision, g[top])
        for l in range(2, top):  # g_1 only feeds the weight update: formed in state()
            g[l] = eps[l] if fprime[l] is None else eps[l] * fprime[l]
        summed = areas[top].precision * top_loss
        for l in range(1, top):
            summed = summed + self.be.sum_of_squares(eps[l]) * (0.5 / areas[l].precision)
        return _Point(mu=mu, a=a, pred=pred, fprime=fprime, eps=eps, g=g, energy=summed)

    def velocity(self, p: _Point) -> list[Any]:
        """d mu_l/dt = -dF/dmu_l = g_{l+1} @ W_ff[l+1]^T - eps_l, l = 1 .. L-1."""
        return [p.g[l + 1] @ self.weight_t[l + 1] - p.eps[l] for l in range(1, self.top)]

    def snapshot(self, p: _Point) -> _Snapshot:
        return _Snapshot(activity=p.mu.__getitem__,
                         error=lambda l: p.g[self.top] if l == self.top else p.eps[l])

    def state(self, p: _Point, **trace: Any) -> State:
        top = self.top
        if top > 1:  # g_1 only feeds the weight update
            p.g[1] = p.eps[1] if p.fprime[1] is None else p.eps[1] * p.fprime[1]
        return State(mode=self.mode, sweep=self.sweep, mu=p.mu, eps=p.eps,
                     presynaptic=[None] + p.mu[:top], errors=p.g, predictions=[None] + p.pred[1:],
                     target=self.y, loss=self.sweep_loss / self.x.shape[0], **trace)


class _Generative:
    """F and dF/dmu with the data clamped (Rao & Ballard 1999).

    ``u`` is the list of latent activities mu_1 .. mu_L."""

    mode = "generative"

    def __init__(self, hierarchy: Hierarchy, x: Any) -> None:
        self.be, self.xp = hierarchy.backend, hierarchy.backend.xp
        self.areas = hierarchy.areas
        self.top = len(self.areas) - 1
        self.x = x
        self.sweep = _feedforward(hierarchy, x)
        self.priors = [_prior(hierarchy, l) for l in range(self.top + 1)]
        self.weight_t = [None] + [self.xp.matrix_transpose(area.W_fb) for area in self.areas[1:]]

    def start(self, init: str, start: Sequence[Any] | None) -> list[Any]:
        if start is not None:
            return [self.xp.asarray(start[l], copy=True) for l in range(1, self.top + 1)]
        origin = self.sweep.h[1:]
        xp = self.xp
        return [xp.asarray(h, copy=True) if init == "feedforward" else xp.zeros_like(h) for h in origin]

    def point(self, u: list[Any]) -> _Point:
        areas, top, xp, be = self.areas, self.top, self.xp, self.be
        mu = [self.x] + list(u)
        q = [None] + [areas[l].feedback_activation(be, mu[l]) for l in range(1, top + 1)]
        pred = [q[l + 1] @ areas[l + 1].W_fb + areas[l + 1].b_fb for l in range(top)]
        eps = [_weigh(areas[l].precision, mu[l] - pred[l]) for l in range(top)] + [None]
        summed: Any = 0.0
        for l in range(top):
            summed = summed + be.sum_of_squares(eps[l]) * (0.5 / areas[l].precision)
        for l in range(1, top + 1):
            if self.priors[l] is not None:
                summed = summed + self.priors[l].energy(be, mu[l])
        return _Point(mu=mu, q=q, eps=eps, energy=summed)

    def velocity(self, p: _Point) -> list[Any]:
        """d mu_l/dt = -dF/dmu_l
        = (eps_{l-1} @ W_fb[l]^T) * phi_l'(mu_l) - eps_l [l < L] - dE_prior_l/dmu_l."""
        be, xp = self.be, self.xp
        out = []
        for l in range(1, self.top + 1):
            v = p.eps[l - 1] @ self.weight_t[l]
            phi = self.areas[l].feedback_activation
            phi_prime = phi.derivative(be, p.mu[l], p.q[l], xp.empty_like(p.mu[l]))
            if phi_prime is not None:
                v = v * phi_prime
            if l < self.top:
                v = v - p.eps[l]
            if self.priors[l] is not None:
                v = v - self.priors[l].gradient(be, p.mu[l], xp.empty_like(p.mu[l]))
            out.append(v)
        return out

    def snapshot(self, p: _Point) -> _Snapshot:
        return _Snapshot(activity=p.mu.__getitem__, error=p.eps.__getitem__)

    def state(self, p: _Point, **trace: Any) -> State:
        return State(mode=self.mode, sweep=self.sweep, mu=p.mu, eps=p.eps, presynaptic=p.q,
                     errors=[None] + p.eps[:self.top], **trace)


class _Energies:
    """The per-sample energy at every accepted step and the tolerance test."""

    def __init__(self, be: Any, settings: Relaxation, batch: int) -> None:
        self.be, self.tolerance, self.scale = be, settings.tolerance, 1.0 / batch
        self.values: list[Any] = []

    def record(self, summed: Any) -> bool:
        """Keep the energy; True when it changed by less than the tolerance."""
        self.values.append(summed * self.scale)
        if self.tolerance is None or len(self.values) < 2:
            return False
        return abs(self.be.scalar(self.values[-1] - self.values[-2])) < self.tolerance

    def array(self) -> Any:
        return self.be.xp.stack([self.be.xp.asarray(v) for v in self.values])


def _heun(field: Any, u: list[Any], settings: Relaxation, observe: Observer | None) -> State:
    """Fixed steps of the explicit trapezoid rule."""
    h = settings.step_size
    energies = _Energies(field.be, settings, field.x.shape[0])
    converged = None if settings.tolerance is None else False
    p = field.point(u)
    energies.record(p.energy)
    if observe is not None:
        observe(0, field.snapshot(p))
    steps = evaluations = 0
    for t in range(1, settings.steps + 1):
        k1 = field.velocity(p)
        k2 = field.velocity(field.point(_axpy(u, h, [(1.0, k1)])))
        u = _axpy(u, h, [(0.5, k1), (0.5, k2)])
        p = field.point(u)
        steps, evaluations = t, evaluations + 2
        stop = energies.record(p.energy)
        if observe is not None:
            observe(t, field.snapshot(p))
        if stop:
            converged = True
            break
    return field.state(p, energy=energies.array(), steps=steps, converged=converged, evaluations=evaluations)


def _error_and_energy(xp: Any, be: Any, err: list[Any], u: list[Any], new: list[Any], energy: Any,
                      rtol: float, atol: float) -> tuple[float, float]:
    """RMS over every latent activity of ``err / (atol + rtol max(|u|, |new|))``, and
    the summed energy at ``new``: both brought to the host in one transfer."""
    total: Any = None
    count = 0
    for e, a, b in zip(err, u, new):
        ratio = e / (atol + rtol * xp.maximum(xp.abs(a), xp.abs(b)))
        total = xp.sum(ratio * ratio) if total is None else total + xp.sum(ratio * ratio)
        count += math.prod(e.shape)
    if total is None:
        return 0.0, be.scalar(energy)
    host = be.to_numpy(xp.stack([total, xp.asarray(energy, dtype=total.dtype)]))
    return math.sqrt(float(host[0]) / count), float(host[1])


def _adaptive(field: Any, u: list[Any], settings: Relaxation, observe: Observer | None,
              until: float | None) -> State:
    """Bogacki–Shampine 3(2) with FSAL, a step-size controller and an energy check."""
    be, xp = field.be, field.xp
    rtol, atol = settings.rtol, settings.atol
    # Rounding in the summed energy: an increase below this is not evidence.
    slack = 64.0 * float(xp.finfo(be.dtype).eps)
    energies = _Energies(be, settings, field.x.shape[0])
    converged = None if settings.tolerance is None else False
    p = field.point(u)
    energies.record(p.energy)
    energy = be.scalar(p.energy)
    if observe is not None:
        observe(0, field.snapshot(p))
    steps = evaluations = 0
    time = 0.0
    h = settings.step_size
    k1: list[Any] | None = None
    while steps < settings.steps and (until is None or time < until):
        if k1 is None:
            k1 = field.velocity(p)
            evaluations += 1
        rejected = 0
        while True:
            landing = until is not None and h >= until - time
            if landing:
                h = until - time
            k2 = field.velocity(field.point(_axpy(u, h, [(0.5, k1)])))
            k3 = field.velocity(field.point(_axpy(u, h, [(0.75, k2)])))
            new = _axpy(u, h, list(zip(_B3, (k1, k2, k3))))
            p_new = field.point(new)
            k4 = field.velocity(p_new)
            evaluations += 3
            err, energy_new = _error_and_energy(xp, be, _combine(h, list(zip(_E, (k1, k2, k3, k4)))), u, new,
                                                p_new.energy, rtol, atol)
            # The exact flow never raises F. A step that does, though its local
            # error passed, has put a stiff mode outside the stability region
            # (loose tolerances at the edge of it): refuse it, or the stiff
            # modes settle into an oscillation that keeps F above its minimum.
            rises = not energy_new <= energy + slack * abs(energy)
            if err <= 1.0 and not rises:
                break
            rejected += 1
            if rejected > _MAX_REJECTIONS:
                raise DivergenceError(
                    f"inference.solver = \"adaptive\": {_MAX_REJECTIONS} steps in a row rejected at t = "
                    f"{time:g} (step {h:.3g}, error norm {err:g}); the relaxation diverges or "
                    f"inference.rtol / inference.atol are below what the dtype resolves")
            if not math.isfinite(err):
                h *= _SHRINK
            elif err > 1.0:
                h *= max(_SHRINK, _SAFETY * err ** (-1.0 / 3.0))
            else:
                h *= 0.5
        time = until if landing else time + h
        u, p, k1, energy = new, p_new, k4, energy_new
        steps += 1
        factor = _GROW if err == 0.0 else min(_GROW, max(_SHRINK, _SAFETY * err ** (-1.0 / 3.0)))
        h *= min(1.0, factor) if rejected else factor
        stop = energies.record(p.energy)
        if observe is not None:
            observe(steps, field.snapshot(p))
        if stop:
            converged = True
            break
    return field.state(p, energy=energies.array(), steps=steps, converged=converged, evaluations=evaluations)


def _solve(field: Any, u: list[Any], settings: Relaxation, observe: Observer | None,
           until: float | None) -> State:
    if settings.solver == "heun":
        if until is not None:
            raise ValueError("until: the heun solver takes settings.steps steps of settings.step_size")
        return _heun(field, u, settings, observe)
    if settings.solver == "adaptive":
        return _adaptive(field, u, settings, observe, until)
    raise ValueError(f"inference.solver: {settings.solver!r} is integrated by predictive_coding.py")


def solve_discriminative(
    hierarchy: Hierarchy,
    x: Any,
    y: Any,
    loss: Loss,
    settings: Relaxation,
    observe: Observer | None = None,
    workspace: Workspace | None = None,
    *,
    until: float | None = None,
) -> State:
    """Relax the latent areas with ``x`` and ``y`` clamped by ``settings.solver``.

    Parameters
    ----------
    hierarchy, x (batch, n_0), y (batch, n_L), loss, settings, observe
        As for ``relax_discriminative``; ``observe(t, snapshot)`` is called at
        the start and after every accepted step ``t``.
    workspace : Workspace, optional
        Checked against the hierarchy's backend; nothing is written into it
        (the solvers' arrays are fresh).
    until : float, optional
        Adaptive solver: stop at this time of the flow (relaxation time, in
        units of ``step_size * steps`` of Euler), the last step shortened to
        land on it; ``settings.steps`` still caps the accepted steps.

    Returns
    -------
    State
        As ``relax_discriminative``'s, with ``evaluations``.
    """
    if workspace is not None:
        workspace.check(hierarchy)
    field = _Discriminative(hierarchy, x, y, loss)
    return _solve(field, field.start(settings.init), settings, observe, until)


def solve_generative(
    hierarchy: Hierarchy,
    x: Any,
    settings: Relaxation,
    observe: Observer | None = None,
    start: Sequence[Any] | None = None,
    workspace: Workspace | None = None,
    *,
    until: float | None = None,
) -> State:
    """Infer the latent areas that explain ``x`` through the generative path by ``settings.solver``.

    Parameters
    ----------
    hierarchy, x (batch, n_0), settings, observe, start
        As for ``relax_generative``.
    workspace : Workspace, optional
        As for ``solve_discriminative``.
    until : float, optional
        As for ``solve_discriminative``.

    Returns
    -------
    State
        As ``relax_generative``'s, with ``evaluations``.
    """
    if workspace is not None:
        workspace.check(hierarchy)
    field = _Generative(hierarchy, x)
    return _solve(field, field.start(settings.init, start), settings, observe, until)
