"""Iterative predictive-coding inference: Euler descent of the free energy.

Discriminative mode (Whittington & Bogacz 2017): the input is clamped at area 0,
the target at the top area L, and predictions flow up the recognition path,

    pred_l = f_l(mu_{l-1} @ W_ff_l + b_ff_l),    eps_l = pi_l (mu_l - pred_l),
    F = sum_{l<L} |eps_l|^2 / (2 pi_l) + pi_L * loss(pred_L, y),
    dF/dmu_l = eps_l - g_{l+1} @ W_ff_{l+1}^T,   g_l = -dF/da_l = eps_l * f_l'(a_l)

(with ``g_L = pi_L * -dloss/da_L`` at the top). With ``fixed_prediction`` the
predictions and derivatives stay at their feedforward values, so only the
errors relax (Millidge, Tschantz & Buckley 2020; Rosenbaum 2022): with step
size 1 and at least L-1 steps the errors equal backprop's exactly.

Generative mode (Rao & Ballard 1999): the data is clamped at area 0 and
predictions flow down the generative path,

    pred_{l-1} = phi_l(mu_l) @ W_fb_l + b_fb_l,  eps_{l-1} = pi_{l-1} (mu_{l-1} - pred_{l-1}),
    F = sum_{l<L} |eps_l|^2 / (2 pi_l) + E_prior(mu_L),
    dF/dmu_l = eps_l - (eps_{l-1} @ W_fb_l^T) * phi_l'(mu_l),   eps_L = dE_prior/dmu_L.

The energy is reported per sample (mean over the batch); the trace holds the
starting energy and the energy after every step. Everything constant while the
input is clamped (the first area's prediction) is computed once per batch.
The loops write into preallocated arrays of a ``Workspace`` (``workspace.py``)
and return their result as a ``State``; ``reference.py`` computes the same
relaxation plainly, and a test holds the two equal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError
from ..model.hierarchy import Hierarchy
from ..model.losses import Loss
from ..model.priors import Prior
from ..validation import check_choice, check_int, check_number
from . import kernels
from .amortized import feedforward
from .state import State
from .workspace import Workspace

__all__ = ["Relaxation", "relax_discriminative", "relax_generative", "INITS", "SOLVERS"]

INITS = ("feedforward", "zeros")
SOLVERS = ("euler", "heun", "adaptive")
_STANDARD_GAUSSIAN = Prior("gaussian", 0.0, 1.0)


@dataclass(frozen=True)
class Relaxation:
    """Settings of the iterative inference.

    Parameters
    ----------
    steps : int
        Maximum number of steps T (>= 0).
    step_size : float
        Step on the activities (> 0); the adaptive solver's first step.
    tolerance : float or None
        Stop early when the per-sample energy changes by less than this between
        steps. Checking it brings the energy to the host every step.
    init : str
        ``"feedforward"``: start from the recognition sweep (amortized start,
        iterative refinement); ``"zeros"``: start latent areas at zero.
    fixed_prediction : bool
        Hold predictions at their feedforward values (discriminative mode only;
        Euler only).
    solver : str
        ``"euler"`` (fixed steps, this module), ``"heun"`` (fixed steps, second
        order) or ``"adaptive"`` (embedded error control), in ``solvers.py``.
    rtol, atol : float
        The adaptive solver's relative and absolute tolerance on the
        activities' local error per step.
    """

    steps: int = 20
    step_size: float = 0.1
    tolerance: float | None = None
    init: str = "feedforward"
    fixed_prediction: bool = False
    solver: str = "euler"
    rtol: float = 1e-3
    atol: float = 1e-6

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str = "inference") -> None:
        """Raise ``ConfigurationError`` naming the offending key."""
        check_int(self.steps, f"{where}.steps")
        check_number(self.step_size, f"{where}.step_size", positive=True)
        if self.tolerance is not None:
            check_number(self.tolerance, f"{where}.tolerance", positive=True)
        check_choice(self.init, INITS, f"{where}.init")
        check_choice(self.solver, SOLVERS, f"{where}.solver")
        check_number(self.rtol, f"{where}.rtol", positive=True)
        check_number(self.atol, f"{where}.atol", positive=True)
        if self.fixed_prediction and self.solver != "euler":
            raise ConfigurationError(
                f"{where}.fixed_prediction: defined for solver = \"euler\" only (its exact "
                f"equivalence with backprop is a property of Euler steps); got solver = "
                f"{self.solver!r}")


@dataclass(frozen=True)
class _Snapshot:
    """Read access to the activities and errors of the step being observed."""

    activity: Callable[[int], Any]
    error: Callable[[int], Any]


Observer = Callable[[int, _Snapshot], None]


class _Trace:
    """The energy per step, kept on the backend; the tolerance check syncs."""

    def __init__(self, hierarchy: Hierarchy, settings: Relaxation, batch: int) -> None:
        self.be = hierarchy.backend
        self.values = self.be.zeros((settings.steps + 1,))
        self.tolerance = settings.tolerance
        self.scale = 1.0 / batch

    def record(self, t: int, summed: Any) -> bool:
        """Store the step's energy; return True when it changed less than the tolerance."""
        self.values[t] = summed * self.scale
        if self.tolerance is None or t == 0:
            return False
        change = self.be.scalar(self.values[t] - self.values[t - 1])
        return abs(change) < self.tolerance


def _gram_pays(batch: int, n1: int, n2: int, steps: int) -> bool:
    """Whether relaxing area 1 through the Gram matrix of W_2 (n1, n2) costs fewer
    multiply-adds than two products per step: n1 n2^2 once, batch n2^2 per step and
    batch n1 n2 at the end, against 2 batch n1 n2 per step."""
    return steps > 0 and n1 * n2 * n2 + steps * batch * n2 * n2 + batch * n1 * n2 < 2 * steps * batch * n1 * n2


def _start(mu: Any, swept: Any, init: str) -> Any:
    """Fill an area's activity buffer with its starting value and return it."""
    if init == "feedforward":
        mu[...] = swept
    else:
        mu[...] = 0.0
    return mu


def relax_discriminative(
    hierarchy: Hierarchy,
    x: Any,
    y: Any,
    loss: Loss,
    settings: Relaxation,
    observe: Observer | None = None,
    workspace: Workspace | None = None,
) -> State:
    """Relax the latent areas with input ``x`` and target ``y`` clamped.

    Parameters
    ----------
    hierarchy : Hierarchy
        The model (read only).
    x : array (batch, n_0)
        Input, on the hierarchy's backend.
    y : array (batch, n_L)
        Target of the top area (one-hot labels for classification).
    loss : Loss
        Energy term of the top area.
    settings : Relaxation
        Steps, step size, tolerance, start and the fixed-prediction switch.
    observe : callable, optional
        ``observe(t, snapshot)`` after the errors of step ``t`` are computed,
        for recording the dynamics; ``snapshot.activity(l)`` and
        ``snapshot.error(l)`` give area ``l``'s current values.
    workspace : Workspace, optional
        Where the loop's arrays and the returned state live; by default the
        hierarchy's own (``Workspace.of(hierarchy)``). The state's arrays stay
        valid until the next relaxation with the same workspace.

    Returns
    -------
    State
        The relaxed activities, errors and energy trace; the areas are not changed.
    """
    if settings.solver != "euler":
        from .solvers import solve_discriminative

        return solve_discriminative(hierarchy, x, y, loss, settings, observe, workspace)
    be = hierarchy.backend
    areas = hierarchy.areas
    top = len(areas) - 1
    batch = x.shape[0]
    workspace = Workspace.of(hierarchy) if workspace is None else workspace
    workspace.check(hierarchy)
    buf = workspace.array
    loss.check_output(areas[top].activation, areas[top].name)
    sweep = feedforward(hierarchy, x)

    def shape(l: int) -> tuple[int, int]:
        return (batch, areas[l].size)

    xp = be.xp
    matmul, subtract, multiply, sum_of_squares = be.matmul, be.subtract, be.multiply, be.sum_of_squares
    fixed = settings.fixed_prediction
    step_size = settings.step_size
    precision = [area.precision for area in areas]
    activation = [area.activation for area in areas]
    bias = [area.b_ff for area in areas]
    weight = [area.W_ff for area in areas]
    # The backward products use W^T every step: one contiguous copy per batch
    # is cheaper than a transposed operand in every product.
    weight_t: list[Any] = [None, None]
    for l in range(2, top + 1):
        wt = buf("pc.WT", l, (areas[l].size, areas[l - 1].size))
        wt[...] = xp.matrix_transpose(weight[l])
        weight_t.append(wt)
    # An area whose prediction cannot move (area 1 while x is clamped; every
    # area under fixed prediction) relaxes its error directly: the Euler step
    # mu -= s (eps - g W^T) is eps <- (1 - pi s) eps + pi s g W^T, two passes
    # instead of four, with pi s folded into that area's W^T copy; its
    # activity mu = pred + eps / pi is formed once, after the loop.
    error_state = [False] + [fixed or l == 1 for l in range(1, top)] + [False]
    for l in range(1, top):
        if error_state[l]:
            weight_t[l + 1] *= precision[l] * step_size
    # Area 1's error moves linearly, eps_1 <- c eps_1 + g_2 @ (pi_1 s W_2^T) with
    # c = 1 - pi_1 s, and area 2 reads it only through u = eps_1 @ W_2. With the
    # Gram matrix M = pi_1 s W_2^T W_2 (once per batch) u moves as u <- c u + g_2 @ M:
    # one product per step instead of two. eps_1 itself is formed after the loop,
    # c^k eps_1 + S @ (pi_1 s W_2^T) with S <- c S + g_2, and its energy term
    # follows |eps_1|^2 <- c^2 |eps_1|^2 + 2 c pi_1 s <u, g_2> + pi_1 s <g_2 @ M, g_2>.
    gram = (not fixed and top > 1
            and _gram_pays(batch, areas[1].size, areas[2].size, settings.steps - (top - 1)))
    if gram:
        c1 = 1.0 - precision[1] * step_size
        ps1 = precision[1] * step_size
        gram_matrix = buf("pc.M", 2, (areas[2].size, areas[2].size))
        matmul(weight_t[2], weight[2], out=gram_matrix)  # (pi_1 s W_2^T) W_2
        u = buf("pc.u", 2, shape(2))
        u[...] = 0.0
        gram_sum = buf("pc.S", 2, shape(2))
        gram_sum[...] = 0.0
        gram_product = buf("pc.G", 2, shape(2))
        decay = 1.0
        eps1_squares: Any = None
    # a, pred, fprime: the current prediction of every area from the one below.
    # They start as the sweep's; area 1's never changes while x is clamped.
    a = list(sweep.a)
    pred = list(sweep.h)
    fprime: list[Any] = [None] + [
        activation[l].derivative(be, a[l], pred[l], buf("pc.fp0", l, shape(l)))
        for l in range(1, top + 1)
    ]
    a_buf = [None, None] + [buf("pc.a", l, shape(l)) for l in range(2, top + 1)]
    pred_buf = [None, None] + [buf("pc.pred", l, shape(l)) for l in range(2, top + 1)]
    fprime_buf = [None, None] + [buf("pc.fp", l, shape(l)) for l in range(2, top + 1)]
    mu: list[Any] = [x]
    mu += [_start(buf("pc.mu", l, shape(l)), sweep.h[l], settings.init) for l in range(1, top)]
    mu.append(y)
    eps: list[Any] = [None] + [buf("pc.eps", l, shape(l)) for l in range(1, top)] + [None]
    g: list[Any] = [None] + [buf("pc.g", l, shape(l)) for l in range(1, top + 1)]
    d_buf = [None] + [buf("pc.d", l, shape(l)) for l in range(1, top)]
    trace = _Trace(hierarchy, settings, batch)
    converged: bool | None = None if settings.tolerance is None else False
    steps_taken = 0
    loss_value: Any = None
    # State.loss is the sweep's loss. From a zero start the first evaluated top
    # prediction comes from zero activity below, not from the sweep, so the
    # sweep's loss is evaluated on its own.
    feedforward_loss: Any = None
    if settings.init == "zeros" and not fixed and top > 1:
        feedforward_loss = loss.evaluate(
            be, sweep.a[top], sweep.h[top], fprime[top], y, buf("pc.g_sweep", top, shape(top))
        )
    # Errors start at the top and move down one area per step when inference
    # starts from the sweep: areas below ``frontier`` still sit exactly at the
    # sweep, so their predictions need no recomputing and their zero errors
    # no back-projection.
    frontier = top if settings.init == "feedforward" else 1
    predicted_from_mu = settings.init == "feedforward"
    t = 0

    def current_error(l: int) -> Any:
        if gram and l == 1 and t > 0:  # eps_1 is not materialized during the loop
            return eps[1] * decay + gram_sum @ weight_t[2]
        return eps[l]

    def discriminative_activity(l: int) -> Any:
        if 0 < l < top and error_state[l] and t > 0:  # mu is not materialized during the loop
            return pred[l] + current_error(l) * (1.0 / precision[l])
        return mu[l]

    def discriminative_error(l: int) -> Any:
        return g[top] if l == top else current_error(l)

    for t in range(settings.steps + 1):
        if not fixed:
            for l in range(max(2, frontier + 1) if predicted_from_mu else 2, top + 1):
                if gram and l == 2 and t > 0:  # sweep's a + u / pi_1, formed by the last gram_step
                    a[l] = a_buf[l]
                elif error_state[l - 1] and t > 0:  # (pred + eps/pi) @ W + b = sweep's a + (eps/pi) @ W
                    a[l] = matmul(eps[l - 1], weight[l], out=a_buf[l])
                    if precision[l - 1] != 1.0:
                        a[l] *= 1.0 / precision[l - 1]
                    a[l] += sweep.a[l]
                else:
                    a[l] = matmul(mu[l - 1], weight[l], out=a_buf[l])
                    a[l] += bias[l]
                pred[l] = activation[l].apply(be, a[l], pred_buf[l])
                if l == top:  # a latent area's derivative comes with its errors, below
                    fprime[l] = activation[l].derivative(be, a[l], pred[l], fprime_buf[l])
            predicted_from_mu = True
        energy: Any = 0.0
        for l in range(1, top):
            if not error_state[l]:
                squares, g[l] = kernels.errors(
                    be, activation[l], a[l], pred[l], mu[l], precision[l], eps[l], g[l], fprime_buf[l])
                energy = energy + squares * (0.5 / precision[l])
                continue
            if t == 0:
                e = subtract(mu[l], pred[l], out=eps[l])
                if precision[l] != 1.0:
                    e *= precision[l]
            else:
                e = eps[l]
            if gram and l == 1:
                if t == 0:
                    eps1_squares = sum_of_squares(e)
                    if settings.init != "feedforward":  # a zero start: eps_1(0) is not zero
                        matmul(e, weight[2], out=u)
                energy = energy + eps1_squares * (0.5 / precision[l])
            else:
                energy = energy + sum_of_squares(e) * (0.5 / precision[l])
            if l > 1:  # g_1 only feeds the weight update: computed after the loop
                g[l] = e if fprime[l] is None else multiply(e, fprime[l], out=g[l])
        if t == 0 or not fixed:
            loss_value = loss.evaluate(be, a[top], pred[top], fprime[top], y, g[top])
            if t == 0 and feedforward_loss is None:
                feedforward_loss = loss_value
            if precision[top] != 1.0:
                g[top] *= precision[top]
        energy = energy + loss_value * precision[top]
        if observe is not None:
            observe(t, _Snapshot(activity=discriminative_activity, error=discriminative_error))
        if trace.record(t, energy):
            converged = True
            break
        if t == settings.steps:
            break
        frontier = max(1, frontier - 1)
        for l in range(frontier, top):
            if gram and l == 1:
                matmul(g[2], gram_matrix, out=gram_product)
                ug, Gg = kernels.gram_step(be, u, gram_product, gram_sum, g[2], c1, 1.0 / precision[1],
                                           sweep.a[2], a_buf[2])
                eps1_squares = eps1_squares * (c1 * c1) + ug * (2.0 * c1 * ps1) + Gg * ps1
                decay *= c1
                continue
            d = matmul(g[l + 1], weight_t[l + 1], out=d_buf[l])
            if error_state[l]:
                eps[l] *= 1.0 - precision[l] * step_size
                eps[l] += d
            else:
                kernels.descend(be, mu[l], d, eps[l], step_size)
        steps_taken = t + 1
    if gram and decay != 1.0:  # eps_1 = c^k eps_1(0) + S @ (pi_1 s W_2^T)
        eps[1] *= decay
        eps[1] += matmul(gram_sum, weight_t[2], out=d_buf[1])
    for l in range(1, top):
        if error_state[l] and steps_taken > 0:
            multiply(eps[l], 1.0 / precision[l], out=mu[l])
            mu[l] += pred[l]
    if top > 1:
        g[1] = eps[1] if fprime[1] is None else multiply(eps[1], fprime[1], out=g[1])
    presynaptic = sweep.h if settings.fixed_prediction else mu
    return State(
        mode="discriminative",
        sweep=sweep,
        mu=mu,
        eps=eps,
        presynaptic=[None] + presynaptic[:top],
        errors=g,
        energy=trace.values[: steps_taken + 1],
        steps=steps_taken,
        converged=converged,
        predictions=[None] + pred[1:],
        target=y,
        loss=feedforward_loss / batch,
    )


def _prior(hierarchy: Hierarchy, l: int) -> Prior | None:
    """The prior of area ``l``; the top area defaults to a standard Gaussian."""
    area = hierarchy.areas[l]
    if area.prior is None and l == len(hierarchy.areas) - 1:
        return _STANDARD_GAUSSIAN
    return area.prior


def relax_generative(
    hierarchy: Hierarchy,
    x: Any,
    settings: Relaxation,
    observe: Observer | None = None,
    start: Sequence[Any] | None = None,
    workspace: Workspace | None = None,
) -> State:
    """Infer the latent areas that best explain data ``x`` through the generative path.

    Parameters
    ----------
    hierarchy : Hierarchy
        The model (read only).
    x : array (batch, n_0)
        Data clamped at area 0, on the hierarchy's backend.
    settings : Relaxation
        Steps, step size, tolerance and start (``"feedforward"`` starts from
        the recognition sweep; ``"zeros"`` from zero activity).
    observe : callable, optional
        As in ``relax_discriminative``; the top area has no prediction error.
    start : sequence of arrays, optional
        Starting activities indexed by area (entry 0 is ignored), each
        ``(batch, n_l)`` on the backend; they replace ``settings.init``, e.g.
        to carry expectations over from a previous relaxation (``State.mu``
        of an earlier call may be passed as is).
    workspace : Workspace, optional
        As in ``relax_discriminative``.

    Returns
    -------
    State
        The relaxed activities, errors and energy trace; the areas are not changed.
    """
    if settings.fixed_prediction:
        raise ConfigurationError(
            "inference.fixed_prediction: only defined in discriminative mode; "
            "set it to false for generative inference"
        )
    if settings.solver != "euler":
        from .solvers import solve_generative

        return solve_generative(hierarchy, x, settings, observe, start, workspace)
    be = hierarchy.backend
    areas = hierarchy.areas
    top = len(areas) - 1
    batch = x.shape[0]
    workspace = Workspace.of(hierarchy) if workspace is None else workspace
    workspace.check(hierarchy)
    buf = workspace.array

    def shape(l: int) -> tuple[int, int]:
        return (batch, areas[l].size)

    sweep = feedforward(hierarchy, x)
    mu: list[Any] = [x]
    origin, init = (sweep.h, settings.init) if start is None else (start, "feedforward")
    mu += [_start(buf("gen.mu", l, shape(l)), origin[l], init) for l in range(1, top + 1)]
    priors = [_prior(hierarchy, l) for l in range(top + 1)]
    eps: list[Any] = [buf("gen.eps", l, shape(l)) for l in range(top)] + [None]
    q: list[Any] = [None] * (top + 1)
    trace = _Trace(hierarchy, settings, batch)
    converged: bool | None = None if settings.tolerance is None else False
    steps_taken = 0
    for t in range(settings.steps + 1):
        energy: Any = 0.0
        for l in range(1, top + 1):
            area = areas[l]
            q[l] = area.feedback_activation.apply(be, mu[l], buf("gen.q", l, shape(l)))
            below = eps[l - 1]
            be.matmul(q[l], area.W_fb, out=below)
            below += area.b_fb
            be.subtract(mu[l - 1], below, out=below)
            pi = areas[l - 1].precision
            if pi != 1.0:
                below *= pi
            energy = energy + be.sum_of_squares(below) * (0.5 / pi)
        for l in range(1, top + 1):
            if priors[l] is not None:
                energy = energy + priors[l].energy(be, mu[l])
        if observe is not None:
            observe(t, _Snapshot(activity=mu.__getitem__, error=eps.__getitem__))
        if trace.record(t, energy):
            converged = True
            break
        if t == settings.steps:
            break
        for l in range(1, top + 1):
            area = areas[l]
            d = be.matmul(eps[l - 1], area.W_fb.T, out=buf("gen.d", l, shape(l)))
            phi_prime = area.feedback_activation.derivative(
                be, mu[l], q[l], buf("gen.fp", l, shape(l))
            )
            if phi_prime is not None:
                d *= phi_prime
            if l < top:
                d -= eps[l]
            if priors[l] is not None:
                d -= priors[l].gradient(be, mu[l], buf("gen.prior", l, shape(l)))
            d *= settings.step_size
            mu[l] += d
        steps_taken = t + 1
    return State(
        mode="generative",
        sweep=sweep,
        mu=mu,
        eps=eps,
        presynaptic=q,
        errors=[None] + eps[:top],
        energy=trace.values[: steps_taken + 1],
        steps=steps_taken,
        converged=converged,
    )
