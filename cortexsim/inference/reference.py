"""Reference predictive-coding relaxation: the equations of docs/math.md, step by step.

``relax_discriminative`` and ``relax_generative`` (``predictive_coding.py``)
are written for speed: preallocated buffers, in-place updates, areas whose
prediction cannot move relaxed through their errors, work skipped where the
errors are still zero. The functions here compute the same relaxation the
plain way, every quantity recomputed from the current activities at every
step, allocating freely, so that they can be read against the equations and
a test can hold the fast code equal to them
(``tests/inference/test_reference_relaxation.py``).

Discriminative mode (Whittington & Bogacz 2017), input ``x`` clamped at area 0
and target ``y`` at the top area ``L``:

    a_l    = mu_{l-1} @ W_ff[l] + b_ff[l]      pred_l = f_l(a_l)
    eps_l  = pi_l (mu_l - pred_l)                                  l = 1 .. L-1
    F      = (1/B) [sum_{l<L} |eps_l|^2 / (2 pi_l) + pi_L loss(pred_L, y)]
    g_l    = eps_l * f_l'(a_l)        g_L = pi_L * (-dloss/da_L)
    dF/dmu_l = eps_l - g_{l+1} @ W_ff[l+1]^T
    mu_l  <- mu_l - step_size * dF/dmu_l

With ``fixed_prediction`` the predictions ``pred_l`` and derivatives ``f_l'``
stay at the feedforward sweep's values (and so does the loss term).

Generative mode (Rao & Ballard 1999), data ``x`` clamped at area 0:

    q_l       = phi_l(mu_l)           pred_{l-1} = q_l @ W_fb[l] + b_fb[l]
    eps_{l-1} = pi_{l-1} (mu_{l-1} - pred_{l-1})                   l = 1 .. L
    F         = (1/B) [sum_{l<L} |eps_l|^2 / (2 pi_l) + sum_{l>=1} E_prior_l(mu_l)]
    dF/dmu_l  = eps_l [l < L] - (eps_{l-1} @ W_fb[l]^T) * phi_l'(mu_l) + dE_prior_l/dmu_l
    mu_l     <- mu_l - step_size * dF/dmu_l

(the top area's prior defaults to a standard Gaussian).

Both take ``T = settings.steps`` Euler steps, or stop once the energy per
sample changes by less than ``settings.tolerance`` between two steps, and
return the ``State`` the fast functions return: ``energy`` holds ``F`` at the
start and after every step taken.
"""

from __future__ import annotations

from typing import Any

from .predictive_coding import _prior, _Snapshot
from .state import State, Sweep

__all__ = ["reference_discriminative", "reference_generative"]


def _feedforward(hierarchy: Any, x: Any) -> Sweep:
    """The recognition sweep ``a_l = h_{l-1} @ W_ff[l] + b_ff[l]``, ``h_l = f_l(a_l)``,
    in fresh arrays (the fast sweep lives in the hierarchy's scratch buffers)."""
    be = hierarchy.backend
    a: list[Any] = [None]
    h: list[Any] = [x]
    for area in hierarchy.areas[1:]:
        a.append(h[-1] @ area.W_ff + area.b_ff)
        h.append(area.activation(be, a[-1]))
    return Sweep(a=a, h=h)


def _output_error(xp: Any, loss: Any, a: Any, pred: Any, fprime: Any, y: Any) -> tuple[Any, Any]:
    """The batch's summed loss and the output error ``-dloss/da`` (batch, n).

    mse: ``0.5 |y - f(a)|^2`` and ``(y - f(a)) f'(a)``; cross-entropy:
    ``-sum_k y_k log softmax(a)_k`` and ``y - softmax(a)`` (docs/math.md, "Losses").
    """
    if loss.name == "mse":
        residual = y - pred
        return 0.5 * xp.sum(residual * residual), residual * fprime
    if loss.name == "cross_entropy":
        shifted = a - xp.max(a, axis=1, keepdims=True)
        log_softmax = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
        return -xp.sum(y * log_softmax), y - xp.exp(log_softmax)
    raise ValueError(f"the reference relaxation has no equations for loss {loss.name!r}")


def _starting_activities(origin: Any, top: int, init: str, xp: Any) -> list[Any]:
    """Latent activities ``mu_1 .. mu_top`` copied from ``origin`` or zero."""
    if init == "feedforward":
        return [xp.asarray(origin[l], copy=True) for l in range(1, top + 1)]
    return [xp.zeros_like(origin[l]) for l in range(1, top + 1)]


def _stops(energies: list[Any], tolerance: float | None, be: Any) -> bool:
    """True when the energy per sample changed by less than ``tolerance`` in the last step."""
    if tolerance is None or len(energies) < 2:
        return False
    return abs(be.scalar(energies[-1] - energies[-2])) < tolerance


def reference_discriminative(
    hierarchy: Any, x: Any, y: Any, loss: Any, settings: Any, observe: Any = None
) -> State:
    """Relax the latent areas with input ``x`` and target ``y`` clamped, plainly.

    Parameters
    ----------
    hierarchy : Hierarchy
        The model (read only).
    x : array (batch, n_0)
        Input, on the hierarchy's backend.
    y : array (batch, n_L)
        Target of the top area.
    loss : Loss
        The top area's energy term (``"mse"`` or ``"cross_entropy"``).
    settings : Relaxation
        Steps, step size, tolerance, start and the fixed-prediction switch.
    observe : callable, optional
        ``observe(t, snapshot)`` as for ``relax_discriminative``.

    Returns
    -------
    State
        The fields ``relax_discriminative`` returns, in fresh arrays.
    """
    be = hierarchy.backend
    xp = be.xp
    areas = hierarchy.areas
    top = len(areas) - 1
    batch = x.shape[0]
    pi = [area.precision for area in areas]
    loss.check_output(areas[top].activation, areas[top].name)
    sweep = _feedforward(hierarchy, x)
    sweep_fprime = [None] + [areas[l].activation.grad(be, sweep.a[l]) for l in range(1, top + 1)]
    sweep_loss, _ = _output_error(xp, loss, sweep.a[top], sweep.h[top], sweep_fprime[top], y)

    mu: list[Any] = [x] + _starting_activities(sweep.h, top - 1, settings.init, xp) + [y]
    energies: list[Any] = []
    converged = None if settings.tolerance is None else False
    steps = 0
    for t in range(settings.steps + 1):
        # Predictions of every area from the one below.
        if settings.fixed_prediction:
            a, pred, fprime = sweep.a, sweep.h, sweep_fprime
        else:
            a = [None] + [mu[l - 1] @ areas[l].W_ff + areas[l].b_ff for l in range(1, top + 1)]
            pred = [None] + [areas[l].activation(be, a[l]) for l in range(1, top + 1)]
            fprime = [None] + [areas[l].activation.grad(be, a[l]) for l in range(1, top + 1)]
        # Errors, the top area's output error, and the energy.
        eps = [None] + [pi[l] * (mu[l] - pred[l]) for l in range(1, top)] + [None]
        top_loss, output_error = _output_error(xp, loss, a[top], pred[top], fprime[top], y)
        g = [None] + [eps[l] * fprime[l] for l in range(1, top)] + [pi[top] * output_error]
        summed = pi[top] * top_loss
        for l in range(1, top):
            summed = summed + xp.sum(eps[l] * eps[l]) / (2.0 * pi[l])
        energies.append(summed / batch)
        if observe is not None:
            observe(t, _Snapshot(activity=mu.__getitem__,
                                 error=lambda l, g=g, eps=eps: g[top] if l == top else eps[l]))
        if _stops(energies, settings.tolerance, be):
            converged = True
            break
        if t == settings.steps:
            break
        # One Euler step on every latent area, all from the same state.
        dF_dmu = [None] + [eps[l] - g[l + 1] @ xp.matrix_transpose(areas[l + 1].W_ff)
                           for l in range(1, top)]
        mu = [x] + [mu[l] - settings.step_size * dF_dmu[l] for l in range(1, top)] + [y]
        steps = t + 1

    presynaptic = sweep.h if settings.fixed_prediction else mu
    return State(
        mode="discriminative",
        sweep=sweep,
        mu=mu,
        eps=eps,
        presynaptic=[None] + presynaptic[:top],
        errors=g,
        energy=xp.stack(energies),
        steps=steps,
        converged=converged,
        predictions=[None] + pred[1:],
        target=y,
        loss=sweep_loss / batch,
    )


def reference_generative(
    hierarchy: Any, x: Any, settings: Any, observe: Any = None, start: Any = None
) -> State:
    """Infer the latent areas that explain data ``x`` through the generative path, plainly.

    Parameters
    ----------
    hierarchy : Hierarchy
        The model (read only).
    x : array (batch, n_0)
        Data clamped at area 0, on the hierarchy's backend.
    settings : Relaxation
        Steps, step size, tolerance and start.
    observe : callable, optional
        ``observe(t, snapshot)`` as for ``relax_generative``.
    start : sequence of arrays, optional
        Starting activities indexed by area (entry 0 ignored); they replace
        ``settings.init``.

    Returns
    -------
    State
        The fields ``relax_generative`` returns, in fresh arrays.
    """
    if settings.fixed_prediction:
        raise ValueError("fixed_prediction is only defined in discriminative mode")
    be = hierarchy.backend
    xp = be.xp
    areas = hierarchy.areas
    top = len(areas) - 1
    batch = x.shape[0]
    pi = [area.precision for area in areas]
    priors = [_prior(hierarchy, l) for l in range(top + 1)]
    sweep = _feedforward(hierarchy, x)
    if start is None:
        mu = [x] + _starting_activities(sweep.h, top, settings.init, xp)
    else:
        mu = [x] + _starting_activities(start, top, "feedforward", xp)

    energies: list[Any] = []
    converged = None if settings.tolerance is None else False
    steps = 0
    for t in range(settings.steps + 1):
        # Predictions of every area from the one above, errors and energy.
        q = [None] + [areas[l].feedback_activation(be, mu[l]) for l in range(1, top + 1)]
        pred = [q[l + 1] @ areas[l + 1].W_fb + areas[l + 1].b_fb for l in range(top)]
        eps = [pi[l] * (mu[l] - pred[l]) for l in range(top)] + [None]
        summed: Any = 0.0
        for l in range(top):
            summed = summed + xp.sum(eps[l] * eps[l]) / (2.0 * pi[l])
        for l in range(1, top + 1):
            if priors[l] is not None:
                summed = summed + priors[l].energy(be, mu[l])
        energies.append(summed / batch)
        if observe is not None:
            observe(t, _Snapshot(activity=mu.__getitem__, error=eps.__getitem__))
        if _stops(energies, settings.tolerance, be):
            converged = True
            break
        if t == settings.steps:
            break
        # One Euler step on every latent area, all from the same state.
        dF_dmu: list[Any] = [None]
        for l in range(1, top + 1):
            phi_prime = areas[l].feedback_activation.grad(be, mu[l])
            gradient = -(eps[l - 1] @ xp.matrix_transpose(areas[l].W_fb)) * phi_prime
            if l < top:
                gradient = gradient + eps[l]
            if priors[l] is not None:
                gradient = gradient + priors[l].gradient(be, mu[l], xp.zeros_like(mu[l]))
            dF_dmu.append(gradient)
        mu = [x] + [mu[l] - settings.step_size * dF_dmu[l] for l in range(1, top + 1)]
        steps = t + 1

    return State(
        mode="generative",
        sweep=sweep,
        mu=mu,
        eps=eps,
        presynaptic=q,
        errors=[None] + eps[:top],
        energy=xp.stack(energies),
        steps=steps,
        converged=converged,
    )
