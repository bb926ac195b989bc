"""Oddball paradigm: repetition suppression and mismatch responses of
prediction-error units (Friston 2005; Garrido et al. 2009).

A trained generative predictive-coding model is shown, one after the other, a
repeated *standard* image (one held-out image of class ``standard_class``)
and a rare *deviant* (one held-out image of class ``deviant_class``). Every
presentation is relaxed as usual, and at every inference step ``t`` the
prediction error of every area ``l`` below the top is read,

    r_l(t) = mean_units |eps_l(t)|                        (measure "abs")
    r_l(t) = |eps_l(t)|^2 / (2 pi_l n_l)                  (measure "energy")

with ``eps_l = pi_l (mu_l - phi(mu_{l+1}) @ W_fb_{l+1} - b_fb_{l+1})``. The
response of a presentation is the mean of ``r_l(t)`` over its steps.

A model that relaxes every presentation from the same start with fixed
weights answers a repeated stimulus identically. The predictive-coding account
of the mismatch negativity adds two mechanisms, both settings here:

- **carry-over of expectations** (``carry_over = c``): presentation ``n``
  starts from the previous equilibrium, ``mu_l(0) = c mu_l^{n-1}(T) + (1 - c)
  mu_l^init`` (``mu^init``: zeros or the recognition sweep, as the rule's
  ``inference.init``), so a repeated stimulus starts already explained and a
  deviant starts from the standard's expectations;
- **fast plasticity** (``plasticity_lr = eta``): after each presentation the
  rule's own local gradients at the equilibrium are applied with plain SGD,
  ``W <- W - eta dF/dW`` (model updating), so the generative weights adapt to
  the standard. This runs on a copy of the model: the trained weights are left
  as found.

With ``control`` the same sequence is also run with both mechanisms off
(fixed weights, every presentation from ``mu^init``); its deviant-minus-standard
difference is what the two images alone give, without any mismatch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..data import load
from ..errors import ConfigurationError
from ..model.hierarchy import Hierarchy, build
from ..model.spec import HierarchySpec
from ..inference import Relaxation, feedforward, relax_generative
from ..inference.predictive_coding import INITS
from ..optim import SGD
from ..validation import check_choice, check_int, check_number
from .base import ExperimentResult

TITLE = "Oddball: repetition suppression and mismatch (Garrido et al. 2009)"

MEASURES = ("abs", "energy")


def oddball_sequence(
    presentations: int, p_deviant: float, lead_in: int, min_gap: int, rng: np.random.Generator
) -> np.ndarray:
    """Which presentations are deviants: a boolean array (presentations,).

    The first ``lead_in`` presentations are standards and at least
    ``min_gap`` standards separate two deviants. After the gap, each
    presentation is a deviant with probability ``q = 1 / (1 / p - min_gap)``,
    so that deviants make up a share ``p`` of the presentations in the long
    run (the mean cycle is ``min_gap + 1 / q = 1 / p`` presentations).
    """
    q = 1.0 / (1.0 / p_deviant - min_gap)
    deviant = np.zeros(presentations, dtype=bool)
    since = 0  # standards since the last deviant, or since the start
    for i in range(presentations):
        if i >= lead_in and since >= min_gap and rng.random() < q:
            deviant[i] = True
            since = 0
        else:
            since += 1
    return deviant


def repetitions(deviant: np.ndarray) -> np.ndarray:
    """Per presentation: the standard's repetition number since the last
    deviant (1 for the first standard after it, and for the very first
    presentation); 0 for deviants."""
    out = np.zeros(len(deviant), dtype=np.int64)
    count = 0
    for i, is_deviant in enumerate(deviant):
        count = 0 if is_deviant else count + 1
        out[i] = count
    return out


def validate(settings: Mapping[str, Any], hierarchy: Hierarchy | HierarchySpec, where: str) -> None:
    """Check the settings before any run (the classes are checked against the data at run time)."""
    n = check_int(settings.get("presentations", 200), f"{where}.presentations", minimum=2)
    lead_in = check_int(settings.get("lead_in", 5), f"{where}.lead_in", minimum=1)
    min_gap = check_int(settings.get("min_gap", 1), f"{where}.min_gap", minimum=1)
    p = check_number(settings.get("p_deviant", 0.15), f"{where}.p_deviant", positive=True)
    if p > 1.0 / (min_gap + 1):
        raise ConfigurationError(
            f"{where}.p_deviant: {p!r} cannot be reached with at least {min_gap} standard(s) "
            f"between deviants; at most {1.0 / (min_gap + 1):.3g}")
    if lead_in >= n:
        raise ConfigurationError(f"{where}.lead_in: {lead_in} leaves no room for a deviant in {n} presentations")
    a = check_int(settings.get("standard_class", 0), f"{where}.standard_class")
    b = check_int(settings.get("deviant_class", 1), f"{where}.deviant_class")
    if a == b:
        raise ConfigurationError(f"{where}.deviant_class: must differ from standard_class ({a})")
    carry = check_number(settings.get("carry_over", 1.0), f"{where}.carry_over")
    if not 0.0 <= carry <= 1.0:
        raise ConfigurationError(f"{where}.carry_over: expected a share in [0, 1], got {carry!r}")
    lr = check_number(settings.get("plasticity_lr", 0.02), f"{where}.plasticity_lr")
    if lr < 0:
        raise ConfigurationError(f"{where}.plasticity_lr: expected a learning rate >= 0, got {lr!r}")
    late = check_number(settings.get("late_fraction", 0.5), f"{where}.late_fraction", positive=True)
    if late > 1.0:
        raise ConfigurationError(f"{where}.late_fraction: expected a share in (0, 1], got {late!r}")
    check_choice(settings.get("measure", "abs"), MEASURES, f"{where}.measure")
    if settings.get("steps") is not None:
        check_int(settings["steps"], f"{where}.steps", minimum=1)
    if settings.get("step_size") is not None:
        check_number(settings["step_size"], f"{where}.step_size", positive=True)
    if settings.get("init") is not None:
        check_choice(settings["init"], INITS, f"{where}.init")
    spec = hierarchy.spec if isinstance(hierarchy, Hierarchy) else hierarchy
    if len(spec.areas) < 2:
        raise ConfigurationError(f"{where}: the model needs at least one latent area")


def _copy(hierarchy: Hierarchy) -> Hierarchy:
    """An independent copy of the model (the fast plasticity changes this one)."""
    twin = build(hierarchy.spec, backend=hierarchy.backend, seed=hierarchy.seed)
    twin.load_parameters(hierarchy.parameters())
    return twin


def _stimuli(data: Mapping[str, Any] | None, standard_class: int, deviant_class: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One held-out image of each class (drawn with ``rng``) and their test-set indices."""
    section = dict(data or {"name": "digits"})
    options = {k: section[k] for k in ("n", "seed", "layout") if k in section}
    dataset = load(section.get("name", "digits"), **options)
    images, indices = [], []
    for which, c in (("standard_class", standard_class), ("deviant_class", deviant_class)):
        pool = np.flatnonzero(dataset.y_test == c)
        if pool.size == 0:
            raise ConfigurationError(
                f"oddball.{which}: no held-out image of class {c} in {dataset.name!r} "
                f"(classes 0..{dataset.n_classes - 1})")
        index = int(rng.choice(pool))
        images.append(dataset.x_test[index])
        indices.append(index)
    return np.stack(images), np.asarray(indices)


def _present(hierarchy: Hierarchy, rule: Any, stimuli: np.ndarray, deviant: np.ndarray,
             relaxation: Relaxation, carry_over: float, plasticity_lr: float, measure: str) -> np.ndarray:
    """Relax every presentation in order; the error per (presentation, step, area)."""
    model = _copy(hierarchy)
    be, xp = model.backend, model.backend.xp
    top = len(model) - 1
    shown = [be.asarray(stimuli[i : i + 1]) for i in range(len(stimuli))]
    scale = [1.0 / model[l].size if measure == "abs" else 0.5 / (model[l].precision * model[l].size)
             for l in range(top)]
    trace = be.zeros((relaxation.steps + 1, top))
    out = np.empty((len(deviant), relaxation.steps + 1, top))
    optimizer = SGD(plasticity_lr) if plasticity_lr > 0 else None

    def observe(t: int, snapshot: Any) -> None:
        for l in range(top):
            e = snapshot.error(l)
            trace[t, l] = (xp.sum(xp.abs(e)) if measure == "abs" else be.sum_of_squares(e)) * scale[l]

    previous: list[Any] | None = None
    for n, is_deviant in enumerate(deviant):
        x = shown[int(is_deviant)]
        start = None
        if previous is not None and carry_over > 0:
            if carry_over == 1.0:
                start = previous  # the buffers of the previous State, copied in place
            else:
                origin = feedforward(model, x).h if relaxation.init == "feedforward" else None
                start = [None] + [
                    previous[l] * carry_over + (0.0 if origin is None else origin[l] * (1.0 - carry_over))
                    for l in range(1, top + 1)]
        state = relax_generative(model, x, relaxation, observe, start=start)
        out[n] = be.to_numpy(trace)
        previous = state.mu
        if optimizer is not None:
            optimizer.step(model, rule.gradients(model, state))
    return out


def _summary(response: np.ndarray, deviant: np.ndarray, late_fraction: float, areas: list[str],
             prefix: str = "") -> dict[str, float]:
    n = len(deviant)
    late = ~deviant & (np.arange(n) >= n - max(1, round(late_fraction * n)))
    after = np.flatnonzero(deviant)
    after = after[after > 0]
    summary: dict[str, float] = {}
    for i, name in enumerate(areas):
        r = response[:, i]
        first, late_mean = float(r[0]), float(r[late].mean())
        summary[f"{prefix}first_standard.{name}"] = first
        summary[f"{prefix}late_standard.{name}"] = late_mean
        summary[f"{prefix}suppression.{name}"] = late_mean / first if first > 0 else float("nan")
        summary[f"{prefix}deviant.{name}"] = float(r[deviant].mean())
        summary[f"{prefix}mismatch.{name}"] = float(np.mean(r[after] - r[after - 1]))
    return summary


def run(
    hierarchy: Hierarchy,
    rule: Any,
    *,
    seed: int,
    data: Mapping[str, Any] | None = None,
    presentations: int = 200,
    p_deviant: float = 0.15,
    lead_in: int = 5,
    min_gap: int = 1,
    standard_class: int = 0,
    deviant_class: int = 1,
    carry_over: float = 1.0,
    plasticity_lr: float = 0.02,
    steps: int | None = None,
    step_size: float | None = None,
    init: str | None = None,
    measure: str = "abs",
    late_fraction: float = 0.5,
    control: bool = True,
) -> ExperimentResult:
    """Present a seeded oddball sequence and record the prediction errors at every step.

    Parameters
    ----------
    hierarchy : Hierarchy
        The trained generative model; left unchanged (the experiment adapts a copy).
    rule : PredictiveCoding
        Generative predictive coding: its inference settings and its gradients.
    seed : int
        Seeds the choice of the two images and the sequence.
    data : mapping, optional
        The study's [data] section (dataset ``name``); digits when absent.
    presentations : int
        Length of the sequence.
    p_deviant : float
        Long-run share of deviants (at most ``1 / (min_gap + 1)``).
    lead_in : int
        Standards at the start before a deviant may come.
    min_gap : int
        Fewest standards between two deviants (1: never two deviants in a row).
    standard_class, deviant_class : int
        Classes of the held-out images used as standard and deviant.
    carry_over : float
        Share of the previous presentation's equilibrium each relaxation
        starts from (0: off; 1: start exactly there).
    plasticity_lr : float
        SGD learning rate of the online updates after each presentation (0: off).
    steps, step_size, init : optional
        Relaxation per presentation; the rule's ``inference`` settings when None.
    measure : str
        ``"abs"``: mean |eps_l| per unit; ``"energy"``: |eps_l|^2 / (2 pi_l n_l).
    late_fraction : float
        The standards in this last share of the sequence are the "late" ones.
    control : bool
        Also run the sequence with both mechanisms off.
    """
    capabilities = rule.capabilities
    if not (capabilities.relaxes and capabilities.setting == "generative"):
        raise ConfigurationError(
            "oddball: needs generative predictive coding (rule = \"predictive_coding\", "
            f"mode = \"generative\"), got {rule!r}")
    settings = {"presentations": presentations, "p_deviant": p_deviant, "lead_in": lead_in, "min_gap": min_gap,
                "standard_class": standard_class, "deviant_class": deviant_class, "carry_over": carry_over,
                "plasticity_lr": plasticity_lr, "measure": measure, "late_fraction": late_fraction,
                "steps": steps, "step_size": step_size, "init": init}
    validate(settings, hierarchy, "oddball")
    base = rule.inference
    relaxation = Relaxation(steps=base.steps if steps is None else steps,
                            step_size=base.step_size if step_size is None else step_size,
                            init=base.init if init is None else init)
    rng = np.random.default_rng(seed)
    stimuli, indices = _stimuli(data, standard_class, deviant_class, rng)
    deviant = oddball_sequence(presentations, p_deviant, lead_in, min_gap, rng)
    areas = [hierarchy[l].name for l in range(len(hierarchy) - 1)]
    errors = _present(hierarchy, rule, stimuli, deviant, relaxation, carry_over, plasticity_lr, measure)
    response = errors.mean(axis=1)
    arrays = {"errors": errors, "response": response, "deviant": deviant.astype(np.int8),
              "repetition": repetitions(deviant), "stimuli": stimuli, "stimulus_index": indices}
    summary = _summary(response, deviant, late_fraction, areas)
    if control:
        control_errors = _present(hierarchy, rule, stimuli, deviant, relaxation, 0.0, 0.0, measure)
        arrays["control_errors"] = control_errors
        arrays["control_response"] = control_errors.mean(axis=1)
        summary.update(_summary(arrays["control_response"], deviant, late_fraction, areas, "control."))
    summary["deviants"] = int(deviant.sum())
    settings.update(seed=seed, steps=relaxation.steps, step_size=relaxation.step_size, init=relaxation.init,
                    control=control, areas=areas, data=(data or {}).get("name", "digits"))
    return ExperimentResult("oddball", arrays, summary, settings)


def _cell(runs: list[ExperimentResult], key: str) -> str:
    """Mean ± sd over seeds, then every seed's value."""
    values = np.array([r.summary.get(key, np.nan) for r in runs])
    sd = values.std(ddof=1) if len(values) > 1 else 0.0
    each = ", ".join(f"{v:.3g}" for v in values)
    return f"{values.mean():.3g} ± {sd:.2g} ({each})"


def summary(results: Mapping[str, list[ExperimentResult]]) -> list[str]:
    """Per rule label and area: repetition suppression and mismatch, mean ± sd over seeds (and every seed)."""
    lines = [
        ("| rule label | area | seeds | suppression (late / first standard) "
         "| mismatch (deviant − preceding standard) | control mismatch (mechanisms off) |"),
        "| --- | --- | ---: | --- | --- | --- |",
    ]
    for label, runs in results.items():
        for area in runs[0].settings["areas"]:
            lines.append(f"| {label} | {area} | {len(runs)} | {_cell(runs, f'suppression.{area}')} "
                         f"| {_cell(runs, f'mismatch.{area}')} | {_cell(runs, f'control.mismatch.{area}')} |")
    s = next(iter(results.values()))[0].settings
    measure = "mean |eps|" if s["measure"] == "abs" else "|eps|^2 / (2 pi n)"
    lines += ["", (f"Response = {measure} per unit, averaged over the inference steps 0..{s['steps']} "
                   f"of a presentation; {s['presentations']} presentations, deviant share {s['p_deviant']}, "
                   f"carry-over {s['carry_over']}, plasticity learning rate {s['plasticity_lr']}. "
                   "Suppression < 1 and mismatch > control mismatch show the effects "
                   "(`cortexsim.experiments.oddball`, docs/phenomena.md).")]
    return lines


def figure(results: Mapping[str, list[ExperimentResult]]) -> Any:
    """Per area: responses along the sequence, the suppression curve, and the step time course."""
    from ..plots.phenomena import oddball_figure

    return oddball_figure(results)
